"""Joining the cluster `--ray` names, and checking that every node sees `--out`.

Ray retries a dead address for minutes, so an address is first tried with a plain TCP connection
(a few seconds). `--out` must be a folder every node sees (the workers write the images there):
`check_shared` writes a token file on the driver and has a task pinned to each node read it back
and write a file of its own, and names the first node that cannot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..core.cluster import RayTarget, slots
from ..core.errors import SettingError, setting

#: Seconds to wait for a TCP connection to the head node before calling the address unreachable.
CONNECT_TIMEOUT = 5.0
#: Seconds each node's --out check may take.
PROBE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Cluster:
    """The cluster this run joined: its nodes and resources (a snapshot at start)."""

    target: RayTarget
    nodes: list[dict[str, Any]]
    resources: dict[str, float]

    def slots(self, name: str, per_slot: float = 1.0) -> int:
        return slots(self.resources, name, per_slot)

    def describe(self) -> str:
        cpus, gpus = self.slots("CPU"), self.slots("GPU")
        return f"{self.target.describe()}: {len(self.nodes)} node(s), {cpus} CPU(s), {gpus} GPU(s)"


def check_reachable(target: RayTarget, timeout: float = CONNECT_TIMEOUT) -> None:
    """SettingError naming `--ray` unless something answers at the target's host and port."""
    if target.local:
        return
    assert target.host is not None and target.port is not None
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise SettingError(
            f"{setting('ray')} {target.given}: no Ray cluster answers at {target.host}:{target.port} ({reason}); "
            "start one (`ray start --head`), check the address, or pass `local`"
        ) from None


def connect(target: RayTarget, *, cpus: int | None = None, gpus: int | None = None) -> Cluster:
    """Join the cluster (or start a local Ray instance with `cpus` and `gpus`, default this
    machine's) and take a snapshot of its nodes."""
    check_reachable(target)
    if not ray.is_initialized():
        common = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
        if target.local:
            # "local", not None: None would join a cluster `ray start` left in /tmp/ray.
            ray.init(
                address="local",
                num_cpus=cpus if cpus is not None else os.cpu_count() or 1,
                num_gpus=gpus,
                include_dashboard=False,
                **common,
            )
        else:
            ray.init(address=target.address, **common)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return Cluster(target, nodes, {k: float(v) for k, v in ray.cluster_resources().items()})


def disconnect() -> None:
    """Leave the cluster (a local instance stops with it)."""
    with contextlib.suppress(Exception):
        ray.shutdown()


@ray.remote(num_cpus=0, max_retries=0)
def _probe(folder: str, token_name: str, token: str) -> str | None:
    """On one node: None if `folder` holds the driver's token and takes a new file, else why not."""
    path = Path(folder)
    try:
        seen = (path / token_name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return "the folder or the driver's check file is not there"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if seen != token:
        return "it is another folder of the same name (the driver's check file differs)"
    mine = path / f"{token_name}.{os.getpid()}"
    try:
        mine.write_text(token, encoding="utf-8")
        mine.unlink()
    except OSError as exc:
        return f"cannot write in it: {exc.strerror or exc}"
    return None


def check_shared(cluster: Cluster, out: Path, option: str = "out") -> None:
    """SettingError naming `--out` and the node, unless every node of the cluster sees `out`."""
    if cluster.target.local:
        return
    out.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    token_name = f".dst3d-shared-check-{token[:12]}"
    token_path = out / token_name
    token_path.write_text(token, encoding="utf-8")
    try:
        refs = {
            node["NodeID"]: _probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(str(out.resolve()), token_name, token)
            for node in cluster.nodes
        }
        for node in cluster.nodes:
            try:
                why = ray.get(refs[node["NodeID"]], timeout=PROBE_TIMEOUT)
            except ray.exceptions.GetTimeoutError:
                why = f"its check did not answer in {PROBE_TIMEOUT:g} s"
            if why is not None:
                name = node.get("NodeManagerHostname") or node.get("NodeManagerAddress")
                raise SettingError(
                    f"{setting(option)} {out}: node {node.get('NodeManagerAddress')} ({name}, id "
                    f"{node['NodeID'][:12]}) cannot see it ({why}); {setting(option)} must be a folder every node of "
                    "the cluster sees at the same path (a shared file system)"
                )
    finally:
        with contextlib.suppress(OSError):
            token_path.unlink()
