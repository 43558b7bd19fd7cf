"""The batch script's doors: the command line and its messages, over the same functions the panel uses.

`tools/dst3d_batch.py` (also under `blender -b -P`) and the `dst3d` command call `main`. Each
stage's options and door live in a module of their own: `render.py` (and its process pool,
`render_pool.py`), `generate.py` (generate and run), `kcf.py` (kcf, filter, report), `prompts.py`,
`export.py`, `sheet.py` (pictures of a dataset), `eval.py`; the option
types and the batch script's words for settings are in `options.py`. Nothing here renders,
trains or generates: the doors parse, call the stage's run, and print one line per outcome.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..core.errors import Dst3dError
from . import eval as eval_door
from . import export, kcf, prompts, sheet
from .generate import add_generation_options, run_generate
from .options import PROG, Parser, UsageError, fail, join_dash_values
from .pipeline import run_all
from .render import add_render_options, run_render, run_worker


def build_parser() -> Parser:
    """The batch script's command line."""
    parser = Parser(prog=PROG, description="dst3d: annotated training images from aligned CAD models.")
    parser.add_argument("--version", action="version", version=f"dst3d {__version__}")
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", parser_class=Parser)
    stages.required = True

    r = stages.add_parser(
        "render",
        help="render control images, masks, depth and pose annotations",
        description="Render control images (edges), masks, depth and pose annotations of CAD models.",
    )
    add_render_options(r)
    g = stages.add_parser(
        "generate",
        help="turn the control images into images with a ControlNet diffusion model",
        description="Generate images from a dataset's control images with a ControlNet pipeline, "
        "in a worker process (the GPU's), writing generations.jsonl and images/.",
    )
    g.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (rendered already)")
    add_generation_options(g, common=True)
    run = stages.add_parser(
        "run",
        help="render, then generate",
        description="The render stage, then the generate stage, on one dataset folder. Without weights, "
        "a GPU or torch it still renders, and says what it skipped.",
    )
    add_render_options(run)
    add_generation_options(run, common=False)
    kcf.add_parsers(stages)
    prompts.add_parser(stages)
    export.add_parser(stages)
    sheet.add_parser(stages)
    eval_door.add_parser(stages)
    return parser


def main(argv: Sequence[str], script: Path | None = None) -> int:
    """Run the batch command line; returns the exit code.

    `script` is the batch script the render workers run (tools/dst3d_batch.py); without one (the
    installed `dst3d` command) they run `python -m dst3d_addon.cli`.
    """
    argv = list(argv)
    try:
        if argv[:1] == ["_worker"]:
            return run_worker(argv[1:])
        parser = build_parser()
        args, unknown = parser.parse_known_args(join_dash_values(argv))
        if unknown:  # said by the stage, not by the top parser
            raise UsageError(f"{PROG} {args.stage}: unrecognized arguments: {' '.join(unknown)} (see --help)")
        args.given = frozenset(word.split("=", 1)[0] for word in argv if word.startswith("--"))
        if args.stage == "render":
            return run_render(args, script)
        if args.stage == "generate":
            return run_generate(args)
        if args.stage == "run":
            return run_all(args, script)
        if args.stage in kcf.STAGES:
            return kcf.STAGES[args.stage](args)
        for door in (prompts, export, sheet, eval_door):
            if args.stage in door.STAGES:
                return door.STAGES[args.stage](args)
        raise UsageError(f"unknown stage {args.stage!r}")
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except (Dst3dError, ValueError) as exc:  # settings validation names the setting
        fail(exc)
        return 2
    except OSError as exc:  # the disk, not the input: a full disk, a folder that went away
        where = exc.filename if exc.filename is not None else "dst3d"
        fail(f"{where}: {exc.strerror or exc}")
        return 1


def stop_on_sigterm() -> None:
    """Make SIGTERM stop a stage as Ctrl-C does: its workers are stopped, what is written stays,
    and the same command resumes (a batch system's kill must not orphan the workers)."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, interrupt)


def console_main() -> None:
    """The `dst3d` command (installed with the package): the batch script without a script file."""
    stop_on_sigterm()
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
