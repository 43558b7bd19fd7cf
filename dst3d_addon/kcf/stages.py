"""The batch script's kcf, filter and report stages: options and orchestration (no torch here).

`kcf` starts the worker Python (`python -m dst3d_addon.kcf.worker`), which trains one pose
estimator per fold and scores the fold it did not see; this process plans the folds, draws the
progress and writes kcf.json. `filter` writes the kept set; `report` draws the PNG people look at
before they trust a filter.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from .. import __version__
from ..core.dataset import Dataset, write_json_atomic
from ..core.progress import Progress, format_duration
from ..core.worker_protocol import LineReader
from ..generation.client import PACKAGE_ROOT, default_python
from .settings import BACKBONES, GROUP_BY, IMAGE_KINDS, OPTIMIZERS, KcfError, KcfSettings, default_pretrained


def _cli():
    from .. import cli  # lazily: cli imports this module

    return cli


def _fraction(text: str) -> float:
    value = _cli()._positive_float("--keep-fraction")(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"--keep-fraction {text!r}: must be in (0, 1]")
    return value


def add_parsers(stages) -> None:
    """Add the kcf, filter and report stages to the batch script's sub-parsers."""
    cli = _cli()
    pos_int, pos_float, fin_float = cli._positive_int, cli._positive_float, cli._finite_float
    k = stages.add_parser(
        "kcf",
        help="K-fold consistency filter: score every image by a pose estimator that did not see it",
        description="Train K pose estimators (ResNet, 41-bin azimuth/elevation/theta heads), each on K-1 folds, "
        "and score each image of the held-out fold by its loss; writes kcf.json.",
    )
    k.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    k.add_argument("--folds", type=pos_int("--folds"), default=5, metavar="K", help="folds (default 5)")
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
    t.add_argument("--epochs", type=pos_int("--epochs"), default=30, help="epochs per fold (default 30)")
    t.add_argument("--batch-size", type=pos_int("--batch-size"), default=32, help="default 32")
    t.add_argument(
        "--image-size", type=pos_int("--image-size"), default=256, metavar="PX", help="default 256"
    )
    t.add_argument("--lr", type=pos_float("--lr"), default=0.01, help="learning rate (default 0.01)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="sgd (default, as 3D-DST) or adamw")
    t.add_argument("--momentum", type=fin_float("--momentum"), default=0.9, help="SGD momentum (default 0.9)")
    t.add_argument("--weight-decay", type=fin_float("--weight-decay"), default=1e-4, help="default 1e-4")
    t.add_argument(
        "--backbone", choices=list(BACKBONES), default="resnet-50", help="default resnet-50 (3D-DST)"
    )
    t.add_argument(
        "--pretrained",
        default="auto",
        metavar="ID|PATH|none",
        help="ImageNet weights: a hub id or a local folder (default: microsoft/resnet-N for --backbone); "
        "random initialisation, with a warning, when they cannot be had",
    )
    t.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random shifts and brightness while training (default on)",
    )
    t.add_argument(
        "--label-sigma",
        type=fin_float("--label-sigma"),
        default=3.0,
        metavar="BINS",
        help="spread each label over neighbouring bins (circular Gaussian, in bins, default 3; 0 = 3D-DST's one-hot)",
    )
    t.add_argument("--seed", type=int, default=0, help="folds, initialisation and batch order derive from it")
    x = k.add_argument_group("execution")
    x.add_argument(
        "--device", type=cli._device, default="auto", help="auto (CUDA when available), cpu, cuda[:N], mps"
    )
    x.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, default=True, help="mixed precision on CUDA"
    )
    x.add_argument("--threads", type=pos_int("--threads"), default=None, help="CPU threads for torch")
    x.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="the worker Python with torch and transformers (default: $DST3D_WORKER_PYTHON or this Python)",
    )
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
    rule.add_argument("--keep-fraction", type=_fraction, metavar="F", help="keep the F lowest-scoring images")
    rule.add_argument("--max-score", type=fin_float("--max-score"), metavar="S", help="keep scores <= S")
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
        "--count", type=pos_int("--count"), default=8, metavar="N", help="worst and best images (8)"
    )
    r.add_argument("--tile", type=pos_int("--tile"), default=160, metavar="PX", help="image tile size (160)")


# ----------------------------------------------------------------------------------------- kcf


