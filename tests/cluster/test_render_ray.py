"""The render stage on Ray (`--ray`): a local instance and a two-node cluster on 127.0.0.1.

What must hold: the files and records are byte-identical to the local pool's; a killed actor and a
lost node cost only their in-flight views, which go to other workers; a killed driver's command
resumes to the same bytes; a bad address, an `--out` a node cannot see and a Python without Ray
each get one line and a non-zero exit, and nothing is written.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.batch_script import ROOT, SAMPLE, SCRIPT, batch_command, kill_group, run_batch, start_batch
from tests.cluster.ray_cluster import TestCluster

pytestmark = pytest.mark.slow

#: Small views: the cost of a view is mostly its fixed part, and the comparisons are of bytes.
RENDER = ("render", "--cad", SAMPLE, "--resolution", "96", "--seed", "3", "--quiet")
VIEWS = 12
#: Enough views that a worker can be killed while the run is under way.
LONG_VIEWS = 150


def tree(out: Path) -> dict[str, str]:
    """Every file of a dataset but its logs and dataset.json (which holds times), by digest."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.parts[len(out.parts)] != "logs" and p.name != "dataset.json"
    }


@pytest.fixture(scope="module")
def cluster():
    """A head node (2 CPUs) and a second node (1 CPU) on this machine."""
    made = TestCluster()
    try:
        made.start_head(cpus=2)
        made.add_node(cpus=1)
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, dict[str, str]]:
    """The local pool's datasets, by view count."""
    found = {}
    for views in (VIEWS, LONG_VIEWS):
        out = tmp_path_factory.mktemp("local") / "out"
        proc = run_batch(*RENDER, "--views", views, "--out", out, "--workers", 2)
        assert proc.returncode == 0, proc.stderr
        found[views] = tree(out)
    return found


def annotations(out: Path) -> int:
    path = out / "annotations.jsonl"
    return path.read_text().count("\n") if path.is_file() else 0


def actor_pids(out: Path) -> list[int]:
    """The actors' pids the render workers' logs name (`actor pid N`)."""
    pids = []
    for log in sorted((out / "logs").glob("render-*.log")):
        pids += [int(m) for m in re.findall(r"actor pid (\d+)", log.read_text(errors="replace"))]
    return pids


