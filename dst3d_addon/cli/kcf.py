"""The kcf, filter and report stages' door: their options, and what the user reads of the runs in
`kcf/run.py` (progress, one line per fold, one-line errors). No torch here."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.progress import Progress, format_duration
from ..generation.worker_env import default_python
from ..kcf.learning import judge_images
from ..kcf.recipes import PRETRAINED, RECIPE_FIELDS
from ..kcf.report import write_report
from ..kcf.run import KcfOptions, KcfRun, apply_filter, check_python, plan_kcf
from ..kcf.settings import BACKBONES, GROUP_BY, IMAGE_KINDS, OPTIMIZERS, KcfSettings, default_pretrained
from .cluster import add_ray_option, join, kcf_pool_options, leave
from .options import (
    UsageError,
    cli_text,
    device,
    fail,
    finite_float,
    fraction,
    positive_float,
    positive_int,
    say,
    seed,
)


def add_parsers(stages: argparse._SubParsersAction) -> None:
    """Add the kcf, filter and report stages to the batch script's sub-parsers."""
    k = stages.add_parser(
        "kcf",
        help="K-fold consistency filter: score every image by a pose estimator that did not see it",
        description="Train K pose estimators (ResNet, 41-bin azimuth/elevation/theta heads), each on K-1 folds, "
        "and score each image of the held-out fold by its loss; writes kcf.json.",
    )
    k.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    k.add_argument(
        "--folds", type=positive_int("--folds", most=100), default=5, metavar="K", help="folds (default 5)"
    )
    k.add_argument(
        "--images", choices=IMAGE_KINDS, default="generated", help="which image of each record to judge"
    )
    k.add_argument("--classes", nargs="+", default=[], metavar="CLASS", help="only these classes")
    k.add_argument(
        "--group-by",
        choices=GROUP_BY,
        default="view",
        help="keep all images of one view (default) or one CAD model in the same fold",
    )
    t = k.add_argument_group("training")
    add_training_options(t, seed_help="folds, initialisation and batch order derive from it")
    t.add_argument(
        "--train-renders",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train each fold also on the renders of every view (exact labels), scoring only the held-out "
        "images (default: on, unless the renders are what is judged)",
    )
    t.add_argument(
        "--skip-worst",
        type=finite_float("--skip-worst"),
        default=0.25,
        metavar="F",
        help="after a third of the epochs, train on no judged image whose loss is among the worst F "
        "(most likely the wrong ones; default 0.25, 0 = off; renders are always trained on)",
    )
    x = k.add_argument_group("execution")
    add_execution_options(x, ray=True)
    x.add_argument(
        "--save-weights", action="store_true", help="keep each fold's model as kcf/fold_<i>.safetensors"
    )
    x.add_argument(
        "--allow-mixed", action="store_true", help="rerun with other settings, replacing the previous scores"
    )
    x.add_argument("--quiet", action="store_true", help="no progress bar")

    f = stages.add_parser(
        "filter",
        help="write the kept set (keep.jsonl) from kcf.json; deletes nothing",
        description="Keep the images with the lowest KCF scores: writes keep.jsonl, which loaders and "
        "exporters respect. No image or record is deleted or rewritten.",
    )
    f.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    rule = f.add_mutually_exclusive_group(required=True)
    rule.add_argument(
        "--keep-fraction",
        type=fraction("--keep-fraction"),
        metavar="F",
        help="keep the F lowest-scoring images",
    )
    rule.add_argument("--max-score", type=finite_float("--max-score"), metavar="S", help="keep scores <= S")
    f.add_argument(
        "--force",
        action="store_true",
        help="cut even when kcf.json says the estimators did not learn (the cut is then random)",
    )
    f.add_argument(
        "--per-class",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="apply --keep-fraction within each class (default)",
    )

    r = stages.add_parser(
        "report",
        help="draw kcf_report.png: score histogram and cut, worst and best images, kept viewpoints",
        description="Draw the KCF report: the score histogram with the cut, the worst and best images with "
        "their labelled pose as axes, and the azimuth x elevation distribution of the kept set.",
    )
    r.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    r.add_argument("--output", metavar="PNG", help="where to write it (default <out>/kcf_report.png)")
    r.add_argument(
        "--count",
        type=positive_int("--count", most=64),
        default=8,
        metavar="N",
        help="worst and best images (8)",
    )
    r.add_argument(
        "--tile",
        type=positive_int("--tile", most=1024),
        default=160,
        metavar="PX",
        help="image tile size (160)",
    )


