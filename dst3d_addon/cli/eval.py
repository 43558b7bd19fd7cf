"""The eval stage's door: its options, and what the user reads of the run in `eval/run.py`
(progress, one line per epoch in a log, the metrics per class, one-line errors). No torch here."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from ..core.dataset import IMAGE_KINDS
from ..core.packages import MissingPackage
from ..core.progress import Progress, format_duration
from ..eval.run import EvalOptions, EvalRun, default_to, load_results, plan_eval
from ..eval.settings import EvalSettings, check_init, open_source
from ..generation.worker_env import default_python
from ..kcf.run import check_python
from .kcf import WorkerLines, add_execution_options, add_training_options, training_from_args
from .options import fail, say

#: eval trains with 3D-DST's recipe (kcf/recipes.py PRETRAINED) wherever an option is not given.
EVAL_DEFAULTS = {
    "recipe": "3D-DST's",
    "fixed": "yes",
    "backbone": "default: resnet-50 (3D-DST)",
    "pretrained": "Random initialisation, with a warning, when they cannot be had",
}


def add_parser(stages: argparse._SubParsersAction) -> None:
    """Add the eval stage to the batch script's sub-parsers."""
    e = stages.add_parser(
        "eval",
        help="does the data help? train a pose estimator on one dataset, test it on another",
        description="Train KCF's pose estimator (ResNet, 41-bin azimuth/elevation/theta heads) on one source and "
        "test it on another; report Acc@pi/6, Acc@pi/18 and the median geodesic error per class, and draw the "
        "azimuth confusion. A source is a dst3d dataset or a PASCAL3D+-layout folder (PASCAL3D+, ObjectNet3D, "
        "export --format pascal3d). Neither source is written to.",
    )
    s = e.add_argument_group("sources")
    for side, verb in (("train", "train on"), ("test", "test on")):
        s.add_argument(
            f"--{side}",
            required=True,
            metavar="DIR",
            help=f"the images to {verb}: a dst3d dataset or a PASCAL3D+-layout folder",
        )
        s.add_argument(
            f"--{side}-images",
            choices=IMAGE_KINDS,
            default=None,
            help=f"a dst3d --{side}: which image of each view (default generated)",
        )
        s.add_argument(
            f"--{side}-split",
            metavar="NAME",
            default=None,
            help=f"a PASCAL3D+ --{side}: only the images Image_sets/<class>_<source>_NAME.txt lists (default all)",
        )
        s.add_argument(
            f"--{side}-classes",
            nargs="+",
            default=[],
            metavar="CLASS",
            help=f"only these classes of --{side}",
        )
    s.add_argument("--all", action="store_true", help="ignore dst3d sources' keep sets: every image")
    e.add_argument(
        "--to",
        metavar="DIR",
        help="the eval folder: new, empty, or this eval's to resume it (default eval/<train>-on-<test>)",
    )
    e.add_argument(
        "--init",
        metavar="WEIGHTS",
        help="start from these weights (an eval's model.safetensors, say pretrained on dst3d data) and "
        "fine-tune on --train; replaces --pretrained",
    )
    add_training_options(
        e.add_argument_group("training"),
        seed_help="initialisation, batch order and augmentation derive from it",
        defaults=EVAL_DEFAULTS,
    )
    x = e.add_argument_group("execution")
    add_execution_options(x)
    x.add_argument("--quiet", action="store_true", help="no progress bar")


class _Lines(WorkerLines):
    """The eval stage's lines while its worker runs: progress, warnings, an epoch line in a log."""

    stage = "eval"

    def more(self, kind: object, msg: dict) -> None:
        quiet = self.quiet
        if kind == "started" and not quiet:
            amp = f", mixed precision {msg['amp']}" if msg.get("amp") else ""
            at = f", resuming after epoch {msg['epoch']}" if msg.get("epoch") else ""
            self._say(f"dst3d eval: worker on {msg.get('device')}{amp}, from {msg.get('initialisation')}{at}")
        elif kind == "epoch" and not quiet and not self.progress.tty:
            self._say(
                f"dst3d eval: epoch {msg['epoch']}/{msg['epochs']}: loss {msg['loss']:.3f}, "
                f"{msg['images_per_s']:.1f} images/s"
            )


