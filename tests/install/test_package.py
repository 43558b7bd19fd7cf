"""`pip install .` as a user would: the wheel builds, holds the package and its shipped configs, and
the installed `dst3d` command and record loader work from outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dst3d_addon import __version__

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "assets" / "sample" / "airliner.glb"

pytestmark = pytest.mark.slow


def run(
    *command: str, cwd: Path, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run([*command], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from the checkout, installed into a folder of its own (no dependencies)."""
    work = tmp_path_factory.mktemp("package")
    source, wheels, site = work / "source", work / "wheels", work / "site"
    # A copy of what the build reads, so the build's own folders never land in the checkout.
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "dst3d_addon", source / "dst3d_addon", ignore=shutil.ignore_patterns("__pycache__")
    )
    build = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
        str(source), cwd=work,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("dst3d-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dst3d_addon/cli/__init__.py" in names and "dst3d_addon/generation/worker/loop.py" in names
    assert "dst3d_addon/generation/configs/sd15/unet/config.json" in names
    assert "dst3d_addon/core/resources/synset_names.tsv" in names
    assert "dst3d_addon/core/resources/LICENSE-WordNet-3.0" in names
    assert "dst3d_addon/prompting/resources/template_words.txt" in names
    assert "dst3d_addon/prompting/resources/llm_template.txt" in names
    assert not any(n.startswith(("tests/", "tools/")) or n == "__init__.py" for n in names)
    install = run(
        sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel), cwd=work
    )
    assert install.returncode == 0, install.stderr
    return site


def _env(site: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)  # the installed package, never the checkout
    return env


def test_the_dst3d_command_renders_from_outside_the_checkout(installed, tmp_path):
    command = installed / "bin" / "dst3d"
    version = run(str(command), "--version", cwd=tmp_path, env=_env(installed))
    assert version.returncode == 0 and version.stdout.strip() == f"dst3d {__version__}"
    out = tmp_path / "out"
    done = run(
        str(command), "render", "--cad", str(SAMPLE), "--views", "2", "--resolution", "48", "--out", str(out),
        "--quiet", cwd=tmp_path, env=_env(installed),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 views written" in done.stderr
    bad = run(str(command), "render", "--views", "0", "--out", str(out), cwd=tmp_path, env=_env(installed))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].endswith(
        "must be positive (see --help)"
    )

    loader = (
        "import sys, dst3d_addon\n"
        "from dst3d_addon.core.records import load_annotations\n"
        "assert dst3d_addon.__file__.startswith(sys.argv[2]), dst3d_addon.__file__\n"
        "records = load_annotations(sys.argv[1])\n"
        "print(len(records), records[0]['camera']['K'].shape)\n"
    )
    read = run(sys.executable, "-c", loader, str(out), str(installed), cwd=tmp_path, env=_env(installed))
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["2", "(3,", "3)"]