#: What kcf's help says of the options it leaves to its recipes (eval says its own).
KCF_DEFAULTS = {
    "recipe": "the recipe's",
    "backbone": "default: resnet-50 (3D-DST) with ImageNet weights, resnet-tiny without",
    "pretrained": "Where none can be had, the options not given follow the recipe that learns from scratch",
}


def add_training_options(
    t: argparse._ArgumentGroup, *, seed_help: str, defaults: dict[str, str] = KCF_DEFAULTS
) -> None:
    """The pose estimator's training options (kcf and eval train the same estimator). Those left out
    are None: a recipe (kcf/recipes.py) fills them; `defaults` words that in the help (with "fixed",
    the pretrained recipe's values)."""
    fixed = defaults.get("fixed")

    def default(field: str) -> str:
        return f"default {PRETRAINED[field]}" if fixed else f"default: {defaults['recipe']}"

    t.add_argument(
        "--epochs", type=positive_int("--epochs", most=10_000), default=None, help=default("epochs")
    )
    t.add_argument(
        "--batch-size", type=positive_int("--batch-size", most=4096), default=None, help=default("batch_size")
    )
    t.add_argument(
        "--image-size",
        type=positive_int("--image-size", most=2048),
        default=None,
        metavar="PX",
        help=default("image_size"),
    )
    t.add_argument("--lr", type=positive_float("--lr"), default=None, help=f"learning rate ({default('lr')})")
    t.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=None,
        help=f"sgd (as 3D-DST) or adamw ({default('optimizer')})",
    )
    t.add_argument(
        "--momentum", type=finite_float("--momentum"), default=0.9, help="SGD momentum (default 0.9)"
    )
    t.add_argument(
        "--weight-decay", type=finite_float("--weight-decay"), default=None, help=default("weight_decay")
    )
    t.add_argument(
        "--backbone",
        choices=list(BACKBONES),
        default=None,
        help=defaults["backbone"],
    )
    t.add_argument(
        "--pretrained",
        default="auto",
        metavar="ID|PATH|none",
        help="ImageNet weights: a hub id or a local folder (default: microsoft/resnet-N for --backbone). "
        + defaults["pretrained"],
    )
    t.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random shifts and brightness while training (default on)",
    )
    t.add_argument(
        "--label-sigma",
        type=finite_float("--label-sigma"),
        default=3.0,
        metavar="BINS",
        help="spread each label over neighbouring bins (circular Gaussian, in bins, default 3; 0 = 3D-DST's one-hot)",
    )
    t.add_argument("--seed", type=seed("--seed"), default=0, help=seed_help)


def add_execution_options(x: argparse._ArgumentGroup, *, ray: bool = False) -> None:
    """Where the estimator's worker runs: device, mixed precision, threads, the worker Python (and,
    with `ray`, the `--ray` cluster)."""
    x.add_argument(
        "--device", type=device, default="auto", help="auto (CUDA when available), cpu, cuda[:N], mps"
    )
    x.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, default=True, help="mixed precision on CUDA"
    )
    x.add_argument(
        "--threads",
        type=positive_int("--threads", most=1024),
        default=None,
        help="CPU threads for torch (its results on the CPU depend on them)"
        + ("; with --ray, each fold's worker on the CPU takes that many CPUs (default 1)" if ray else ""),
    )
    x.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="the worker Python with torch and transformers (default: $DST3D_WORKER_PYTHON or this Python)",
    )
    if ray:
        add_ray_option(x)


def training_from_args(args: argparse.Namespace, **fields: object) -> tuple[KcfSettings, frozenset[str]]:
    """KcfSettings from the training options and `fields`, the recipe's fields filling the options
    not given (the pretrained recipe, until the run chooses: kcf/run.py's `choose_settings`), and
    the names of those left to the recipe. A bad value raises the cli's UsageError."""
    auto = {name for name in RECIPE_FIELDS if getattr(args, name) is None}
    pretrained = args.pretrained
    if pretrained == "auto":
        auto.add("pretrained")
        pretrained = default_pretrained(args.backbone or PRETRAINED["backbone"])
    elif pretrained.lower() == "none":
        pretrained = None
    elif pretrained.startswith(("/", ".", "~")) and not Path(pretrained).expanduser().exists():
        raise UsageError(f"--pretrained {pretrained}: no such file or folder")
    given = {name: getattr(args, name) for name in RECIPE_FIELDS if getattr(args, name) is not None}
    try:
        settings = KcfSettings(
            momentum=args.momentum,
            pretrained=pretrained,
            seed=args.seed,
            augment=args.augment,
            label_sigma=args.label_sigma,
            **{**PRETRAINED, **given},
            **fields,  # type: ignore[arg-type]
        )
    except ValueError as err:
        raise UsageError(cli_text(err)) from None
    return settings, frozenset(auto)


