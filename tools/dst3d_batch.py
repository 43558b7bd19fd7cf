"""dst3d's headless entry point.

    blender -b -P tools/dst3d_batch.py -- render --cad model.glb --out runs/x
    python tools/dst3d_batch.py render --cad model.glb --out runs/x      (with the bpy module)

The dst3d_addon package next to this script is loaded by path (sys.path is left alone).
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent


def _load_package():
    """Import dst3d_addon from this checkout without touching sys.path."""
    name = "dst3d_addon"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / name / "__init__.py", submodule_search_locations=[str(ROOT / name)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _arguments() -> list[str]:
    """The script's own arguments: after `--` inside Blender, else everything after the script."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1 :]
    return sys.argv[1:]


def _python_handles_ctrl_c() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt, as under plain Python.

    Inside a Blender binary, SIGINT is Blender's own "break" event, which a script never sees: the
    run would go on to its end. With Python's handler back, the batch script stops its workers,
    keeps what is written and exits with status 130, whichever Python it runs in.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> int:
    """Run the batch command line and return its exit code."""
    _python_handles_ctrl_c()
    _load_package()
    from dst3d_addon import cli

    arguments = _arguments()
    if arguments[:1] != ["_worker"]:
        cli.stop_on_sigterm()
    return cli.main(arguments, SCRIPT)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
