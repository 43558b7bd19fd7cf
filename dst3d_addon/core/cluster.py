"""Where `--ray` points and how a cluster's work is split, as pure logic (no Ray here).

`--ray auto` is the cluster the command runs on (its `RAY_ADDRESS`), `--ray local` starts Ray on
this machine, anything else is an address (`HOST:PORT`, or a Ray Client `ray://HOST:PORT`). A
stopped or mistyped address would make Ray retry for minutes, so `endpoint` gives the host and
port a caller checks first with a plain TCP connection. `place_folds` says where the kcf stage's
fold workers go.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import SettingError, setting
from .render_plan import Shard

#: The environment variable Ray's own tools set to the cluster a command runs on.
RAY_ADDRESS = "RAY_ADDRESS"
#: Ray's default port of a head node (the GCS), used when an address has no port.
DEFAULT_PORT = 6379
#: Ray Client's default port (`ray://HOST`).
CLIENT_PORT = 10001

_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
_ADDRESS = re.compile(rf"(?P<scheme>ray://)?(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?")


@dataclass(frozen=True)
class RayTarget:
    """The cluster a `--ray` value names: `local`, or an address (`given` is what the user wrote)."""

    given: str
    address: str | None  # None: start Ray on this machine
    host: str | None = None
    port: int | None = None

    @property
    def local(self) -> bool:
        return self.address is None

    @property
    def client(self) -> bool:
        """Whether it is a Ray Client address (`ray://`)."""
        return bool(self.address and self.address.startswith("ray://"))

    def describe(self) -> str:
        """How run messages name it: `a local Ray instance` or `the Ray cluster at HOST:PORT`."""
        return "a local Ray instance" if self.local else f"the Ray cluster at {self.address}"


def parse_ray(value: str, environ: Mapping[str, str]) -> RayTarget:
    """The cluster `--ray VALUE` names (SettingError naming `--ray` otherwise); `auto` reads
    RAY_ADDRESS from `environ`."""
    text = value.strip()
    if text == "local":
        return RayTarget(value, None)
    if text == "auto":
        found = environ.get(RAY_ADDRESS, "").strip()
        if not found:
            raise SettingError(
                f"{setting('ray')} auto: {RAY_ADDRESS} is not set, so there is no cluster to join; give the "
                "head node's address (HOST:PORT) or `local` to start Ray on this machine"
            )
        if found in ("auto", "local"):
            raise SettingError(f"{setting('ray')} auto: {RAY_ADDRESS}={found!r} names no address")
        try:
            return _address(found, value)
        except SettingError as err:
            raise SettingError(f"{setting('ray')} auto: {RAY_ADDRESS}={found!r}: {err.text}") from None
    return _address(text, value)


def _address(text: str, given: str) -> RayTarget:
    m = _ADDRESS.fullmatch(text)
    if not m:
        raise SettingError(f"{setting('ray')} {given!r}: expected auto, local, HOST:PORT or ray://HOST:PORT")
    client = bool(m.group("scheme"))
    port = int(m.group("port")) if m.group("port") else (CLIENT_PORT if client else DEFAULT_PORT)
    if not 0 < port < 65536:
        raise SettingError(f"{setting('ray')} {given!r}: port {port} is not in 1..65535")
    host = m.group("host").strip("[]")
    address = f"{'ray://' if client else ''}{m.group('host')}:{port}"
    return RayTarget(given, address, host, port)


def sub_shard(shard: Shard, part: int, parts: int) -> Shard:
    """Part `part` of `parts` of `shard`: views whose hash is `shard.index + shard.count * part`
    modulo `shard.count * parts`. The parts are disjoint and together are exactly `shard` (a hash
    equal to that modulo count*parts is equal to shard.index modulo count)."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} of {parts}")
    return Shard(shard.index + shard.count * part, shard.count * parts)


def slots(resources: Mapping[str, float], name: str, per_slot: float = 1.0) -> int:
    """How many `per_slot` units of resource `name` (CPU, GPU) a cluster's resources hold."""
    return int(float(resources.get(name, 0.0)) // per_slot) if per_slot > 0 else 0


@dataclass(frozen=True)
class FoldPlacement:
    """How the kcf stage's folds run on a cluster: what each fold's worker asks for (`cpus`,
    `gpus`), how many run at once (`workers`), and the device and torch threads it is given."""

    cpus: int
    gpus: int
    workers: int
    device: str
    threads: int | None

    def describe(self) -> str:
        """`1 GPU` or `1 CPU, 1 thread` (what each worker holds)."""
        if self.gpus:
            return f"{self.gpus} GPU"
        return f"{self.cpus} CPU(s), {self.threads} torch thread(s)"


def device_on_actor(device: str) -> str:
    """The device a worker on a GPU actor is given: `cuda:N` names a GPU of the driver's machine,
    but an actor sees only its own GPU (as `cuda:0`), so any CUDA device becomes `cuda`."""
    return "cuda" if device.startswith("cuda") else device


def place_folds(nodes: Sequence[Mapping[str, float]], device: str, threads: int | None) -> FoldPlacement:
    """Where the folds' workers go, from each node's resources (SettingError naming the setting
    that cannot be met).

    A worker holds one GPU when the cluster has GPUs and `device` is not the CPU (its worker sees
    only that GPU, so `cuda:N` becomes `cuda`); else `threads` CPUs (default 1) of one node, and
    torch runs on that many threads. Torch's results on the CPU depend on its thread count, so
    the threads are fixed here, never taken from whatever node a worker lands on.
    """
    gpu_slots = sum(slots(node, "GPU") for node in nodes)
    cuda = device.startswith("cuda")
    if gpu_slots and (cuda or device == "auto"):
        return FoldPlacement(1, 1, gpu_slots, device_on_actor(device), threads)
    if cuda:
        raise SettingError(
            f"{setting('device')} {device}: the cluster has no GPU; pass {setting('device')} cpu or auto, "
            "or join a cluster with GPUs"
        )
    threads = threads or 1
    cpu_slots = sum(slots(node, "CPU", threads) for node in nodes)
    if cpu_slots == 0:
        most = max((int(node.get("CPU", 0)) for node in nodes), default=0)
        raise SettingError(
            f"{setting('threads')} {threads}: no node of the cluster has that many CPUs (the most is {most}); "
            f"pass {setting('threads')} {max(1, most)} or less"
        )
    return FoldPlacement(threads, 0, cpu_slots, device, threads)
