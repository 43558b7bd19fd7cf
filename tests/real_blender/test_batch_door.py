"""The batch door in a real Blender binary: `blender -b -P tools/dst3d_batch.py -- ...`.

Render (OBJ and PLY, `--workers 2`: the workers are Blender processes too), generate with the tiny
pipeline and kcf with a tiny backbone (their worker Python is this test's, which has torch), each
compared byte for byte with the same command run with the `bpy` module; exit statuses 0, 1 (one
line per failed model), 2 (a bad option, one line) and 130 (SIGINT, then a resume that ends as an
uninterrupted run). Skipped, with the reason, where no usable Blender binary exists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from dst3d_addon.core.generation_plan import load_generations
from dst3d_addon.core.records import load_annotations
from dst3d_addon.kcf.results import load_kcf
from tests.batch_script import SAMPLE, descendants, kill_group, run_batch, start_batch, survivors
from tests.cad_samples import write_ply
from tests.real_blender.blender_binary import require_binary

pytestmark = pytest.mark.slow

#: The worker Python of generate and kcf: this test's own (it has torch), in the binary's runs too.
WORKER_PYTHON = os.environ.get("DST3D_TEST_WORKER_PYTHON") or sys.executable
RENDER = (
    "--class-name",
    "thing",
    "--views",
    "6",
    "--resolution",
    "64",
    "--theta-std",
    "20",
    "--workers",
    "2",
)
TINY = ("--pipeline", "tiny", "--steps", "2", "--device", "cpu", "--quiet")
KCF = (
    "--images", "renders", "--folds", "2", "--epochs", "2", "--batch-size", "4", "--image-size", "32",
    "--backbone", "resnet-tiny", "--pretrained", "none", "--threads", "1", "--device", "cpu", "--quiet",
)  # fmt: skip
#: What differs between two runs of the same command: the creation times, and the workers' logs.
NOT_COMPARED = ("dataset.json", "logs")


@pytest.fixture(scope="module")
def blender() -> str:
    return require_binary()


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """A private tiny-pipeline cache, an empty offline HF cache, one thread per worker."""
    base = tmp_path_factory.mktemp("env")
    return {
        **os.environ,
        "DST3D_CACHE": str(base / "dst3d-cache"),
        "HF_HOME": str(base / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    """An OBJ and a PLY model: the sample airliner's mesh (Debian's Blender 3.4 cannot read glTF)."""
    import trimesh

    folder = tmp_path_factory.mktemp("models")
    mesh = trimesh.load(SAMPLE, force="mesh")
    mesh.export(folder / "airliner.obj")
    write_ply(folder / "tetra.ply")
    return [folder / "airliner.obj", folder / "tetra.ply"]


def cad_args(models: list[Path]) -> list[object]:
    return [x for path in models for x in ("--cad", path)]


@pytest.fixture(scope="module")
def rendered(blender, env, models, tmp_path_factory) -> dict[str, Path]:
    """The same render through the Blender binary and through the bpy module."""
    base = tmp_path_factory.mktemp("rendered")
    runs = {}
    for name, binary in (("binary", blender), ("module", None)):
        out = base / name
        proc = run_batch("render", *cad_args(models), *RENDER, "--out", out, env=env, blender=binary)
        assert proc.returncode == 0, proc.stderr
        runs[name] = out
    return runs


def files_of(out: Path) -> dict[str, bytes]:
    """Every file of a dataset but the ones two runs never share; records as sorted lines (two
    workers append them in the order they finish)."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if path.is_file() and rel.parts[0] not in NOT_COMPARED and not path.name.startswith("."):
            data = path.read_bytes()
            if path.suffix == ".jsonl":
                data = b"".join(sorted(data.splitlines(keepends=True)))
            files[str(rel)] = data
    return files


def dataset_settings(out: Path) -> dict:
    info = json.loads((out / "dataset.json").read_text())
    info.pop("created")
    for entry in info["history"]:
        entry.pop("time")
    return info


def test_render_in_blender_equals_the_bpy_module_run(rendered):
    binary, module = rendered["binary"], rendered["module"]
    # The workers were Blender processes of the binary, and the module run's were not.
    logs = [p.read_text() for p in sorted((binary / "logs").glob("render-*.log"))]
    assert len(logs) == 2 and all(
        "dst3d render worker: Blender" in log and "(bpy module)" not in log for log in logs
    )
    assert "(bpy module)" in (module / "logs" / "render-shard0-worker0.log").read_text()
    records = load_annotations(binary)  # validated
    assert len(records) == 12 and {r["cad"]["model_id"] for r in records} == {"airliner", "tetra"}
    ours, theirs = files_of(binary), files_of(module)
    assert sorted(ours) == sorted(theirs) and len(ours) == 1 + 12 * 4
    assert [name for name in ours if ours[name] != theirs[name]] == []
    assert dataset_settings(binary) == dataset_settings(module)


