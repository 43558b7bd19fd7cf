"""The export stage's door: its options, a progress bar, and one line per outcome (the formats
themselves are in core/export*.py and core/pascal3d.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..core.dataset import IMAGE_KINDS
from ..core.export import FORMATS, ExportRun, ExportSettings, check_packages, check_target, plan_export
from ..core.packages import MissingPackage
from ..core.pascal3d import DEFAULT_SOURCE
from ..core.progress import Progress, format_duration
from .options import fail, positive_float, positive_int, say, seed


def add_parser(stages: argparse._SubParsersAction) -> None:
    """Add the export stage to the batch script's sub-parsers."""
    e = stages.add_parser(
        "export",
        help="write a dataset's images and labels as COCO, PASCAL3D+, ImageFolder or WebDataset",
        description="Export one kind of image of a dataset folder, with its pose labels, to another format "
        "in a folder of its own. The dataset is never written to; the filter's keep set is respected.",
    )
    e.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    e.add_argument("--format", required=True, choices=FORMATS, help="the format to write")
    e.add_argument(
        "--to",
        required=True,
        metavar="DIR",
        help="the export folder: new, empty, or this export's to resume it",
    )
    e.add_argument(
        "--images",
        choices=IMAGE_KINDS,
        default="generated",
        help="which image of each view (default generated)",
    )
    e.add_argument("--all", action="store_true", help="ignore the filter's keep set: export every image")
    e.add_argument("--link", action="store_true", help="hard-link the images instead of copying them")
    e.add_argument(
        "--holdout-models",
        type=positive_float("--holdout-models"),
        metavar="FRACTION",
        help="hold out this fraction of each class's CAD models as a val split (a model is never on both sides)",
    )
    e.add_argument(
        "--seed", type=seed("--seed"), default=0, help="which models --holdout-models picks (default 0)"
    )
    w = e.add_argument_group("webdataset")
    w.add_argument(
        "--shard-size", type=positive_int("--shard-size"), metavar="N", help="samples a shard (default 1000)"
    )
    w.add_argument("--mask", action="store_true", help="add each image's mask (<key>.mask.png)")
    w.add_argument("--depth", action="store_true", help="add each view's depth (<key>.depth.npy, float32)")
    p = e.add_argument_group("pascal3d")
    p.add_argument(
        "--source",
        metavar="NAME",
        help=f"the source part of the folder names, <class>_<source> (default {DEFAULT_SOURCE}; "
        "PASCAL3D+'s own are imagenet and pascal)",
    )
    e.add_argument("--quiet", action="store_true", help="no progress bar")


def count(n: int, noun: str) -> str:
    """`1 model`, `3 models`, `2 classes`."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def run_export(args: argparse.Namespace) -> int:
    """The export stage; returns the exit code (bad input raises and gives 2, a missing package 1)."""
    settings = ExportSettings(
        format=args.format,
        images=args.images,
        respect_keep=not args.all,
        holdout_models=args.holdout_models,
        seed=args.seed,
        link=args.link,
        shard_size=args.shard_size,
        mask=args.mask,
        depth=args.depth,
        source=args.source,
    )
    out = Path(args.out).expanduser()
    to = check_target(out, args.to)
    try:
        check_packages(settings.format)
    except MissingPackage as err:
        fail(err)
        return 1
    plan = plan_export(out, settings)
    run = ExportRun(plan, to, tool_version=__version__)
    resuming = run.check()
    kept = "every image" if args.all else "the keep set respected"
    say(
        f"dst3d export: {len(plan.samples)} {settings.images} images of {count(len(plan.classes), 'class')} ({kept}) "
        f"-> {settings.format} in {to}{' (resuming)' if resuming else ''}"
    )
    progress = Progress(len(plan.samples), "images", enabled=not args.quiet)

    def note(text: str) -> None:
        progress.clear()
        say(f"dst3d export: warning: {text}")

    try:
        summary = run.run(progress.update, note)
    except KeyboardInterrupt:
        progress.close()
        say("dst3d export: interrupted; run the same command again to resume")
        return 130
    except MissingPackage as err:
        progress.close()
        fail(err)
        return 1
    progress.close()
    if plan.empty:
        say(f"dst3d export: {len(plan.empty)} view(s) with an empty mask left out (nothing to label)")
    for cls in summary.unsplit_classes:
        say(f"dst3d export: class {cls} has one CAD model, so all of it is in train")
    splits = ", ".join(
        f"{split} {count(c['images'], 'image')} ({count(c['models'], 'model')}, {count(c['classes'], 'class')})"
        for split, c in summary.counts.items()
    )
    say(
        f"dst3d export: {splits}; {summary.copied} copied, {summary.linked} linked, {summary.unchanged} already "
        f"there, in {format_duration(summary.seconds)} -> {to}"
    )
    return 0


#: The stages this module adds, for the dispatch in cli/__init__.py.
STAGES = {"export": run_export}
