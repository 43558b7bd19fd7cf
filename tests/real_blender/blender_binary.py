"""The Blender binary the real-Blender tests run, and why they are skipped where there is none.

`DST3D_TEST_BLENDER` names the binary (default: `blender` on PATH; `.ci/run` installs Debian's).
Its Python must import numpy and OpenCV (Debian's Blender runs on the system's Python 3.11, so
`python3-numpy` and `python3-opencv` serve it).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

#: What the binary's Python must import for the batch script and the add-on.
_CHECK = "import sys, bpy, numpy, cv2; print('DST3D_OK', bpy.app.version_string, numpy.__version__)"


@functools.cache
def binary() -> tuple[str | None, str]:
    """(path of a usable Blender binary, or None; the reason when None, else its version line)."""
    name = os.environ.get("DST3D_TEST_BLENDER", "blender")
    path = shutil.which(name)
    if path is None:
        return None, f"no Blender binary {name!r} on PATH (apt-get install blender; .ci/run installs it)"
    try:
        done = subprocess.run(
            [path, "-b", "--factory-startup", "-noaudio", "--python-expr", _CHECK],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{path} does not start: {exc}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("DST3D_OK ")]
    if not lines:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return (
            None,
            f"{path}'s Python lacks numpy or OpenCV (apt-get install python3-numpy python3-opencv): {last[0]}",
        )
    return path, lines[0].removeprefix("DST3D_OK ")


def require_binary() -> str:
    """The binary's path, or skip the calling test with the reason there is none."""
    path, why = binary()
    if path is None:
        pytest.skip(why)
    return path
