"""The kcf, filter and report stages end to end on a few renders of the sample airliner (CPU)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cv2
import pytest

from dst3d_addon import cli
from dst3d_addon.core.keep import KEEP, filter_records, load_keep
from dst3d_addon.core.records import load_annotations
from tests.batch_script import SCRIPT, kill_group, run_batch, start_batch, survivors

QUICK = [
    "--images", "renders", "--folds", "3", "--epochs", "2", "--batch-size", "8", "--image-size", "32",
    "--backbone", "resnet-tiny", "--pretrained", "none", "--threads", "1", "--device", "cpu",
]  # fmt: skip


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _without_timing(kcf: dict) -> dict:
    return {**kcf, "folds": [{k: v for k, v in f.items() if k != "timing"} for f in kcf["folds"]]}


@pytest.mark.slow
def test_kcf_resumes_per_fold_after_a_kill(small_copy, small_renders, tmp_path):
    out = small_copy
    proc = start_batch("kcf", "--out", out, *QUICK, "--epochs", "6", "--quiet")
    first_fold = out / "kcf" / "fold_0.json"
    deadline = time.monotonic() + 240
    try:
        while not first_fold.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        below = kill_group(proc)  # the CLI and its fold worker
    assert survivors(below) == [], "a process of the killed run outlived the kill"
    done = sorted(p.name for p in (out / "kcf").glob("fold_*.json"))
    assert "fold_0.json" in done and len(done) < 3, done
    assert not (out / "kcf.json").exists()
    before = {name: (out / "kcf" / name).read_bytes() for name in done}

    result = run_batch("kcf", "--out", str(out), *QUICK, "--epochs", "6")
    assert result.returncode == 0, result.stderr
    assert f"{3 - len(done)} to train, {len(done)} already done" in result.stderr
    assert all((out / "kcf" / name).read_bytes() == data for name, data in before.items())
    resumed = json.loads((out / "kcf.json").read_text())

    # An uninterrupted run gives the same scores.
    fresh = tmp_path / "fresh"
    import shutil

    shutil.copytree(small_renders, fresh)
    result = run_batch("kcf", "--out", str(fresh), *QUICK, "--epochs", "6")
    assert result.returncode == 0, result.stderr
    assert _without_timing(json.loads((fresh / "kcf.json").read_text())) == _without_timing(resumed)
    # The summary sets the held-out accuracy against chance, and warns when it is not clearly above.
    assert "(chance " in result.stderr
    assert ("WARNING: the pose estimators did not learn" in result.stderr) == (not resumed["learned"])
    assert {"chance", "margin", "learned"} <= set(resumed) and "chance" in resumed["folds"][0]

    # Run again: nothing is retrained, kcf.json is the same file.
    result = run_batch("kcf", "--out", str(out), *QUICK, "--epochs", "6")
    assert "0 to train, 3 already done" in result.stderr
    assert json.loads((out / "kcf.json").read_text()) == resumed
    assert {e["fold"] for e in resumed["images"]} == {0, 1, 2}
    assert set(resumed["folds"][0]["accuracy"]) == {"pi_6", "pi_18"}
    entry = resumed["images"][0]
    assert set(entry) >= {"file", "id", "score", "fold", "pred", "error", "pose"}

    # Other settings are refused with one line unless --allow-mixed.
    result = run_batch("kcf", "--out", str(out), *QUICK, "--epochs", "3")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "epochs: 6 -> 3" in result.stderr and "--allow-mixed" in result.stderr


def _fake_kcf(out: Path, *, learned: bool = True) -> None:
    """A kcf.json as the kcf stage writes it, with made-up scores (for the filter and the report).

    Learned: the predictions are 0.05 rad off; not learned: 2 rad off, as a blind estimator's are.
    """
    records = load_annotations(out, as_numpy=False)
    images = [
        {
            "file": r["files"]["render"],
            "id": r["id"],
            "k": None,
            "class": r["id"].split("/")[0],
            "fold": i % 3,
            "score": float((i * 7) % 24),
            "pose": [r["pose"]["azimuth"], r["pose"]["elevation"], r["pose"]["theta"]],
            "pred": [0.0, 0.0, 0.0],
            "error": 0.05 if learned else 2.0,
        }
        for i, r in enumerate(records)
    ]
    settings = {"images": "renders", "folds": 3, "backbone": "resnet-tiny"}
    kcf = {"format": 1, "settings": settings, "accuracy": {"pi_6": 0.5}, "folds": [], "images": images}
    (out / "kcf.json").write_text(json.dumps(kcf))


def test_filter_writes_the_keep_set_and_touches_nothing_else(small_copy):
    out = small_copy
    _fake_kcf(out)
    before = _snapshot(out)
    result = run_batch("filter", "--out", str(out), "--keep-fraction", "0.5")
    assert result.returncode == 0, result.stderr
    after = _snapshot(out)
    assert set(after) - set(before) == {KEEP}
    changed = {k for k in before if before[k] != after[k]}
    assert changed <= {"dataset.json"}
    kept = [json.loads(line) for line in (out / KEEP).read_text().splitlines()]
    assert len(kept) == 12 and max(k["score"] for k in kept) < 12
    keep = load_keep(out)
    assert keep is not None and keep.images == "renders"
    records = load_annotations(out)
    assert len(filter_records(records, keep)) == 12
    # A new rule replaces the keep set.
    assert run_batch("filter", "--out", str(out), "--max-score", "3").returncode == 0
    assert len((out / KEEP).read_text().splitlines()) == 4


def test_report_writes_a_png(small_copy):
    out = small_copy
    _fake_kcf(out)
    assert run_batch("filter", "--out", str(out), "--keep-fraction", "0.75").returncode == 0
    result = run_batch("report", "--out", str(out), "--count", "6", "--tile", "96")
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(out / "kcf_report.png"))
    assert image is not None and image.shape[1] == 900 and image.shape[0] > 600
    assert image.std() > 10  # drawn, not blank


def _main(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv, SCRIPT)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["kcf", "--out", "X", "--folds", "0"], "--folds"),
        (["kcf", "--out", "X", "--folds", "1"], "--folds"),
        (["kcf", "--out", "X", "--images", "photos"], "--images"),
        (["kcf", "--out", "X", "--epochs", "-2"], "--epochs"),
        (["kcf", "--out", "X", "--lr", "nan"], "--lr"),
        (["kcf", "--out", "X", "--device", "gpu"], "--device"),
        (["kcf", "--out", "X", "--label-sigma", "-1"], "--label-sigma"),
        (["kcf", "--out", "X", "--backbone", "vit"], "--backbone"),
        (["kcf", "--out", "X", "--group-by", "class"], "--group-by"),
        (["kcf", "--out", "X", "--pretrained", "./no/such/weights"], "--pretrained"),
        (["filter", "--out", "X", "--keep-fraction", "1.5"], "--keep-fraction"),
        (["filter", "--out", "X"], "--keep-fraction"),
        (["filter", "--out", "X", "--keep-fraction", "0.5", "--max-score", "2"], "--max-score"),
        (["report", "--out", "X", "--count", "0"], "--count"),
    ],
)
def test_bad_options_give_one_line_naming_the_option(argv, named, capsys, tmp_path, small_renders):
    argv = [str(small_renders) if a == "X" else a for a in argv]
    code, err = _main(argv, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and named in err, err


def test_missing_dataset_and_files_give_one_line(capsys, tmp_path, small_renders):
    code, err = _main(["kcf", "--out", str(tmp_path / "nowhere"), *QUICK], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nowhere" in err
    (tmp_path / "empty").mkdir()
    code, err = _main(["kcf", "--out", str(tmp_path / "empty"), *QUICK], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "annotations.jsonl" in err
    code, err = _main(["kcf", "--out", str(small_renders), *QUICK[2:], "--images", "generated"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "generations.jsonl" in err
    for stage in (["filter", "--keep-fraction", "0.5"], ["report"]):
        code, err = _main([stage[0], "--out", str(small_renders), *stage[1:]], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "kcf.json" in err, err


def test_a_worker_python_without_torch_gives_one_line(small_copy, tmp_path):
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "DST3D_WORKER_PYTHON": str(fake)}
    result = run_batch("kcf", "--out", small_copy, *QUICK, env=env, timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("dst3d: error")]
    assert len(lines) == 1 and str(fake) in lines[0] and "install torch and transformers" in lines[0], (
        result.stderr
    )


@pytest.mark.slow
def test_generated_images_are_judged_with_their_views_pose_and_grouped_by_view(small_copy):
    out = small_copy
    records = load_annotations(out, as_numpy=False)
    lines = []
    for r in records:
        for k in range(2):
            rel = f"images/{r['id']}_{k}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes((out / r["files"]["render"]).read_bytes())
            lines.append(json.dumps({"id": r["id"], "k": k, "file": rel, "seed": k, "prompt": "an airliner"}))
    (out / "generations.jsonl").write_text("\n".join(lines) + "\n")
    quick = [a if a != "renders" else "generated" for a in QUICK]
    result = run_batch("kcf", "--out", str(out), *quick, "--group-by", "view")
    assert result.returncode == 0, result.stderr
    images = json.loads((out / "kcf.json").read_text())["images"]
    assert len(images) == 2 * len(records) and {e["k"] for e in images} == {0, 1}
    folds: dict[str, set[int]] = {}
    for e in images:
        folds.setdefault(e["id"], set()).add(e["fold"])
    assert all(len(f) == 1 for f in folds.values())
    poses = {r["id"]: r["pose"]["azimuth"] for r in records}
    assert all(e["pose"][0] == poses[e["id"]] for e in images)
    # The tiny run learns nothing, so filter would refuse the cut; what this tests is the kept pairs.
    assert run_batch("filter", "--out", str(out), "--keep-fraction", "0.5", "--force").returncode == 0
    keep = load_keep(out)
    assert keep.images == "generated" and len(keep.pairs) == len(records)
    gens = [json.loads(line) for line in lines]
    assert len(filter_records(gens, keep)) == len(records)
