"""The sheet stage's door: pictures of a dataset (core/sheet.py draws them), one line per outcome."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.dataset import KIND_WORDS
from ..core.sheet import PICTURE_KINDS, SheetSettings, write_pictures
from .options import UsageError, cli_text, positive_int, say


def add_parser(stages: argparse._SubParsersAction) -> None:
    """Add the sheet stage to the batch script's sub-parsers."""
    s = stages.add_parser(
        "sheet",
        help="draw a dataset's contact sheet (control, image, mask outline, pose axes) and viewpoints",
        description="Draw two PNGs of a dataset: a contact sheet (per image: the control image, the image with "
        "its mask outline and its pose's axes) and the azimuth x elevation distribution of each class. "
        "Only those two files are written.",
    )
    s.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    s.add_argument(
        "--images",
        choices=PICTURE_KINDS,
        default="auto",
        help="the images to show beside the control images (default auto: generated if any, else renders)",
    )
    s.add_argument("--all", action="store_true", help="ignore the filter's keep set: every image")
    s.add_argument("--classes", nargs="+", default=[], metavar="CLASS", help="only these classes")
    s.add_argument(
        "--count",
        type=positive_int("--count", most=1024),
        default=24,
        metavar="N",
        help="images on the sheet, spread over the classes and their views (default 24)",
    )
    s.add_argument(
        "--tile",
        type=positive_int("--tile", most=1024),
        default=128,
        metavar="PX",
        help="tile size (default 128)",
    )
    s.add_argument(
        "--columns",
        type=positive_int("--columns", most=64),
        default=4,
        metavar="N",
        help="images a row (default 4)",
    )
    s.add_argument(
        "--to",
        metavar="DIR",
        help="the folder to write sheet.png and viewpoints.png in (default: the dataset folder)",
    )


def run_sheet(args: argparse.Namespace) -> int:
    """The sheet stage: two PNGs (bad input raises and gives 2, with nothing written)."""
    try:
        settings = SheetSettings(
            images=args.images,
            respect_keep=not args.all,
            classes=tuple(args.classes),
            count=args.count,
            tile=args.tile,
            columns=args.columns,
        )
    except ValueError as err:
        raise UsageError(cli_text(err)) from None
    out = Path(args.out).expanduser()
    pictures = write_pictures(out, None if args.to is None else Path(args.to).expanduser(), settings)
    classes = ", ".join(f"{name} {n}" for name, n in sorted(pictures.per_class.items()))
    say(
        f"dst3d sheet: {pictures.shown} of {pictures.total} {KIND_WORDS[pictures.images]} on the sheet ({classes}) "
        f"-> {pictures.sheet}, {pictures.viewpoints}"
    )
    return 0


#: The stages this module adds, for the dispatch in cli/__init__.py.
STAGES = {"sheet": run_sheet}
