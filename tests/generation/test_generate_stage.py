"""The generate and run stages end to end through tools/dst3d_batch.py, with the tiny pipeline.

A real render (bpy) makes the dataset; generation runs in the worker on the CPU. Checked: records
and images per dataset-format.md, batch = single, resume (also after SIGKILL) byte-identical, out of
memory halves the batch, missing weights / GPU / torch degrade with one clear line, bad options
get one line and exit 2, and the rendered data is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from dst3d_addon.core.files import temp_name
from dst3d_addon.core.generation_plan import image_seed, load_generations
from dst3d_addon.core.prompts import PAPER_NEGATIVE
from tests.batch_script import SAMPLE, kill_group, run_batch, start_batch, survivors

TINY = ("--pipeline", "tiny", "--steps", "2", "--device", "cpu", "--quiet")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The environment of every batch run: a private tiny cache and an empty, offline HF cache."""
    base = tmp_path_factory.mktemp("env")
    return {
        **os.environ,
        "DST3D_CACHE": str(base / "dst3d-cache"),
        "HF_HOME": str(base / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="module")
def rendered(env, tmp_path_factory) -> Path:
    """Three views of the sample airliner at 64x64 (shared; tests copy it)."""
    out = tmp_path_factory.mktemp("rendered") / "ds"
    proc = run_batch(
        "render", "--cad", SAMPLE, "--class-name", "airliner", "--synset", "n02690373",
        "--views", "3", "--resolution", "64", "--out", out, "--quiet", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def dataset(rendered, tmp_path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(rendered, out)
    return out


def digest_tree(out: Path, exclude: tuple[str, ...]) -> dict[str, str]:
    """sha256 of every file of the folder except the excluded top-level names."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).parts[0] not in exclude and not p.name.startswith(".")
    }


RENDER_FILES_EXCLUDE = ("images", "generations.jsonl", "dataset.json", "logs")


def images_of(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "images").rglob("*.png"))}


def records_by_key(out: Path) -> dict[tuple[str, int], dict]:
    return {(r["id"], r["k"]): r for r in load_generations(out)}


@pytest.mark.slow
def test_generate_end_to_end(env, dataset):
    before = digest_tree(dataset, RENDER_FILES_EXCLUDE)
    proc = run_batch(
        "generate", "--out", dataset, *TINY, "--images-per-view", "2", "--batch-size", "4", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "noise" in proc.stderr  # the tiny pipeline never passes for a real one
    assert "6 images written" in proc.stderr
    records = load_generations(dataset)
    assert len(records) == 6
    annotations = [json.loads(line) for line in (dataset / "annotations.jsonl").read_text().splitlines()]
    assert {(r["id"], r["k"]) for r in records} == {(a["id"], k) for a in annotations for k in (0, 1)}
    for record in records:
        assert record["file"] == f"images/{record['id']}_{record['k']}.png"
        image = cv2.imread(str(dataset / record["file"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 64, 3)
        assert record["seed"] == image_seed(0, record["id"], record["k"])
        assert record["prompt"] == "An image of airliner, best quality, extremely detailed"
        assert record["negative_prompt"] == PAPER_NEGATIVE
        assert record["model"]["base"] == "tiny" and record["model"]["scheduler"] == "ddim"
        assert (record["steps"], record["guidance"], record["control_scale"]) == (2, 9.0, 1.0)
        assert (record["width"], record["height"]) == (64, 64)
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["stages"]["generate"]["steps"] == 2 and "render" in info["stages"]
    assert digest_tree(dataset, RENDER_FILES_EXCLUDE) == before  # the rendered data is untouched

    again = run_batch("generate", "--out", dataset, *TINY, "--images-per-view", "2", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 to generate, 6 already done" in again.stderr
    assert len(load_generations(dataset)) == 6


@pytest.mark.slow
def test_batch_and_single_give_the_same_images(env, dataset, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(dataset, other)
    a = run_batch("generate", "--out", dataset, *TINY, "--images-per-view", "2", "--batch-size", "1", env=env)
    b = run_batch("generate", "--out", other, *TINY, "--images-per-view", "2", "--batch-size", "6", env=env)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert images_of(dataset) == images_of(other)
    assert records_by_key(dataset) == records_by_key(other)


@pytest.mark.slow
def test_resume_after_kill_equals_an_uninterrupted_run(env, dataset, tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(dataset, reference)
    args = ("generate", *TINY, "--images-per-view", "4", "--batch-size", "1", "--steps", "6")
    done = run_batch(*args, "--out", reference, env=env)
    assert done.returncode == 0, done.stderr
    proc = start_batch(*args, "--out", dataset, env=env)
    records = dataset / "generations.jsonl"
    deadline = time.monotonic() + 300
    try:
        while not (records.exists() and records.read_text().count("\n") >= 2):
            assert proc.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        below = kill_group(proc)  # the CLI and its worker, mid-batch
    assert survivors(below) == [], "a process of the killed run outlived the kill"
    written = len(load_generations(dataset))
    assert 2 <= written < 12
    # what a worker killed mid-write leaves: a temporary file of a process that is gone
    stale = temp_name(next((dataset / "images").rglob("*.png")))
    stale = stale.with_name(stale.name.replace(f".{os.getpid()}@", ".999999999@"))
    stale.write_bytes(b"half an image")
    resumed = run_batch(*args, "--out", dataset, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{12 - written} to generate, {written} already done" in resumed.stderr
    assert "temporary file(s) a stopped run left behind" in resumed.stderr
    assert not list((dataset / "images").rglob("*.tmp"))
    assert images_of(dataset) == images_of(reference)
    assert records_by_key(dataset) == records_by_key(reference)
    assert len(records.read_text().splitlines()) == 12  # no duplicates


@pytest.mark.slow
def test_out_of_memory_halves_the_batch(env, dataset, tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(dataset, reference)
    ok = run_batch(
        "generate", "--out", reference, *TINY, "--images-per-view", "2", "--batch-size", "1", env=env
    )
    assert ok.returncode == 0, ok.stderr
    oom = run_batch(
        "generate", "--out", dataset, *TINY, "--images-per-view", "2", "--batch-size", "4",
        env={**env, "DST3D_FAULT_OOM_ABOVE": "1"},
    )  # fmt: skip
    assert oom.returncode == 0, oom.stderr
    assert "retrying with batch 2" in oom.stderr and "retrying with batch 1" in oom.stderr
    assert images_of(dataset) == images_of(reference)

    fresh = tmp_path / "fresh"
    shutil.copytree(reference, fresh)
    shutil.rmtree(fresh / "images")
    (fresh / "generations.jsonl").unlink()
    before = digest_tree(fresh, RENDER_FILES_EXCLUDE)
    never = run_batch("generate", "--out", fresh, *TINY, env={**env, "DST3D_FAULT_OOM_ABOVE": "0"})
    assert never.returncode == 1
    errors = [line for line in never.stderr.splitlines() if line.startswith("dst3d: error:")]
    assert len(errors) == 1 and "even one image does not fit" in errors[0]
    assert digest_tree(fresh, RENDER_FILES_EXCLUDE) == before


@pytest.mark.slow
def test_missing_weights_offline_one_line(env, dataset):
    proc = run_batch("generate", "--out", dataset, "--device", "cpu", "--quiet", env=env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dst3d: error:")]
    assert len(errors) == 1, proc.stderr
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in errors[0] and "HF_HUB_OFFLINE" in errors[0]
    assert not (dataset / "generations.jsonl").exists()


@pytest.mark.slow
def test_no_gpu_refuses_a_real_model_unless_asked(env, dataset):
    proc = run_batch("generate", "--out", dataset, "--quiet", env=env)
    assert proc.returncode == 1
    assert "no CUDA GPU" in proc.stderr and "--device cpu" in proc.stderr


@pytest.mark.slow
def test_run_renders_and_says_what_it_skipped(env, tmp_path):
    out = tmp_path / "run"
    proc = run_batch(
        "run", "--cad", SAMPLE, "--class-name", "airliner", "--views", "2", "--resolution", "64",
        "--out", out, "--quiet", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "generation skipped" in proc.stderr and "no CUDA GPU" in proc.stderr
    assert f"generate --out {out}" in proc.stderr
    assert len((out / "annotations.jsonl").read_text().splitlines()) == 2
    assert not (out / "generations.jsonl").exists()
    # Without weights (offline), on the CPU: skipped too, naming the model.
    cpu = run_batch(
        "run", "--cad", SAMPLE, "--views", "2", "--resolution", "64", "--out", out, "--device", "cpu", env=env
    )
    assert cpu.returncode == 0 and "generation skipped" in cpu.stderr
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in cpu.stderr


def test_a_skipped_run_keeps_its_generation_options_for_generate(env, tmp_path):
    out = tmp_path / "run"
    options = ["--pipeline", "sdxl-canny", "--images-per-view", "3", "--prompt", "a {class} on a runway"]
    proc = run_batch(
        "run", "--cad", SAMPLE, "--views", "2", "--resolution", "64", "--out", out, "--quiet", *options, env=env
    )  # fmt: skip
    assert proc.returncode == 0 and "generation skipped" in proc.stderr
    command = (
        f"python tools/dst3d_batch.py generate --out {out} --pipeline sdxl-canny "
        "--prompt 'a {class} on a runway' --images-per-view 3"
    )
    assert f"    {command}\n" in proc.stderr  # the whole command, every option given
    later = run_batch("generate", "--out", out, "--quiet", env=env)  # the options alone come back
    assert "using --pipeline, --prompt, --images-per-view as the skipped run gave them" in later.stderr
    assert "2 views x 3 image(s)" in later.stderr and "stable-diffusion-xl-base" in later.stderr
    override = run_batch("generate", "--out", out, "--quiet", "--images-per-view", "1", env=env)
    assert "using --pipeline, --prompt as the skipped run gave them" in override.stderr
    assert "2 views x 1 image(s)" in override.stderr


@pytest.mark.slow
def test_run_with_tiny_renders_and_generates(env, tmp_path):
    out = tmp_path / "run"
    proc = run_batch(
        "run", "--cad", SAMPLE, "--class-name", "airliner", "--views", "2", "--resolution", "64",
        "--out", out, *TINY, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(load_generations(out)) == 2


@pytest.mark.slow
def test_captions_choose_prompts_by_seed(env, dataset, tmp_path):
    captions = tmp_path / "captions.txt"
    captions.write_text("a red {class} on a runway\na {class} in the clouds\n# a comment\n")
    proc = run_batch(
        "generate", "--out", dataset, *TINY, "--images-per-view", "3", "--captions", captions, env=env
    )
    assert proc.returncode == 0, proc.stderr
    prompts = {r["prompt"] for r in load_generations(dataset)}
    assert prompts <= {"a red airliner on a runway", "a airliner in the clouds"} and len(prompts) == 2


def test_a_python_without_torch(env, dataset, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    proc = run_batch("generate", "--out", dataset, *TINY, "--python", bare / "bin" / "python", env=env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dst3d: error:")]
    assert len(errors) == 1 and str(bare / "bin" / "python") in errors[0] and "torch" in errors[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--steps", "0"), "--steps"),
        (("--scheduler", "pndm"), "--scheduler"),
        (("--width", "60"), "--width"),
        (("--device", "gpu"), "--device"),
        (("--captions", "/nonexistent/captions.csv"), "--captions"),
        (("--pipeline", "./nope.safetensors"), "--pipeline"),
        (("--pipeline", "some/model"), "--controlnet"),
        (("--batch-size", "0"), "--batch-size"),
        (("--preset", "slow"), "--preset"),
        (("--guidance", "nan"), "--guidance"),
        (("--eta", "2"), "--eta"),
    ],
)
def test_bad_options_get_one_line(env, dataset, args, needle):
    proc = run_batch("generate", "--out", dataset, *args, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (dataset / "generations.jsonl").exists()


def test_generate_needs_a_rendered_dataset(env, tmp_path):
    proc = run_batch("generate", "--out", tmp_path / "empty", *TINY, env=env)
    assert proc.returncode == 2
    assert "annotations.jsonl" in proc.stderr and "render stage first" in proc.stderr


@pytest.mark.slow
def test_changed_settings_are_refused(env, dataset):
    first = run_batch("generate", "--out", dataset, *TINY, env=env)
    assert first.returncode == 0, first.stderr
    other = run_batch("generate", "--out", dataset, *TINY, "--guidance", "3", env=env)
    assert (
        other.returncode == 2 and "--allow-mixed" in other.stderr and "guidance: 9.0 -> 3.0" in other.stderr
    )


@pytest.mark.slow
def test_fast_preset_without_its_lora_uses_the_fallback(env, dataset):
    proc = run_batch(
        "generate", "--out", dataset, "--pipeline", "tiny", "--device", "cpu", "--preset", "fast", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "lcm-lora-sdv1-5" in proc.stderr and "fallback" in proc.stderr
    records = load_generations(dataset)
    assert len(records) == 3
    for record in records:
        assert record["model"]["scheduler"] == "unipc"
        assert (record["steps"], record["guidance"]) == (10, 7.5)
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["stages"]["generate"]["lora"] == "latent-consistency/lcm-lora-sdv1-5"