def _classes(names: list[str]) -> str:
    return f"{len(names)} class{'es' if len(names) != 1 else ''}"


def metrics_line(name: str, m: dict) -> str:
    """`car: 80 objects, Acc@pi/6 91.2%, Acc@pi/18 40.0%, median error 8.1 deg`."""
    acc = m["accuracy"]
    median = m["median_error_deg"]
    return (
        f"{name}: {m['images']} objects, Acc@pi/6 {100 * acc['pi_6']:.1f}%, Acc@pi/18 {100 * acc['pi_18']:.1f}%, "
        f"median error {median:.1f} deg"
        if math.isfinite(median)
        else f"{name}: no objects"
    )


def run_eval(args: argparse.Namespace) -> int:
    """The eval stage; returns the exit code (bad input raises and gives 2; a failed worker gives 1)."""
    training, _ = training_from_args(args)
    sides = {}
    for side in ("train", "test"):
        sides[side] = open_source(
            side,
            getattr(args, side),
            images=getattr(args, f"{side}_images"),
            split=getattr(args, f"{side}_split"),
            classes=tuple(getattr(args, f"{side}_classes")),
            respect_keep=not args.all,
        )
    init = check_init(args.init, training) if args.init else None
    settings = EvalSettings(sides["train"], sides["test"], training, init)
    to = Path(args.to).expanduser() if args.to else default_to(settings)
    options = EvalOptions(
        python=check_python(args.python or default_python()),
        device=args.device,
        threads=args.threads,
        amp=args.amp,
    )
    try:
        plan = plan_eval(settings, to)
    except MissingPackage as err:  # scipy, for a PASCAL3D+ folder's .mat files
        fail(err)
        return 1
    for side in (plan.train, plan.test):
        if side.left_out:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(side.left_out.items()))
            say(f"dst3d eval: {side.source.side}: left out {why}")
    done = (
        "already done"
        if plan.finished
        else f"{training.epochs - plan.epochs_done} of {training.epochs} epochs to train"
    )
    say(
        f"dst3d eval: train on {len(plan.train.items)} objects ({_classes(plan.train.classes)}; "
        f"{plan.train.source.describe()}), test on {len(plan.test.items)} ({_classes(plan.test.classes)}; "
        f"{plan.test.source.describe()}); {done} -> {to}"
    )
    start = time.monotonic()
    if plan.finished:
        content, results, picture = load_results(plan)
    elif plan.predicted:  # stopped between the worker's last file and the results
        content, results, picture = EvalRun(plan, options).finish()
    else:
        run = EvalRun(plan, options)
        progress = Progress(plan.passes, "image passes", enabled=not args.quiet)
        run.on_message = _Lines(progress, args.quiet)
        try:
            code = run.run()
        except KeyboardInterrupt:
            progress.close()
            say("dst3d eval: interrupted; run the same command again to resume after the last finished epoch")
            return 130
        progress.close()
        if run.missing is not None:
            fail(run.missing_message())
            return 1
        if run.error is not None:
            fail(run.error)
            return 1
        if code != 0:
            fail(f"the eval worker ({options.python}) exited with code {code}; see {run.log}")
            return 1
        content, results, picture = run.finish()
    for name, m in content["classes"].items():
        say(f"dst3d eval: {metrics_line(name, m)}")
    if len(content["classes"]) > 1:
        say(f"dst3d eval: {metrics_line('all classes', content['overall'])}")
    say(f"dst3d eval: done in {format_duration(time.monotonic() - start)} -> {results}, {picture}")
    return 0


#: The stages this module adds, for the dispatch in cli/__init__.py.
STAGES = {"eval": run_eval}
