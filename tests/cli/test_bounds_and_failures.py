"""What cannot be meant is refused before any work, naming the option and the figure; what goes wrong
with the disk or the files is one line, never a traceback."""

from __future__ import annotations

import errno
import json
import shutil
from collections import namedtuple

import pytest

from dst3d_addon.core import dataset as dataset_module
from dst3d_addon.core import files
from tests.cli.cli_helpers import error, usage


@pytest.mark.parametrize(
    ("stage", "option", "value", "most"),
    [
        ("generate", "--images-per-view", "100000000", "1,000"),
        ("run", "--images-per-view", "1001", "1,000"),
        ("generate", "--batch-size", "5000", "1,024"),
        ("render", "--views", "1000000000", "10,000,000"),
        ("render", "--samples", "100000", "65,536"),
        ("kcf", "--image-size", "100000", "2,048"),
        ("kcf", "--folds", "1000", "100"),
        ("report", "--tile", "100000", "1,024"),
        ("report", "--count", "1000", "64"),
    ],
)
def test_counts_that_cannot_be_meant_are_refused(run_cli, stage, option, value, most):
    extra = ["--cad", "a.obj"] if stage in ("render", "run") else []
    code, lines = run_cli(stage, "--out", "o", *extra, option, value)
    assert (code, lines) == (2, [usage(stage, f"{option} {value!r}: at most {most}")])


def test_a_grid_past_the_view_limit_names_the_sampling(run_cli):
    code, lines = run_cli("render", "--out", "o", "--cad", "a.obj", "--sampling", "100000x100000")
    assert (code, lines) == (
        2,
        [error("--sampling 100000x100000: 10,000,000,000 grid cells; at most 10,000,000 views per model")],
    )


def test_a_full_disk_is_refused_before_any_work(run_cli, monkeypatch, tmp_path):
    usage_ = namedtuple("usage", "total used free")
    monkeypatch.setattr(dataset_module.shutil, "disk_usage", lambda _path: usage_(10**9, 10**9, 1024))
    code, lines = run_cli("render", "--out", "o", "--cad", "a.obj")
    assert (code, lines) == (
        2,
        [error("--out o: the disk is full (0.0 MB free); make room or choose another --out")],
    )
    assert not (tmp_path / "o" / "annotations.jsonl").exists()


def test_a_disk_that_fills_up_while_writing_is_one_line(run_cli, monkeypatch, tmp_path):
    def full(path, _obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(dataset_module, "write_json_atomic", full)
    code, lines = run_cli("render", "--out", "o", "--cad", "a.obj")
    assert (code, lines) == (1, [error("o/dataset.json: No space left on device")])


def _dataset_with_kcf(root):
    root.mkdir()
    files.write_json_atomic(root / "dataset.json", {"format": 1, "stages": {}, "classes": {}, "history": []})
    (root / "annotations.jsonl").write_text("")
    kcf = {"format": 1, "images": [{"file": "images/a.png", "class": "c", "score": 0.5}], "settings": {}}
    (root / "kcf.json").write_text(json.dumps(kcf))


def test_report_output_must_be_a_file_in_a_folder(run_cli, tmp_path):
    (tmp_path / "folder").mkdir()
    assert run_cli("report", "--out", "o", "--output", "folder") == (
        2,
        [error("--output folder: is a folder; name the PNG file to write")],
    )
    assert run_cli("report", "--out", "o", "--output", "nowhere/r.png") == (
        2,
        [error("--output nowhere/r.png: no folder nowhere to write it in")],
    )


def test_filter_that_keeps_nothing_is_refused(run_cli, tmp_path):
    _dataset_with_kcf(tmp_path / "o")
    assert run_cli("filter", "--out", "o", "--max-score", "-1", "--force") == (
        2,
        [error("--max-score -1: keeps no image (the lowest score is 0.5)")],
    )
    assert not (tmp_path / "o" / "keep.jsonl").exists()
    shutil.rmtree(tmp_path / "o")


@pytest.mark.parametrize("evil", ["../outside.png", "/etc/passwd", "images/../../x.png"])
def test_report_never_reads_outside_the_dataset(run_cli, tmp_path, evil):
    _dataset_with_kcf(tmp_path / "o")
    kcf = json.loads((tmp_path / "o" / "kcf.json").read_text())
    kcf["images"][0]["file"] = evil
    (tmp_path / "o" / "kcf.json").write_text(json.dumps(kcf))
    code, lines = run_cli("report", "--out", "o")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"dst3d: error: o/kcf.json: images[0].file {evil!r} must be a relative path")