def test_freestyle_lines_in_blender_equal_the_bpy_module_run(blender, env, models, tmp_path):
    args = ("render", "--cad", models[0], "--views", "2", "--resolution", "96x72", "--edges", "freestyle")
    runs = {}
    for name, binary in (("binary", blender), ("module", None)):
        proc = run_batch(*args, "--out", tmp_path / name, env=env, blender=binary)
        assert proc.returncode == 0, proc.stderr
        runs[name] = files_of(tmp_path / name)
    assert runs["binary"] == runs["module"]


def test_generate_in_blender_equals_the_bpy_module_run(blender, env, rendered, tmp_path):
    outs = {}
    for name, binary in (("binary", blender), ("module", None)):
        out = tmp_path / name
        shutil.copytree(rendered["module"], out)
        proc = run_batch("generate", "--out", out, *TINY, "--python", WORKER_PYTHON, env=env, blender=binary)
        assert proc.returncode == 0, proc.stderr
        outs[name] = out
    generated = load_generations(outs["binary"])  # validated
    assert len(generated) == 12 and all((outs["binary"] / g["file"]).is_file() for g in generated)
    assert files_of(outs["binary"]) == files_of(outs["module"])


def test_kcf_in_blender_equals_the_bpy_module_run(blender, env, rendered, tmp_path):
    results = {}
    for name, binary in (("binary", blender), ("module", None)):
        out = tmp_path / name
        shutil.copytree(rendered["module"], out)
        proc = run_batch("kcf", "--out", out, *KCF, "--python", WORKER_PYTHON, env=env, blender=binary)
        assert proc.returncode == 0, proc.stderr
        kcf = load_kcf(out)
        results[name] = {
            **kcf,
            "folds": [{k: v for k, v in f.items() if k != "timing"} for f in kcf["folds"]],
        }
    assert len(results["binary"]["images"]) == 12
    assert results["binary"] == results["module"]


def test_failed_models_get_one_line_each_and_exit_1(blender, env, models, tmp_path):
    corrupt = tmp_path / "corrupt.ply"
    corrupt.write_bytes(models[1].read_bytes().replace(b"property float y", b"property flaot y"))
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing\n")
    out = tmp_path / "out"
    proc = run_batch(
        "render", "--cad", models[0], "--cad", corrupt, "--cad", empty, "--views", "2", "--resolution", "32",
        "--out", out, env=env, blender=blender,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dst3d: error:")]
    assert len(errors) == 2 and all(len(line) < 400 for line in errors), errors
    assert any(str(corrupt) in line and "PLY header" in line for line in errors), errors
    assert any(str(empty) in line for line in errors), errors
    assert [r["cad"]["model_id"] for r in load_annotations(out)] == ["airliner", "airliner"]


def test_a_bad_option_gets_one_line_exit_2_and_changes_nothing(blender, env, rendered, models, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(rendered["binary"], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for bad, named in ((("--views", "-3"), "--views"), (("--resolution", "0"), "--resolution")):
        proc = run_batch("render", *cad_args(models), *bad, "--out", out, env=env, blender=blender)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], lines
    proc = run_batch("kcf", "--out", out, "--folds", "1", env=env, blender=blender)
    assert proc.returncode == 2 and "--folds" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_ray_is_refused_inside_blender_in_one_line(blender, env, models, tmp_path):
    """Ray never runs in Blender's process: --ray under a Blender binary says where to run it."""
    out = tmp_path / "ds"
    proc = run_batch("render", *cad_args(models), "--out", out, "--ray", "local", env=env, blender=blender)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("dst3d")]
    assert lines == [
        "dst3d: error: --ray: Ray does not run inside Blender; run the batch script with a Python that has Ray "
        "and the bpy module (python tools/dst3d_batch.py ...)"
    ]
    assert not out.exists()


def test_sigint_stops_with_130_and_the_resume_equals_an_uninterrupted_run(
    blender, env, rendered, models, tmp_path
):
    out = tmp_path / "ds"
    args = ("render", *cad_args(models), *RENDER, "--out", out)
    proc = start_batch(*args, env=env, blender=blender)
    records = out / "annotations.jsonl"
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if records.is_file() and records.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        below = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends (the workers are in sessions of their own)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert code == 130
    assert survivors(below) == [], "the render workers outlived the interrupted run"
    done = records.read_bytes().count(b"\n")
    assert 2 <= done < 12
    proc = run_batch(*args, env=env, blender=blender)
    assert proc.returncode == 0, proc.stderr
    assert f"{12 - done} to render, {done} already done" in proc.stderr
    assert files_of(out) == files_of(rendered["module"])