def watched(cluster: TestCluster, out: Path) -> subprocess.Popen:
    """A long render on `cluster`, its errors kept to read."""
    command = batch_command(*RENDER, "--views", LONG_VIEWS, "--out", out, "--ray", cluster.address)
    return subprocess.Popen(command, cwd=ROOT, env=cluster.env, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_local_ray_instance_writes_the_local_pools_bytes(cluster, reference, tmp_path):
    """`local` starts an instance of its own, though a cluster runs here and RAY_ADDRESS names it."""
    out = tmp_path / "out"
    env = {**cluster.env, "RAY_ADDRESS": cluster.address}
    proc = run_batch(*RENDER, "--views", VIEWS, "--out", out, "--ray", "local", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"on a local Ray instance: 1 node(s), {os.cpu_count()} CPU(s)" in proc.stderr
    assert f"{VIEWS} views written" in proc.stderr
    assert tree(out) == reference[VIEWS]


def test_two_nodes_write_the_local_pools_bytes(cluster, reference, tmp_path):
    out = tmp_path / "out"
    proc = run_batch(*RENDER, "--views", VIEWS, "--out", out, "--ray", cluster.address, env=cluster.env)
    assert proc.returncode == 0, proc.stderr
    assert f"the Ray cluster at {cluster.address}: 2 node(s), 3 CPU(s)" in proc.stderr
    assert tree(out) == reference[VIEWS]
    # One worker per CPU of the cluster, each on an actor of its own.
    assert len(set(actor_pids(out))) == 3
    assert not list(out.glob(".dst3d-shared-check-*"))  # the --out check leaves nothing behind


def test_auto_joins_the_cluster_of_ray_address(cluster, reference, tmp_path):
    out = tmp_path / "out"
    env = {**cluster.env, "RAY_ADDRESS": cluster.address}
    proc = run_batch(*RENDER, "--views", VIEWS, "--out", out, "--ray", env=env)
    assert proc.returncode == 0, proc.stderr
    assert tree(out) == reference[VIEWS]


def test_killed_actors_cost_only_their_views(cluster, reference, tmp_path):
    out = tmp_path / "out"
    proc = watched(cluster, out)
    wait_for(lambda: annotations(out) >= 10, what="the first views")
    for victim in actor_pids(out):  # every actor: the ones with views in hand hand them back
        os.kill(victim, 9)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert re.search(r"\d+ handed out again after their worker was lost", stderr), stderr
    assert tree(out) == reference[LONG_VIEWS]


def test_a_killed_driver_resumes_to_the_same_bytes(cluster, reference, tmp_path):
    out = tmp_path / "out"
    args = (*RENDER, "--views", LONG_VIEWS, "--out", out, "--ray", cluster.address)
    proc = start_batch(*args, env=cluster.env)
    wait_for(lambda: annotations(out) >= 10, what="the first views")
    kill_group(proc)
    assert annotations(out) < LONG_VIEWS
    again = run_batch(*args, env=cluster.env)
    assert again.returncode == 0, again.stderr
    assert re.search(r"\d+ to render, [1-9]\d* already done", again.stderr), again.stderr
    assert tree(out) == reference[LONG_VIEWS]


def test_a_lost_node_costs_only_its_views(cluster, reference, tmp_path):
    """Last in the module: the cluster has one node less afterwards."""
    out = tmp_path / "out"
    proc = watched(cluster, out)
    wait_for(lambda: annotations(out) >= 10, what="the first views")
    cluster.stop_node(cluster.nodes[1])  # the second machine goes away, its actors with it
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert tree(out) == reference[LONG_VIEWS]


def test_without_the_option_ray_is_never_imported(tmp_path):
    code = (
        "import sys; from dst3d_addon import cli; "
        f"code = cli.main({[*map(str, RENDER), '--views', '2', '--out', str(tmp_path / 'out')]!r}); "
        "print(code, 'ray' in sys.modules, any(m.startswith('dst3d_addon.cluster') for m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.stdout.split() == ["0", "False", "False"], proc.stderr


# ----------------------------------------------------------------------------- bad input
def test_an_unreachable_address_is_one_line(tmp_path):
    out = tmp_path / "out"
    start = time.monotonic()
    proc = run_batch(*RENDER, "--views", 2, "--out", out, "--ray", "127.0.0.1:1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dst3d: error: --ray 127.0.0.1:1: no Ray cluster answers at 127.0.0.1:1")
    assert time.monotonic() - start < 60  # not Ray's minutes of retries
    assert not out.exists()


def test_auto_without_ray_address_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = run_batch(*RENDER, "--views", 2, "--out", tmp_path / "out", "--ray", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "dst3d: error: --ray auto: RAY_ADDRESS is not set, so there is no cluster to join; give the head node's "
        "address (HOST:PORT) or `local` to start Ray on this machine"
    ]


def test_a_python_without_ray_is_one_line(tmp_path):
    out = tmp_path / "out"
    code = (
        "import runpy, sys; sys.modules['ray'] = None; "  # `import ray` now fails as where it is missing
        f"sys.argv = {[str(SCRIPT), *map(str, RENDER), '--views', '2', '--out', str(out), '--ray', 'local']!r}; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"dst3d: error: --ray: this Python ({sys.executable}) cannot import ray")
    assert "pip install ray==" in lines[0]
    assert not out.exists()


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _unshare_works(), reason="needs mount namespaces (unshare) to hide a folder from a node"
)
def test_an_out_one_node_cannot_see_names_the_node(tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    out = hidden / "out"
    made = TestCluster()
    try:
        made.start_head(cpus=1)
        # The second node has its own mount namespace, with an empty folder over `hidden`.
        made.add_node(
            cpus=1,
            prefix=[
                *("unshare", "--mount", "--propagation", "private"),
                *("sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(hidden)),
            ],
        )
        proc = run_batch(*RENDER, "--views", 2, "--out", out, "--ray", made.address, env=made.env)
    finally:
        made.stop()
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.match(
        rf"dst3d: error: --out {re.escape(str(out))}: node [0-9.]+ \(.*, id \w+\) cannot see it "
        r"\(the folder or the driver's check file is not there\); --out must be a folder every node",
        lines[0],
    ), lines[0]
    assert not list(out.glob("*"))  # nothing but the folder itself
