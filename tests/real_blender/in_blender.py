"""Run pytest inside a Blender binary, so that in-process tests meet a real Blender, not the module:

    PYTHONPATH=DIR blender -b --factory-startup -noaudio --python-use-system-env \
        -P tests/real_blender/in_blender.py -- tests/blender/test_cad_import.py [pytest options]

DIR holds pytest and trimesh for Blender's Python (`.ci/run` installs them into
`.venvs/blender-binary-site`); Blender's own numpy stays the one it runs with. The exit status is
pytest's. Run from the repository root (pytest's `pythonpath` then finds dst3d_addon and tests).
"""

import sys

import pytest


def main() -> int:
    """pytest over the arguments after `--`, without a cache folder (the tree may be read-only)."""
    args = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    return int(pytest.main(["-p", "no:cacheprovider", *args]))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
