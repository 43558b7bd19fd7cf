"""Fixtures of the export tests: a small dataset of two classes rendered once per session.

`airliner` (synset n02690373) has three CAD models and `jet` (no synset) two, all copies of the
sample airliner under other names, four views each at 64x64 over the whole sphere with some roll.
The CAD files sit at absolute paths, so the pascal3d export finds them from any folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.batch_script import SAMPLE, run_batch
from tests.export.export_helpers import digest_tree

CLASSES = {"airliner": ("n02690373", ["a1", "a2", "a3"]), "jet": (None, ["j1", "j2"])}
VIEWS = 4


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Path:
    """The shared dataset (read-only: tests that write copy it with `dataset`)."""
    base = tmp_path_factory.mktemp("export")
    out = base / "ds"
    for name, (synset, models) in CLASSES.items():
        args = ["render", "--class-name", name, "--views", VIEWS, "--resolution", 64, "--sampling", "sphere"]
        args += ["--theta-std", 20, "--out", out, "--quiet"]
        if synset:
            args += ["--synset", synset]
        for model in models:
            shutil.copy(SAMPLE, base / f"{model}.glb")
            args += ["--cad", base / f"{model}.glb"]
        proc = run_batch(*args)
        assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def rendered_digest(rendered) -> dict[str, str]:
    return digest_tree(rendered)


@pytest.fixture
def dataset(rendered, tmp_path) -> Path:
    """A copy of the shared dataset that a test may change."""
    out = tmp_path / "ds"
    shutil.copytree(rendered, out)
    return out