def settings_from_args(args: argparse.Namespace) -> KcfSettings:
    """KcfSettings from the kcf stage's options (a bad combination raises the cli's UsageError)."""
    pretrained = args.pretrained
    if pretrained == "auto":
        pretrained = default_pretrained(args.backbone)
    elif pretrained.lower() == "none":
        pretrained = None
    elif pretrained.startswith(("/", ".", "~")) and not Path(pretrained).expanduser().exists():
        raise _cli().UsageError(f"--pretrained {pretrained}: no such file or folder")
    try:
        return KcfSettings(
            folds=args.folds,
            images=args.images,
            epochs=args.epochs,
            batch_size=args.batch_size,
            image_size=args.image_size,
            lr=args.lr,
            optimizer=args.optimizer,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            backbone=args.backbone,
            pretrained=pretrained,
            group_by=args.group_by,
            seed=args.seed,
            classes=tuple(args.classes),
            augment=args.augment,
            label_sigma=args.label_sigma,
        )
    except ValueError as err:
        raise _cli().UsageError(str(err)) from None


def worker_python(args: argparse.Namespace) -> str:
    """--python, else $DST3D_WORKER_PYTHON, else this Python."""
    python = args.python or default_python()
    if not python or not (Path(python).is_file() or _which(python)):
        raise _cli().UsageError(f"--python {python}: no such interpreter")
    return python


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def plan(out: Path, settings: KcfSettings):
    """(items, folds, fingerprint) of a run: the judged images, their folds and the inputs' hash."""
    from .folds import FoldError, assign_folds
    from .items import collect_items

    items = collect_items(out, settings.images, settings.classes)
    try:
        folds = assign_folds([it.group(settings.group_by) for it in items], settings.folds, settings.seed)
    except FoldError as err:
        raise _cli().UsageError(str(err)) from None
    fingerprint = settings.fingerprint(
        [{"file": it.file, "pose": list(it.pose), "fold": f} for it, f in zip(items, folds, strict=True)]
    )
    return items, folds, fingerprint