def settings_from_args(args: argparse.Namespace) -> tuple[KcfSettings, frozenset[str]]:
    """KcfSettings from the kcf stage's options, and the settings left for the run to choose (the
    options not given: kcf/run.py's `choose_settings`). A bad combination raises UsageError."""
    settings, auto = training_from_args(
        args,
        folds=args.folds,
        images=args.images,
        group_by=args.group_by,
        classes=tuple(args.classes),
        train_renders=bool(args.train_renders),
        skip_worst=args.skip_worst,
    )
    return settings, auto | ({"train_renders"} if args.train_renders is None else set())


class WorkerLines:
    """A training worker's lines while it runs (kcf's and eval's): the progress bar counts its
    `batch` messages, `warning`s get a line; `more` says the stage's other messages."""

    stage = ""

    def __init__(self, progress: Progress, quiet: bool) -> None:
        self.progress = progress
        self.quiet = quiet

    def _say(self, text: str) -> None:
        self.progress.say(cli_text(text))

    def __call__(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "batch":
            self.progress.update(int(msg.get("n", 0)))
        elif kind == "warning":
            self._say(f"dst3d {self.stage}: warning: {msg.get('message')}")
        else:
            self.more(kind, msg)

    def more(self, kind: object, msg: dict) -> None:
        """The stage's own messages."""


class _Lines(WorkerLines):
    """The kcf stage's lines while its worker runs: progress, warnings, one line per fold."""

    stage = "kcf"

    def __init__(self, progress: Progress, quiet: bool) -> None:
        super().__init__(progress, quiet)
        self.started = False  # said once, though each fold may have a worker of its own

    def more(self, kind: object, msg: dict) -> None:
        quiet = self.quiet
        if kind == "restart":
            # The lost worker's passes are done again: the bar's total grows by them.
            self.progress.total += int(msg.get("passes", 0))
            self._say(
                f"dst3d kcf: the worker of fold(s) {', '.join(map(str, msg['folds']))} {msg['how']}; "
                f"starting it again (retry {msg['attempt']})"
            )
        elif kind == "started" and not quiet and not self.started:
            self.started = True
            amp = f", mixed precision {msg['amp']}" if msg.get("amp") else ""
            self._say(f"dst3d kcf: worker on {msg.get('device')}{amp}, {msg.get('images')} images loaded")
        elif kind == "epoch" and not quiet and not self.progress.tty:
            self._say(
                f"dst3d kcf: fold {msg['fold']} epoch {msg['epoch']}/{msg['epochs']}: loss {msg['loss']:.3f}, "
                f"{msg['images_per_s']:.1f} images/s"
            )
        elif kind == "fold_done" and not quiet:
            chance = msg.get("chance_pi_6")
            chance_text = f" (chance {100 * chance:.1f}%)" if isinstance(chance, (int, float)) else ""
            self._say(
                f"dst3d kcf: fold {msg['fold']} done in {format_duration(msg['seconds'])}: "
                f"held-out accuracy {100 * msg['accuracy_pi_6']:.1f}% at pi/6{chance_text}, "
                f"{100 * msg['accuracy_pi_18']:.1f}% at pi/18"
            )


def _stopped(message: str) -> int:
    """A run that started but could not finish: one line, exit status 1 (bad input gives 2)."""
    fail(message)
    return 1


def run_kcf(args: argparse.Namespace) -> int:
    """The kcf stage; returns the exit code (its folds on the cluster `--ray` names, if given)."""
    settings, auto = settings_from_args(args)
    options = KcfOptions(
        python=check_python(args.python or default_python()),
        device=args.device,
        threads=args.threads,
        amp=args.amp,
        save_weights=args.save_weights,
    )
    cluster = join(args, "kcf", gpus=0 if args.device == "cpu" else None)
    try:
        pool: dict[str, Any] = {}
        if cluster is not None:
            placement, pool = kcf_pool_options(cluster, options.device, options.threads)
            options = replace(options, device=placement.device, threads=placement.threads)
            say(
                f"dst3d kcf: a worker per fold, up to {placement.workers} at a time, each on {placement.describe()}"
            )
        return _kcf(args, settings, auto, options, pool)
    finally:
        leave(cluster)


def _kcf(
    args: argparse.Namespace,
    settings: KcfSettings,
    auto: frozenset[str],
    options: KcfOptions,
    pool: dict[str, Any],
) -> int:
    out = Path(args.out).expanduser()
    plan = plan_kcf(out, settings, allow_mixed=args.allow_mixed, auto=auto)
    settings = plan.settings
    for note in plan.notes:
        say(f"dst3d kcf: {note}")
    sizes = [plan.fold_size(f) for f in range(settings.folds)]
    say(
        f"dst3d kcf: {len(plan.items)} images ({settings.images}), {settings.folds} folds by {settings.group_by} "
        f"({', '.join(map(str, sizes))}); {len(plan.pending)} to train, {settings.folds - len(plan.pending)} "
        f"already done -> {out}"
    )
    start = time.monotonic()
    run = KcfRun(out, settings, plan, options, **pool)
    if plan.pending:
        progress = Progress(plan.passes, "image passes", enabled=not args.quiet)
        run.on_message = _Lines(progress, args.quiet)
        try:
            code = run.run()
        except KeyboardInterrupt:
            progress.close()
            say(
                f"dst3d kcf: interrupted after {len(run.folds_done)} new fold(s); "
                "run the same command again to resume"
            )
            return 130
        progress.close()
        if run.missing is not None:
            return _stopped(run.missing_message())
        if run.error is not None:
            return _stopped(run.error)
        if code != 0:
            return _stopped(f"the kcf worker ({options.python}) exited with code {code}; see {run.log}")
    content, path = run.finish()
    acc = content["accuracy"]
    folds = ", ".join(
        f"{100 * f['accuracy']['pi_6']:.0f}% (chance {100 * f['chance']:.0f}%)" for f in content["folds"]
    )
    say(
        f"dst3d kcf: {len(plan.items)} images scored in {format_duration(time.monotonic() - start)}; held-out "
        f"accuracy {100 * acc['pi_6']:.1f}% at pi/6 (chance {100 * content['chance']:.1f}%), "
        f"{100 * acc['pi_18']:.1f}% at pi/18; per fold at pi/6: {folds} -> {path}"
    )
    if not content["learned"]:
        say(f"dst3d kcf: WARNING: {not_learned_text(content, settings)}")
    return 0


def not_learned_text(content: dict, settings: KcfSettings) -> str:
    """The warning for estimators that did not learn: the figures, what it means, what to try."""
    verdict = judge_images(content["images"])
    figures = verdict.describe() if verdict is not None else "no figures"
    tries = []
    if any(f.get("initialisation") == "random" for f in content["folds"]):
        tries.append("ImageNet weights (--pretrained PATH, a local folder)")
    if settings.images != "renders" and not settings.train_renders:
        tries.append("--train-renders")
    tries += ["more views", "more --epochs"]
    return (
        f"the pose estimators did not learn ({figures}): the scores are noise, a cut on them would be "
        f"random, and filter will refuse it (--force cuts anyway). Try {', '.join(tries)}"
    )


def run_filter(args: argparse.Namespace) -> int:
    """The filter stage: keep.jsonl from kcf.json (nothing else is touched but dataset.json)."""
    out = Path(args.out).expanduser()
    result = apply_filter(
        out,
        keep_fraction=args.keep_fraction,
        max_score=args.max_score,
        per_class=args.per_class,
        force=args.force,
    )
    say(
        f"dst3d filter: kept {len(result.kept)} of {result.total} images "
        f"({100 * len(result.kept) / max(1, result.total):.1f}%), highest kept score "
        f"{result.highest_kept:.3f} -> {result.path}"
    )
    return 0


def run_report(args: argparse.Namespace) -> int:
    """The report stage: one PNG."""
    out = Path(args.out).expanduser()
    output = Path(args.output).expanduser() if args.output else out / "kcf_report.png"
    if args.output and output.is_dir():
        raise UsageError(f"--output {output}: is a folder; name the PNG file to write")
    if args.output and not output.parent.is_dir():
        raise UsageError(f"--output {output}: no folder {output.parent} to write it in")
    write_report(out, output, count=args.count, tile=args.tile)
    say(f"dst3d report: -> {output}")
    return 0


#: The stages this module adds, for the dispatch in cli/__init__.py.
STAGES = {"kcf": run_kcf, "filter": run_filter, "report": run_report}
