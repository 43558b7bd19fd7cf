"""Fixtures of the KCF tests: datasets of the sample airliner's renders, made once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.kcf.kcf_helpers import render


@pytest.fixture(scope="session")
def renders_64(tmp_path_factory) -> Path:
    """160 views of the sample airliner at 64x64, elevation ~ N(30, 20 deg) (copy it before writing)."""
    return render(tmp_path_factory.mktemp("kcf") / "renders64", 160, 64, sampling="3")


@pytest.fixture(scope="session")
def small_renders(tmp_path_factory) -> Path:
    """24 views at 48x48: for the plumbing tests."""
    return render(tmp_path_factory.mktemp("kcf") / "small", 24, 48)


@pytest.fixture
def small_copy(small_renders, tmp_path) -> Path:
    out = tmp_path / "small"
    shutil.copytree(small_renders, out)
    return out