class _WorkerRun:
    """Runs the worker, turning its messages into progress and one-line errors."""

    def __init__(self, python: str, job_path: Path, log: Path, progress: Progress) -> None:
        self.python = python
        self.job_path = job_path
        self.log = log
        self.progress = progress
        self.error: str | None = None
        self.missing: dict | None = None
        self.folds_done: list[dict] = []

    def _say(self, text: str) -> None:
        stream = self.progress.stream
        if self.progress.enabled and self.progress.tty:
            stream.write("\r\x1b[K")
        stream.write(text + "\n")
        stream.flush()

    def handle(self, msg: dict, quiet: bool) -> None:
        kind = msg.get("type")
        if kind == "batch":
            self.progress.update(int(msg.get("n", 0)))
        elif kind == "warning":
            self._say(f"dst3d kcf: warning: {msg.get('message')}")
        elif kind == "started" and not quiet:
            amp = f", mixed precision {msg['amp']}" if msg.get("amp") else ""
            self._say(f"dst3d kcf: worker on {msg.get('device')}{amp}, {msg.get('images')} images loaded")
        elif kind == "epoch" and not quiet and not self.progress.tty:
            self._say(
                f"dst3d kcf: fold {msg['fold'] + 1} epoch {msg['epoch']}/{msg['epochs']}: loss {msg['loss']:.3f}, "
                f"{msg['images_per_s']:.1f} images/s"
            )
        elif kind == "fold_done":
            self.folds_done.append(msg)
            if not quiet:
                self._say(
                    f"dst3d kcf: fold {msg['fold'] + 1} done in {format_duration(msg['seconds'])}: "
                    f"accuracy {100 * msg['accuracy_pi_6']:.1f}% at pi/6, {100 * msg['accuracy_pi_18']:.1f}% at pi/18"
                )
        elif kind == "fatal":
            self.error = str(msg.get("error"))
        elif kind == "missing":
            self.missing = msg

    def run(self, quiet: bool) -> int:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        reader = LineReader()
        with open(self.log, "ab") as log_file:
            try:
                process = subprocess.Popen(
                    [self.python, "-m", "dst3d_addon.kcf.worker", str(self.job_path)],
                    stdout=subprocess.PIPE,
                    stderr=log_file,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            except OSError as err:
                raise KcfError(f"--python {self.python}: cannot start it ({err.strerror or err})") from None
            try:
                while True:
                    data = process.stdout.read1(1 << 16)
                    if not data:
                        break
                    for msg in reader.feed(data):
                        self.handle(msg, quiet)
                return process.wait()
            except BaseException:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                raise


def _fail(message: str) -> int:
    """A run that started but could not finish: one line, exit status 1 (bad input gives 2)."""
    print(f"dst3d: error: {message}", file=sys.stderr)
    return 1


def run_kcf(args: argparse.Namespace) -> int:
    """The kcf stage; returns the exit code."""
    from .results import assemble, read_fold, write_kcf

    settings = settings_from_args(args)
    out = Path(args.out).expanduser()
    python = worker_python(args)
    items, folds, fingerprint = plan(out, settings)
    Dataset.open(out, "kcf", settings.as_dict(), allow_mixed=args.allow_mixed, tool_version=__version__)
    finished = {f: read_fold(out, f, fingerprint) for f in range(settings.folds)}
    pending = [f for f, r in finished.items() if r is None]
    sizes = [sum(1 for x in folds if x == f) for f in range(settings.folds)]
    print(
        f"dst3d kcf: {len(items)} images ({settings.images}), {settings.folds} folds by {settings.group_by} "
        f"({', '.join(map(str, sizes))}); {len(pending)} to train, {settings.folds - len(pending)} already done "
        f"-> {out}",
        file=sys.stderr,
    )
    start = time.monotonic()
    if pending:
        job = {
            "out": str(out.resolve()),
            "settings": settings.as_dict(),
            "fingerprint": fingerprint,
            "files": [it.file for it in items],
            "poses": [list(it.pose) for it in items],
            "folds": folds,
            "pending": pending,
            "device": args.device,
            "threads": args.threads,
            "amp": args.amp,
            "save_weights": args.save_weights,
        }
        job_path = out / "kcf" / "job.json"
        write_json_atomic(job_path, job)
        total = sum(settings.epochs * (len(items) - sizes[f]) + sizes[f] for f in pending)
        progress = Progress(total, "images", enabled=not args.quiet)
        run = _WorkerRun(python, job_path, out / "logs" / "kcf-worker.log", progress)
        try:
            code = run.run(args.quiet)
        except KeyboardInterrupt:
            progress.close()
            print(
                f"dst3d kcf: interrupted after {len(run.folds_done)} new fold(s); "
                "run the same command again to resume",
                file=sys.stderr,
            )
            return 130
        progress.close()
        if run.missing is not None:
            return _fail(
                f"--python {python}: cannot import {run.missing['module']} ({run.missing['error']}); "
                "install torch and transformers (and numpy, opencv-python-headless) into that Python, "
                "or pass --python PATH (or set DST3D_WORKER_PYTHON) to one that has them"
            )
        if run.error is not None:
            return _fail(run.error)
        if code != 0:
            return _fail(f"the kcf worker ({python}) exited with code {code}; see {run.log}")
    results = [read_fold(out, f, fingerprint) for f in range(settings.folds)]
    if any(r is None for r in results):
        raise KcfError(
            f"kcf: fold results missing under {out / 'kcf'} after the worker finished; see the log"
        )
    content = assemble(items, folds, results, settings.as_dict(), fingerprint, __version__)
    path = write_kcf(out, content)
    acc = content["accuracy"]
    print(
        f"dst3d kcf: {len(items)} images scored in {format_duration(time.monotonic() - start)}; held-out accuracy "
        f"{100 * acc['pi_6']:.1f}% at pi/6, {100 * acc['pi_18']:.1f}% at pi/18 -> {path}",
        file=sys.stderr,
    )
    return 0


# ----------------------------------------------------------------------------------------- filter


def run_filter(args: argparse.Namespace) -> int:
    """The filter stage: keep.jsonl from kcf.json (nothing else is touched but dataset.json)."""
    from ..core.keep import FILTER_STAGE, select_kept, write_keep
    from .results import load_kcf

    out = Path(args.out).expanduser()
    kcf = load_kcf(out)
    entries = kcf["images"]
    try:
        kept = select_kept(
            entries, keep_fraction=args.keep_fraction, max_score=args.max_score, per_class=args.per_class
        )
    except ValueError as err:
        raise _cli().UsageError(str(err)) from None
    settings = {
        "images": kcf.get("settings", {}).get("images"),
        "keep_fraction": args.keep_fraction,
        "max_score": args.max_score,
        "per_class": args.per_class,
        "kcf_fingerprint": kcf.get("fingerprint"),
    }
    Dataset.open(out, FILTER_STAGE, settings, allow_mixed=True, tool_version=__version__)
    path = write_keep(out, kept)
    cut = max((float(e["score"]) for e in kept), default=float("nan"))
    print(
        f"dst3d filter: kept {len(kept)} of {len(entries)} images "
        f"({100 * len(kept) / max(1, len(entries)):.1f}%), highest kept score {cut:.3f} -> {path}",
        file=sys.stderr,
    )
    return 0


# ----------------------------------------------------------------------------------------- report


def run_report(args: argparse.Namespace) -> int:
    """The report stage: one PNG."""
    from .report import write_report

    out = Path(args.out).expanduser()
    output = Path(args.output).expanduser() if args.output else out / "kcf_report.png"
    write_report(out, output, count=args.count, tile=args.tile)
    print(f"dst3d report: -> {output}", file=sys.stderr)
    return 0


#: The stages this module adds, for cli.main's dispatch.
STAGES = {"kcf": run_kcf, "filter": run_filter, "report": run_report}
