"""The render stage against careless and hostile runs: bad models fail alone with one line, a hung
model times out, a killed or terminated parent takes its workers with it, and the dataset stays one
dataset (validated before it is extended, written once per view, in one order, without litter)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from dst3d_addon.core.files import read_records
from dst3d_addon.core.records import load_annotations
from tests.batch_script import SAMPLE, descendants, run_batch, start_batch, survivors
from tests.cad_samples import write_obj

pytestmark = pytest.mark.slow

SMALL = ["--views", 3, "--resolution", "48"]


def errors(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("dst3d: error:")]


def test_bad_models_fail_alone_each_with_one_line_and_warnings_reach_the_summary(tmp_path):
    flat = tmp_path / "flat.obj"
    flat.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    dropped = write_obj(tmp_path / "dropped.obj")
    dropped.write_text(dropped.read_text() + "f 1 2 999\n")
    deep = tmp_path / "deep.gltf"
    deep.write_text('{"asset": ' + "[" * 100_000 + "]" * 100_000 + "}")
    fifo = write_obj(tmp_path / "fifo.obj")
    fifo.write_text("mtllib pipe.mtl\n" + fifo.read_text())
    os.mkfifo(tmp_path / "pipe.mtl")
    huge = tmp_path / "huge.obj"
    huge.write_text("v 0 0 0\nv 1e39 0 0\nv 0 1 0\nf 1 2 3\n")
    out = tmp_path / "out"
    proc = run_batch(
        "render", "--out", out, *SMALL, "--cad", SAMPLE,
        *[a for p in (flat, dropped, deep, fifo, huge) for a in ("--cad", p)],
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = errors(proc)
    assert len(lines) == 4, lines
    for path, words in (
        (flat, "the mesh has no surface"),
        (deep, "nests too deeply"),
        (fifo, "material file 'pipe.mtl' is a FIFO"),
        (huge, "does not fit a 32-bit float"),
    ):
        assert [line for line in lines if str(path) in line and words in line], (path, lines)
    assert "dst3d: warning: object/dropped: Blender's OBJ importer dropped 1 of the file's" in proc.stderr
    ids = {r["id"].split("/")[1] for r in load_annotations(out)}
    assert ids == {"airliner", "dropped"}


def test_a_model_that_hangs_times_out_alone(tmp_path):
    slow = write_obj(tmp_path / "slow.obj")
    out = tmp_path / "out"
    env = {**os.environ, "DST3D_FAULT_HANG_MODEL": "slow"}
    start = time.monotonic()
    proc = run_batch(
        "render", "--out", out, *SMALL, "--cad", slow, "--cad", SAMPLE, "--workers", 2, "--model-timeout", 3,
        env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - start < 120
    assert errors(proc) == [
        f"dst3d: error: {slow}: no view in 3 s (importing or rendering it); stopped (raise --model-timeout "
        f"for slow models; see {out}/logs/render-shard0-worker{errors(proc)[0].rsplit('worker', 1)[1]}"
    ]
    assert {r["id"].split("/")[1] for r in load_annotations(out)} == {"airliner"}


def _start_and_wait(out: Path, views: int = 40):
    proc = start_batch("render", "--out", out, "--cad", SAMPLE, "--views", views, "--resolution", "640x480")
    annotations = out / "annotations.jsonl"
    deadline = time.monotonic() + 120
    while not (annotations.exists() and read_records(annotations)):
        assert proc.poll() is None, "finished before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def test_a_parent_killed_alone_takes_its_workers_with_it(tmp_path):
    proc = _start_and_wait(tmp_path / "out")
    workers = descendants(proc.pid)
    assert workers
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone: its workers lead sessions of their own
    proc.wait()
    assert survivors(workers, timeout=10) == []


def test_sigterm_stops_like_ctrl_c_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "out"
    proc = _start_and_wait(out)
    workers = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert survivors(workers, timeout=10) == []
    written = len(read_records(out / "annotations.jsonl"))
    resumed = run_batch("render", "--out", out, "--cad", SAMPLE, "--views", 40, "--resolution", "640x480")
    assert resumed.returncode == 0 and f"{written} already done" in resumed.stderr


def test_render_validates_the_records_it_extends(tmp_path):
    out = tmp_path / "out"
    assert run_batch("render", "--out", out, "--cad", SAMPLE, *SMALL).returncode == 0
    path = out / "annotations.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["pose"]["azimuth"] += 0.5  # by hand: the pose no longer matches R
    path.write_text("\n".join([lines[0], json.dumps(broken), *lines[2:]]) + "\n")
    before = path.read_bytes()
    proc = run_batch("render", "--out", out, "--cad", SAMPLE, "--views", 4, "--resolution", "48")
    assert proc.returncode == 2
    assert errors(proc) == [
        f"dst3d: error: {path}: line 2: annotation {broken['id']}: camera.R does not match the pose "
        "(pose-convention.md: R = Rz(theta) Rx(e - pi/2) Rz(-a)); fix or delete that line"
    ]
    assert path.read_bytes() == before


def test_settings_bind_a_dataset_only_once_it_holds_views(tmp_path):
    out = tmp_path / "out"
    typo = run_batch("render", "--out", out, "--cad", tmp_path / "airlner.glb", *SMALL)
    assert typo.returncode == 1 and (out / "dataset.json").exists()
    fixed = run_batch("render", "--out", out, "--cad", SAMPLE, "--views", 3, "--resolution", "64")
    assert fixed.returncode == 0, fixed.stderr
    other = run_batch("render", "--out", out, "--cad", SAMPLE, "--views", 3, "--resolution", "80")
    assert other.returncode == 2 and "made with other render settings" in other.stderr


def test_each_view_is_written_once_whoever_writes_it(tmp_path):
    out = tmp_path / "out"
    twice = run_batch("render", "--out", out, "--cad", SAMPLE, "--cad", SAMPLE, *SMALL)
    assert twice.returncode == 0, twice.stderr
    assert f"dst3d render: warning: {SAMPLE} is given more than once; rendering it once" in twice.stderr
    assert "3 views written" in twice.stderr
    # two identical runs at once on a new folder: every view once in the file
    both = tmp_path / "both"
    common = ["render", "--out", both, "--cad", SAMPLE, "--views", 12, "--resolution", "64"]
    first, second = start_batch(*common), start_batch(*common)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    ids = [r["id"] for r in read_records(both / "annotations.jsonl")]
    assert len(ids) == 12 and ids == sorted(set(ids))


def test_two_workers_write_the_same_file_as_one_and_litter_is_swept(tmp_path):
    common = ["--cad", SAMPLE, "--cad", write_obj(tmp_path / "box.obj"), "--views", 8, "--resolution", "48"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_batch("render", "--out", one, *common, "--workers", 1).returncode == 0
    assert run_batch("render", "--out", two, *common, "--workers", 2).returncode == 0
    assert (one / "annotations.jsonl").read_bytes() == (two / "annotations.jsonl").read_bytes()
    left = one / "control" / "object" / "airliner" / ".000000.png.999999999@0123abcd.0011223344aa.tmp"
    left.write_bytes(b"half a file")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(left, (day_ago, day_ago))
    again = run_batch("render", "--out", one, *common)
    assert again.returncode == 0 and "removed 1 temporary file(s)" in again.stderr
    assert not left.exists()
