"""The export stage's option errors, in-process: exit 2, one stderr line naming the option, and
nothing written (the test's folder stays as it was; no --to folder appears).

Refusals that need a real dataset (no images of the kind asked for, a --to holding other files
or another export, a broken keep set) are end-to-end tests in tests/export/test_export_stage.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dst3d_addon.core.dataset import IMAGE_KINDS
from dst3d_addon.core.export import FORMATS
from tests.cli.cli_helpers import error, invalid_choice, usage

BASE = ("export", "--out", "ds", "--to", "exported")


def refused(run_cli, tmp_path: Path, *argv: str) -> list[str]:
    before = sorted(os.listdir(tmp_path))
    code, lines = run_cli(*argv)
    assert code == 2
    assert len(lines) == 1
    assert sorted(os.listdir(tmp_path)) == before, "a refused export wrote something"
    return lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--format", "yolo"], invalid_choice("--format", "yolo", FORMATS), id="unknown-format"),
        pytest.param(["--format", "COCO"], invalid_choice("--format", "COCO", FORMATS), id="format-case"),
        pytest.param(
            ["--format", "coco", "--images", "depth"],
            invalid_choice("--images", "depth", IMAGE_KINDS),
            id="unknown-image-kind",
        ),
        pytest.param(
            ["--format", "coco", "--holdout-models", "x"],
            "--holdout-models 'x': expected a number",
            id="holdout-not-a-number",
        ),
        pytest.param(
            ["--format", "coco", "--holdout-models", "0"],
            "--holdout-models '0': must be positive",
            id="holdout-zero",
        ),
        pytest.param(
            ["--format", "webdataset", "--shard-size", "0"],
            "--shard-size '0': must be positive",
            id="shard-size-zero",
        ),
        pytest.param(
            ["--format", "coco", "--seed", "1.5"],
            "--seed '1.5': expected a whole number",
            id="seed-not-int",
        ),
    ],
)
def test_parse_errors_name_the_option(run_cli, tmp_path, args, message):
    assert refused(run_cli, tmp_path, *BASE, *args) == [usage("export", message)]


def test_format_and_to_are_required(run_cli, tmp_path):
    lines = refused(run_cli, tmp_path, "export", "--out", "ds")
    assert lines == [usage("export", "the following arguments are required: --format, --to")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--format", "coco", "--holdout-models", "1"],
            "--holdout-models 1.0: the fraction of each class's models to hold out must be between 0 and 1",
            id="holdout-one",
        ),
        pytest.param(
            ["--format", "coco", "--shard-size", "10"],
            "--shard-size: only the webdataset format takes it (format is coco)",
            id="shard-size-not-webdataset",
        ),
        pytest.param(
            ["--format", "imagefolder", "--mask"],
            "--mask: only the webdataset format takes it (format is imagefolder)",
            id="mask-not-webdataset",
        ),
        pytest.param(
            ["--format", "pascal3d", "--depth"],
            "--depth: only the webdataset format takes it (format is pascal3d)",
            id="depth-not-webdataset",
        ),
        pytest.param(
            ["--format", "webdataset", "--link"],
            "--link: webdataset shards hold copies of the images; drop it",
            id="link-webdataset",
        ),
        pytest.param(
            ["--format", "coco", "--source", "imagenet"],
            "--source: only the pascal3d format takes it (format is coco)",
            id="source-not-pascal3d",
        ),
        pytest.param(
            ["--format", "pascal3d", "--source", "a/b"],
            "--source 'a/b': source 'a/b' is not a safe file name part (use letters, digits and . _ + -, "
            "not starting with '.', at most 200 characters)",
            id="source-unsafe",
        ),
        pytest.param(["--format", "coco"], "--out ds: no such dataset folder", id="no-dataset"),
    ],
)
def test_settings_errors_name_the_option(run_cli, tmp_path, args, message):
    assert refused(run_cli, tmp_path, *BASE, *args) == [error(message)]


@pytest.mark.parametrize("to", ["ds", "ds/exported", "ds/./a/../b"])
def test_to_inside_the_dataset_is_refused(run_cli, tmp_path, to):
    (tmp_path / "ds").mkdir()
    lines = refused(run_cli, tmp_path, "export", "--out", "ds", "--format", "coco", "--to", to)
    assert lines == [error(f"--to {to}: inside the dataset {tmp_path / 'ds'}; choose a folder outside it")]
    assert os.listdir(tmp_path / "ds") == []


def test_to_holding_the_dataset_is_refused(run_cli, tmp_path):
    (tmp_path / "work" / "ds").mkdir(parents=True)
    lines = refused(run_cli, tmp_path, "export", "--out", "work/ds", "--format", "coco", "--to", "work")
    assert lines == [
        error(f"--to work: holds the dataset {tmp_path / 'work' / 'ds'}; choose a folder outside it")
    ]


def test_to_that_is_a_file_is_refused(run_cli, tmp_path):
    (tmp_path / "exported").write_text("x")
    assert refused(run_cli, tmp_path, *BASE, "--format", "coco") == [
        error("--to exported: is a file, not a folder")
    ]
