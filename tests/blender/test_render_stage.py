"""The render stage end to end through tools/dst3d_batch.py (real bpy in the worker processes).

Geometry: each format's own vertices, loaded independently with trimesh and mapped with the
record's `cad.to_object`, project (pose-convention.md) onto the rendered mask. Resume: a run killed part-way
and run again equals an uninterrupted run, byte for byte. Bad input: one clear line and a non-zero
exit, and in a run over many models the good ones are all written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from dst3d_addon.core.camera import Intrinsics, project
from dst3d_addon.core.dataset import read_records
from dst3d_addon.core.records import load_annotations
from tests.batch_script import SAMPLE, kill_group, run_batch, start_batch, survivors
from tests.geometry import silhouette


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "error" in line.lower()]


def sorted_records(out: Path) -> list[dict]:
    lines = (out / "annotations.jsonl").read_text().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda r: r["id"])


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> dict[str, Path]:
    """The sample airliner in four formats (trimesh writes OBJ/PLY/STL from the GLB)."""
    folder = tmp_path_factory.mktemp("formats")
    mesh = trimesh.load(SAMPLE, force="mesh")
    paths = {"glb": folder / "airliner_glb.glb"}
    shutil.copy(SAMPLE, paths["glb"])
    for ext in ("obj", "ply", "stl"):
        paths[ext] = folder / f"airliner_{ext}.{ext}"
        mesh.export(paths[ext])
    return paths


def test_geometry_every_format_projects_onto_its_mask(formats, tmp_path):
    out = tmp_path / "geo"
    args = [
        "render",
        "--out",
        out,
        "--views",
        5,
        "--resolution",
        "320x232",
        "--theta-std",
        40,
        "--sampling",
        "sphere",
        "--class-name",
        "airliner",
        "--seed",
        3,
    ]
    for path in formats.values():
        args += ["--cad", path]
    proc = run_batch(*args)
    assert proc.returncode == 0, proc.stderr
    records = load_annotations(out, as_numpy=True)
    assert len(records) == 5 * len(formats)
    thetas = [abs(r["pose"]["theta"]) for r in records]
    assert max(thetas) > 0.2
    for record in records:
        raw = trimesh.load(record["cad"]["path"], force="mesh")
        to_object = np.asarray(record["cad"]["to_object"])
        verts = raw.vertices @ to_object[:3, :3].T + to_object[:3, 3]
        cam = record["camera"]
        intr = Intrinsics(cam["width"], cam["height"], cam["viewport"], tuple(cam["principal"]))
        uv, depth = project(verts, np.asarray(cam["R"]), np.asarray(cam["C"]), intr)
        assert np.all(depth > 0)
        mask = cv2.imread(str(out / record["files"]["mask"]), cv2.IMREAD_GRAYSCALE) > 0
        sil = silhouette(uv, np.asarray(raw.faces), intr.width, intr.height)
        iou = (mask & sil).sum() / (mask | sil).sum()
        assert iou >= 0.97, (record["id"], iou)
        u0, v0 = uv.min(axis=0)
        u1, v1 = uv.max(axis=0)
        np.testing.assert_allclose(record["bbox"], [u0, v0, u1, v1], atol=1.0, err_msg=record["id"])


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    total = 30  # at 640x480, about 2 s of rendering after the first view: the kill lands well before
    common = [
        "--cad",
        SAMPLE,
        "--views",
        total,
        "--resolution",
        "640x480",
        "--theta-std",
        15,
        "--class-name",
        "airliner",
        "--seed",
        11,
        "--workers",
        2,
    ]
    full = tmp_path / "full"
    assert run_batch("render", "--out", full, *common).returncode == 0

    part = tmp_path / "part"
    proc = start_batch("render", "--out", part, *common)
    annotations = part / "annotations.jsonl"
    deadline = time.monotonic() + 120
    try:
        while not (annotations.exists() and len(read_records(annotations)) >= 2):
            assert proc.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        workers = kill_group(proc)  # the CLI and its render workers (sessions of their own), mid-run
    assert workers, "the render worker was not found below the CLI"
    assert survivors(workers) == [], "a render worker outlived the kill"
    written = len(read_records(annotations))
    assert 2 <= written < total, "the kill must land part-way"

    resumed = run_batch("render", "--out", part, *common)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{total - written} to render, {written} already done" in resumed.stderr
    assert f"dst3d render: {total - written} views written, {written} skipped (done before)" in resumed.stderr
    assert sorted_records(part) == sorted_records(full)
    assert (part / "annotations.jsonl").read_bytes() == (full / "annotations.jsonl").read_bytes()
    for record in sorted_records(full):
        for rel in record["files"].values():
            assert (part / rel).read_bytes() == (full / rel).read_bytes(), rel

    again = run_batch("render", "--out", part, *common)
    assert again.returncode == 0 and "0 views written" in again.stderr
    assert len(sorted_records(part)) == total


@pytest.mark.slow
def test_workers_and_shards_give_the_same_dataset(tmp_path):
    common = ["--cad", SAMPLE, "--views", 8, "--resolution", "64x48", "--seed", 5]
    one = tmp_path / "one"
    assert run_batch("render", "--out", one, *common).returncode == 0
    two = tmp_path / "two"
    assert run_batch("render", "--out", two, *common, "--workers", 2).returncode == 0
    sharded = tmp_path / "sharded"
    for i in range(3):
        proc = run_batch("render", "--out", sharded, *common, "--shard", f"{i}/3")
        assert proc.returncode == 0, proc.stderr
    reference = sorted_records(one)
    assert sorted_records(two) == reference
    assert sorted_records(sharded) == reference
    for record in reference:
        rel = record["files"]["control"]
        assert (two / rel).read_bytes() == (one / rel).read_bytes()


def test_changed_settings_are_refused_then_allowed(tmp_path):
    out = tmp_path / "d"
    common = ["--cad", SAMPLE, "--views", 2, "--resolution", "48"]
    assert run_batch("render", "--out", out, *common).returncode == 0
    proc = run_batch("render", "--out", out, *common, "--theta-std", 5)
    assert proc.returncode != 0
    assert "theta_std" in proc.stderr and "--allow-mixed" in proc.stderr
    assert run_batch("render", "--out", out, *common, "--theta-std", 5, "--allow-mixed").returncode == 0


# ------------------------------------------------------------------------------------ bad input


def write_bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "missing": folder / "missing.obj",
        "empty": folder / "empty.obj",
        "truncated": folder / "truncated.glb",
        "corrupt": folder / "corrupt.ply",
        "unsupported": folder / "model.3ds",
        "no_faces": folder / "no_faces.obj",
        "non_finite": folder / "non_finite.obj",
        "zero_size": folder / "zero_size.obj",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(SAMPLE.read_bytes()[:5000])
    files["corrupt"].write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex banana\nend_header\n\x00\x01"
    )
    files["unsupported"].write_bytes(b"3ds data")
    files["no_faces"].write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    files["non_finite"].write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    files["zero_size"].write_text("v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n")
    return files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    return write_bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "case", ["missing", "empty", "truncated", "corrupt", "unsupported", "no_faces", "non_finite", "zero_size"]
)
def test_bad_cad_file_gives_one_clear_line(bad_files, tmp_path, case):
    path = bad_files[case]
    proc = run_batch("render", "--cad", path, "--out", tmp_path / "o", "--views", 2, "--resolution", "32")
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert path.name in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_models_are_skipped_and_listed(bad_files, tmp_path):
    out = tmp_path / "mixed"
    bad = [bad_files["truncated"], bad_files["no_faces"], bad_files["missing"]]
    args = ["render", "--out", out, "--views", 3, "--resolution", "40", "--cad", SAMPLE]
    for path in bad:
        args += ["--cad", path]
    proc = run_batch(*args)
    assert proc.returncode == 1
    assert len(sorted_records(out)) == 3  # every view of the good model
    for path in bad:
        assert path.name in proc.stderr
    assert "3 model(s) failed" in proc.stderr


@pytest.mark.parametrize(
    "option,value,needle",
    [
        ("--views", "0", "--views"),
        ("--views", "-3", "--views"),
        ("--resolution", "0x10", "--resolution"),
        ("--resolution", "abc", "--resolution"),
        ("--sampling", "7", "sampling"),
        ("--shard", "3/2", "--shard"),
        ("--fit", "-1", "--fit"),
        ("--workers", "0", "--workers"),
    ],
)
def test_impossible_options_refused(tmp_path, option, value, needle):
    proc = run_batch("render", "--cad", SAMPLE, "--out", tmp_path / "o", option, value)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_batch("render", "--cad", SAMPLE, "--out", blocker / "out", "--views", 1)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0] and str(blocker) in lines[0]
    if os.geteuid() != 0:  # root writes anywhere; the file-in-the-way case above always fails
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        proc = run_batch("render", "--cad", SAMPLE, "--out", ro / "out", "--views", 1)
        assert proc.returncode == 2 and "--out" in proc.stderr


@pytest.mark.parametrize("edges", ["freestyle", "canny-shaded"])
def test_blender_edge_modes_end_to_end(tmp_path, edges):
    out = tmp_path / edges
    proc = run_batch(
        "render",
        "--cad",
        SAMPLE,
        "--out",
        out,
        "--views",
        2,
        "--resolution",
        "96x72",
        "--edges",
        edges,
        "--samples",
        2,
        "--theta-std",
        20,
    )
    assert proc.returncode == 0, proc.stderr
    for record in load_annotations(out):
        lines = cv2.imread(str(out / record["files"]["control"]), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(out / record["files"]["mask"]), cv2.IMREAD_GRAYSCALE) > 0
        near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert (lines > 0).sum() > 20
        assert (lines[~near] > 0).sum() <= 0.05 * (lines > 0).sum()  # lines only around the object
        render = cv2.imread(str(out / record["files"]["render"]))
        assert render.shape == (72, 96, 3) and render[mask].mean() > render[~near].mean() + 30
    assert json.loads((out / "dataset.json").read_text())["stages"]["render"]["edges"] == edges


def test_catalogue_run_uses_each_models_row(tmp_path):
    root = tmp_path / "ShapeNetCore.v2"
    model_dir = root / "02691156" / "1a2b3c" / "models"
    model_dir.mkdir(parents=True)
    trimesh.load(SAMPLE, force="mesh").export(model_dir / "model_normalized.obj")
    csv = tmp_path / "models.csv"
    csv.write_text(
        "synset,model,distance,azimuth,elevation,strength,sampling\nn02690373,1a2b3c,2.5,0,0,1.0,3\n"
    )
    out = tmp_path / "cat"
    proc = run_batch(
        "render", "--cad-csv", csv, "--cad-root", root, "--out", out, "--views", 3, "--resolution", "64"
    )
    assert proc.returncode == 0, proc.stderr
    records = load_annotations(out)
    assert [r["id"] for r in records] == [f"n02690373/1a2b3c/{v:06d}" for v in range(3)]
    assert all(r["pose"]["distance"] == pytest.approx(2.5) for r in records)
    assert records[0]["class"]["synset"] == "n02690373"
    nowhere = run_batch(
        "render", "--cad-csv", csv, "--cad-root", tmp_path / "nowhere", "--out", tmp_path / "x"
    )
    assert nowhere.returncode == 2 and "nowhere" in nowhere.stderr
    (tmp_path / "empty").mkdir()
    missing = run_batch("render", "--cad-csv", csv, "--cad-root", tmp_path / "empty", "--out", tmp_path / "y")
    assert missing.returncode == 1 and "1a2b3c" in missing.stderr and "Traceback" not in missing.stderr
    # One missing model of several is skipped, as a missing --cad file is: the others render, exit 1.
    csv.write_text(csv.read_text() + "n02690373,4d5e6f,2.5,0,0,1.0,3\n")
    some = run_batch(
        "render",
        "--cad-csv",
        csv,
        "--cad-root",
        root,
        "--out",
        tmp_path / "z",
        "--views",
        2,
        "--resolution",
        "48",
    )
    assert some.returncode == 1, some.stderr
    assert [line for line in some.stderr.splitlines() if line.startswith("dst3d: error:")] == [
        f"dst3d: error: model 4d5e6f not found under {root} (as a ShapeNet, Objaverse or OmniObject3D model)"
    ]
    assert len(load_annotations(tmp_path / "z")) == 2
