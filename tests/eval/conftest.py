"""Fixtures of the eval tests: two small datasets of the sample airliner rendered once per session.

`train` holds two copies of the airliner under other names (models a1, a2), `test` a third (a3),
eight and six views each at 48x48 over the whole sphere: enough to check the plumbing, not to
learn poses (tools/bench_eval.py measures that).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.batch_script import SAMPLE, run_batch
from tests.export.export_helpers import digest_tree


def render(base: Path, name: str, models: list[str], views: int, seed: int) -> Path:
    out = base / name
    args = [
        "render",
        "--class-name",
        "airliner",
        "--views",
        views,
        "--resolution",
        48,
        "--sampling",
        "sphere",
    ]
    args += ["--seed", seed, "--out", out, "--quiet"]
    for model in models:
        shutil.copy(SAMPLE, base / f"{model}.glb")
        args += ["--cad", base / f"{model}.glb"]
    proc = run_batch(*args)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    """(train, test) dataset folders (read-only)."""
    base = tmp_path_factory.mktemp("eval")
    return render(base, "train", ["a1", "a2"], 8, 1), render(base, "test", ["a3"], 6, 2)


@pytest.fixture(scope="session")
def sources_digest(sources) -> dict[str, str]:
    return {**digest_tree(sources[0]), **{f"test/{k}": v for k, v in digest_tree(sources[1]).items()}}
