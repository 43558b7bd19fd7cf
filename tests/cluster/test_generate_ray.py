"""The generate and run stages on a Ray cluster, against the same stages run locally.

A two-node cluster on 127.0.0.1 (a head with 2 CPUs, a node with 1 CPU and a GPU it declares but
does not have): the generation worker runs in a GPU actor on that node, the tiny pipeline on its
CPU. Checked: `generate --ray` and the pipelined `run --ray` give the local run's images and
generations.jsonl byte for byte; a generation actor killed mid-run costs its batch, which a new
actor makes again, with the same result; a driver killed mid-run and run again ends with the
same result too; a cluster without a GPU skips generation as a machine
without one does.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.batch_script import SAMPLE, batch_command, run_batch
from tests.cluster.ray_cluster import TestCluster

pytestmark = pytest.mark.slow

#: The tiny pipeline on the default device (auto): a GPU actor's, the CPU locally.
TINY = ("--pipeline", "tiny", "--steps", "2", "--quiet")
RENDER = ("--cad", SAMPLE, "--class-name", "airliner", "--resolution", "64")


@pytest.fixture(scope="module")
def cluster():
    made = TestCluster()
    try:
        made.start_head(cpus=2)
        made.add_node(cpus=1, gpus=1)
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory) -> dict[str, str]:
    """The cluster's environment (its token), a private tiny cache, an offline hub."""
    base = tmp_path_factory.mktemp("env")
    return {
        **cluster.env,
        "DST3D_CACHE": str(base / "dst3d-cache"),
        "HF_HOME": str(base / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="module")
def rendered(env, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rendered") / "ds"
    proc = run_batch("render", *RENDER, "--views", "6", "--out", out, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def local(env, rendered, tmp_path_factory) -> Path:
    """The local generate run every Ray run is compared with."""
    out = tmp_path_factory.mktemp("local") / "ds"
    shutil.copytree(rendered, out)
    proc = run_batch("generate", "--out", out, *TINY, "--batch-size", "2", env=env)
    assert proc.returncode == 0, proc.stderr
    return out


def same_generations(a: Path, b: Path) -> None:
    """generations.jsonl and every generated image byte-identical."""
    assert (a / "generations.jsonl").read_bytes() == (b / "generations.jsonl").read_bytes()
    images = sorted(p.relative_to(a) for p in (a / "images").rglob("*.png"))
    assert images and images == sorted(p.relative_to(b) for p in (b / "images").rglob("*.png"))
    for image in images:
        assert (a / image).read_bytes() == (b / image).read_bytes(), image


def test_generate_on_ray_is_the_local_run(env, cluster, rendered, local, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(rendered, out)
    proc = run_batch("generate", "--out", out, *TINY, "--batch-size", "3", "--ray", cluster.address, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"on the Ray cluster at {cluster.address}: 2 node(s), 3 CPU(s), 1 GPU(s)" in proc.stderr
    assert "1 worker(s) on the cluster" in proc.stderr and "6 images written" in proc.stderr
    same_generations(local, out)
    logs = list((out / "logs").glob("generate-*-0.log"))
    assert len(logs) == 1 and "actor pid" in logs[0].read_text()


def test_run_on_ray_generates_while_rendering(env, cluster, rendered, local, tmp_path):
    # `run` locally is `render` then `generate`: the `rendered` and `local` fixtures.
    out = tmp_path / "ray"
    proc = run_batch("run", *RENDER, "--views", "6", "--out", out, *TINY, "--ray", cluster.address, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "generating while rendering" in proc.stderr and "6 images written" in proc.stderr
    assert re.search(r"the first image came .* after the first rendered view", proc.stderr), proc.stderr
    assert (rendered / "annotations.jsonl").read_bytes() == (out / "annotations.jsonl").read_bytes()
    same_generations(local, out)


def _actor_pid(log: Path, deadline: float) -> int:
    while time.monotonic() < deadline:
        found = re.search(r"actor pid (\d+)", log.read_text()) if log.is_file() else None
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    raise AssertionError(f"no actor pid in {log}")


def test_a_killed_generation_actor_costs_its_batch(env, cluster, rendered, local, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(rendered, out)
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "wb") as handle:
        proc = subprocess.Popen(
            batch_command("generate", "--out", out, *TINY, "--batch-size", "1", "--ray", cluster.address),
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
    try:
        deadline = time.monotonic() + 120
        records = out / "generations.jsonl"
        while not (records.is_file() and records.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.1)
        log = out / "logs" / f"generate-{proc.pid}-0.log"
        os.kill(_actor_pid(log, deadline), signal.SIGKILL)
        assert proc.wait(timeout=180) == 0, stderr.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stderr.read_text()
    assert "restarting it and retrying the batch" in text, text
    assert len(re.findall(r"actor pid \d+", log.read_text())) == 2  # a new actor took over
    same_generations(local, out)


def test_a_killed_driver_resumes_to_the_same_result(env, cluster, rendered, local, tmp_path):
    out = tmp_path / "ds"
    args = (
        "run",
        *RENDER,
        "--views",
        "6",
        "--out",
        out,
        *TINY,
        "--batch-size",
        "1",
        "--ray",
        cluster.address,
    )
    proc = subprocess.Popen(
        batch_command(*args),
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        records = out / "generations.jsonl"
        while not (records.is_file() and records.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # the driver alone: Ray ends its actors
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    again = run_batch(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert (rendered / "annotations.jsonl").read_bytes() == (out / "annotations.jsonl").read_bytes()
    same_generations(local, out)


def test_a_cluster_without_gpu_refuses_or_skips_generation(env, rendered, tmp_path):
    plain = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    plain["CUDA_VISIBLE_DEVICES"] = ""  # a local Ray instance without GPUs
    out = tmp_path / "ds"
    shutil.copytree(rendered, out)
    proc = run_batch("generate", "--out", out, "--quiet", "--ray", "local", env=plain)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dst3d: error:")]
    assert len(errors) == 1 and "the Ray cluster has no GPU" in errors[0] and "--device cpu" in errors[0]
    assert not (out / "generations.jsonl").exists()
    # The run stage renders on the cluster, then skips generation with the same words.
    run = tmp_path / "run"
    proc = run_batch("run", *RENDER, "--views", "2", "--out", run, "--quiet", "--ray", "local", env=plain)
    assert proc.returncode == 0, proc.stderr
    assert "generation skipped: the Ray cluster has no GPU" in proc.stderr
    assert len((run / "annotations.jsonl").read_text().splitlines()) == 2
    assert not (run / "generations.jsonl").exists()
