"""The generation worker through its client, with the tiny pipeline on the CPU.

What is tested is the plumbing: jobs, progress, previews, seeds (batch = single), cancel within a
step, a crashed worker reported and replaced, release, and typed errors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dst3d_addon.generation.client import Job, WorkerClient, WorkerConfig
from dst3d_addon.generation.errors import BadInput, Cancelled, MissingRuntime, WorkerCrashed

TINY_REQUEST = {
    "base": "tiny",
    "controlnet": "tiny",
    "family": "sd15",
    "scheduler": "ddim",
    "dtype": "fp32",
    "device": "cpu",
}
SETTINGS = {"steps": 3, "guidance": 9.0, "control_scale": 1.0, "eta": 1.0, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One tiny-pipeline cache for the module (the worker builds it on first use)."""
    return tmp_path_factory.mktemp("dst3d-cache")


# Every test that uses the worker is marked slow: whichever runs first starts it (torch and the
# tiny pipeline, about 6 s), and three of them restart it.
@pytest.fixture(scope="module")
def client(cache, tmp_path_factory):
    """One worker for the module's tests (each test may crash or release it: the next job restarts it)."""
    logs = tmp_path_factory.mktemp("logs")
    worker = WorkerClient(
        WorkerConfig(
            python=sys.executable,
            env={"DST3D_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
            log_path=logs / "worker.log",
        )
    )
    yield worker
    worker.release()


@pytest.fixture(scope="module")
def controls(tmp_path_factory) -> list[Path]:
    """Three different line drawings, 64x64, as the render stage writes them."""
    folder = tmp_path_factory.mktemp("controls")
    paths = []
    for i in range(3):
        image = np.zeros((64, 64), np.uint8)
        cv2.line(image, (5 + 10 * i, 5), (58, 50 - 10 * i), 255, 1)
        cv2.circle(image, (32, 32), 8 + 4 * i, 255, 1)
        path = folder / f"control_{i}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def items(controls: list[Path], out: Path, seeds: list[int]) -> list[dict]:
    return [
        {
            "control": str(controls[i % len(controls)]),
            "prompt": f"An image of thing {i}",
            "negative_prompt": "low quality",
            "seed": seed,
            "output": str(out / f"image_{i}.png"),
        }
        for i, seed in enumerate(seeds)
    ]


def read_rgb(path: str | Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def wait_for(job: Job, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition(job):
        assert time.monotonic() < deadline, "timed out"
        job.client.pump(0.05)


@pytest.mark.slow
def test_generate_writes_images_with_progress_and_previews(client, controls, tmp_path):
    hello = client.wait_ready()
    assert hello["protocol"] == 1 and hello["pid"] == client.pid
    assert hello["cuda"] is False  # CI and this machine have no GPU
    steps = []
    job = client.generate(
        TINY_REQUEST,
        SETTINGS,
        items(controls, tmp_path, [1, 2]),
        preview_every=1,
        preview_dir=tmp_path / "pv",
    )
    job.listeners.append(lambda j, m: steps.append(m["step"]) if m["type"] == "progress" else None)
    result = job.wait(timeout=300)
    assert result["files"] == [str(tmp_path / "image_0.png"), str(tmp_path / "image_1.png")]
    for path in result["files"]:
        image = read_rgb(path)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert image.std() > 0  # noise, but not a blank image
    assert steps == [1, 2, 3]
    assert result["settings"]["steps"] == 3 and result["settings"]["scheduler"] == "ddim"
    assert result["model"]["base"] == "tiny"
    assert job.preview is not None and Path(job.preview).is_file() and job.preview_step == 2
    assert "noise" in job.status  # the tiny pipeline says what its images are
    # Different seeds, different images; the worker is kept between jobs.
    assert not np.array_equal(read_rgb(result["files"][0]), read_rgb(result["files"][1]))


@pytest.mark.slow
def test_same_seed_same_pixels_alone_or_in_a_batch(client, controls, tmp_path):
    seeds = [11, 22, 33]
    batch = client.generate(TINY_REQUEST, SETTINGS, items(controls, tmp_path / "batch", seeds)).wait(300)
    singles = []
    for i in range(len(seeds)):
        one = items(controls, tmp_path / "single", seeds)[i]
        singles += client.generate(TINY_REQUEST, SETTINGS, [one]).wait(300)["files"]
    again = client.generate(TINY_REQUEST, SETTINGS, items(controls, tmp_path / "again", seeds)).wait(300)
    for a, b, c in zip(batch["files"], singles, again["files"], strict=True):
        assert np.array_equal(read_rgb(a), read_rgb(b))
        assert Path(a).read_bytes() == Path(c).read_bytes()


@pytest.mark.slow
def test_cancel_stops_within_a_step_and_the_worker_goes_on(client, controls, tmp_path):
    slow = {**SETTINGS, "steps": 400}
    job = client.generate(TINY_REQUEST, slow, items(controls, tmp_path, [5]))
    wait_for(job, lambda j: j.step >= 1 or j.done)
    pid = client.pid
    job.cancel()
    with pytest.raises(Cancelled, match="cancelled at step"):
        job.wait(timeout=60)
    assert job.step < 400
    assert not (tmp_path / "image_0.png").exists()  # nothing half-written
    assert client.pid == pid and client.alive
    done = client.generate(TINY_REQUEST, SETTINGS, items(controls, tmp_path, [5])).wait(300)
    assert Path(done["files"][0]).is_file()


@pytest.mark.slow
def test_a_crashed_worker_is_reported_and_replaced(client, controls, tmp_path):
    client.wait_ready()
    slow = {**SETTINGS, "steps": 400}
    job = client.generate(TINY_REQUEST, slow, items(controls, tmp_path, [7]))
    wait_for(job, lambda j: j.step >= 1 or j.done)
    old_pid = client.pid
    restarts = client.restarts
    os.kill(old_pid, signal.SIGKILL)
    with pytest.raises(
        WorkerCrashed, match=rf"pid {old_pid}\) was killed by signal 9.*next job starts a new one"
    ):
        job.wait(timeout=60)
    result = client.generate(TINY_REQUEST, SETTINGS, items(controls, tmp_path, [7])).wait(300)
    assert Path(result["files"][0]).is_file()
    assert client.pid != old_pid and client.restarts == restarts + 1


@pytest.mark.slow
def test_release_ends_the_process_and_the_next_job_starts_another(client, controls, tmp_path):
    client.wait_ready()
    proc_pid = client.pid
    client.release()
    assert not client.alive and client.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(proc_pid, 0)
    result = client.generate(TINY_REQUEST, SETTINGS, items(controls, tmp_path, [3])).wait(300)
    assert Path(result["files"][0]).is_file() and client.pid != proc_pid


@pytest.mark.slow
def test_bad_input_is_typed_and_the_worker_survives(client, controls, tmp_path):
    bad = items(controls, tmp_path, [1])
    bad[0]["control"] = str(tmp_path / "missing.png")
    with pytest.raises(BadInput, match=r"missing\.png"):
        client.generate(TINY_REQUEST, SETTINGS, bad).wait(300)
    pid = client.pid
    odd = {**SETTINGS, "width": 60}
    with pytest.raises(BadInput, match="multiple of 8"):
        client.generate(TINY_REQUEST, odd, items(controls, tmp_path, [1])).wait(300)
    assert client.pid == pid and client.alive


def test_a_python_without_torch_is_named(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    worker = WorkerClient(WorkerConfig(python=str(python), log_path=tmp_path / "w.log"))
    try:
        with pytest.raises(MissingRuntime, match=rf"{python}.*torch"):
            worker.wait_ready(timeout=60)
    finally:
        worker.release()


def test_a_missing_python_is_named(tmp_path):
    worker = WorkerClient(WorkerConfig(python=str(tmp_path / "nope" / "python"), log_path=tmp_path / "w.log"))
    with pytest.raises(MissingRuntime, match="no such file"):
        worker.start()
