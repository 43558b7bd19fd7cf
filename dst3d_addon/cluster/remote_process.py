"""A worker process on a node of the Ray cluster, driven like a local one.

`WorkerHost` is a Ray actor that starts one worker process on its node (the command the local run
would start: a render worker, the generation worker, the KCF worker) and relays its messages.
`RemoteProcess` is the driver's end, with the interface of `core.worker_pipe.WorkerProcess`
(`start`, `send`, `stop`, `wait`, `close_stdin`, `inbox`, `log_path`, `pid`), so the local
runs take it through a process factory and stay one copy.

A killed actor or a lost node shows as the worker's end (`None` in the inbox) with `lost` set: the
runs put its in-flight work back (with a limit), and a new actor is placed wherever the cluster
has room. Messages to the worker carry a sequence number, so they arrive in order although the
actor serves calls on several threads (a long `receive` must not hold up `send`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from ..core.worker_pipe import WorkerProcess, describe_exit

#: The variables Ray sets on an actor to give it its accelerators: the worker takes these from its
#: actor, everything else from the driver (every node runs the same environment).
PLACEMENT_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "NEURON_RT_VISIBLE_CORES",
    "TPU_VISIBLE_CHIPS",
)
#: Messages a `receive` call brings back at most.
RECEIVE_BATCH = 256
#: Seconds a `receive` call waits for the first message.
RECEIVE_WAIT = 1.0


def worker_env(driver_env: Mapping[str, str], actor_env: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: the driver's, with the actor's accelerator placement (and without
    the one-thread limit Ray gives actors, unless the driver had it)."""
    env = dict(driver_env)
    for name in PLACEMENT_VARIABLES:
        if name in actor_env:
            env[name] = actor_env[name]
        else:
            env.pop(name, None)
    return env


@ray.remote(max_concurrency=4, max_restarts=0)
class WorkerHost:
    """Hosts one worker process on its node (see the module's docstring)."""

    def __init__(
        self,
        command: Sequence[str],
        log_path: str,
        env: Mapping[str, str],
        cwd: str | None,
        banner: str | None,
    ) -> None:
        # Started here, as an actor runs its constructor before any call (calls may come on any thread).
        self.process = WorkerProcess(command, log_path, env=worker_env(env, os.environ), cwd=cwd)
        self._next = 0
        self._waiting: dict[int, tuple[str, Any]] = {}
        self._lock = threading.Lock()
        self.where: dict[str, Any] = {
            "host_pid": os.getpid(),
            "node_ip": ray.util.get_node_ip_address(),
            "node_id": ray.get_runtime_context().get_node_id(),
        }
        note = f"on Ray node {self.where['node_ip']}, actor pid {self.where['host_pid']}"
        try:
            self.process.start(banner=f"{banner} ({note})" if banner else f"dst3d worker started ({note})")
            self.where["pid"] = self.process.pid
        except OSError as exc:
            self.where["error"] = f"{self.process.command[0]}: {exc.strerror or exc}"

    def start(self) -> dict[str, Any]:
        """Where the worker runs (`error`: why it could not start)."""
        return self.where

    def call(self, sequence: int, method: str, argument: Any = None) -> Any:
        """Do `method` (send, close_stdin, stop) once every earlier call has been done, in order."""
        with self._lock:
            self._waiting[sequence] = (method, argument)
            result = None
            while self._next in self._waiting:
                name, value = self._waiting.pop(self._next)
                self._next += 1
                if name == "send":
                    self.process.send(value)
                elif name == "close_stdin":
                    self.process.close_stdin()
                elif name == "stop":
                    result = self.process.stop(grace=float(value))
            return result

    def receive(self, wait: float = RECEIVE_WAIT) -> tuple[list[dict], bool, int | None]:
        """(messages, whether the worker has ended, its exit status): waits up to `wait` seconds
        for the first message."""
        messages: list[dict] = []
        try:
            item = self.process.inbox.get(timeout=wait)
        except queue.Empty:
            return messages, False, None
        while True:
            _, message = item
            if message is None:
                return messages, True, self.process.wait(timeout=5)
            messages.append(message)
            if len(messages) >= RECEIVE_BATCH:
                return messages, False, None
            try:
                item = self.process.inbox.get_nowait()
            except queue.Empty:
                return messages, False, None


@dataclass(frozen=True)
class Placement:
    """What one worker asks of the cluster: CPUs, GPUs and custom resources per actor."""

    cpus: float = 1.0
    gpus: float = 0.0
    resources: Mapping[str, float] = field(default_factory=dict)
    start_timeout: float = 600.0  # seconds an actor may wait for room before its start fails


class RemoteProcess:
    """The driver's end of a worker on the cluster (`WorkerProcess`'s interface; see the module)."""

    def __init__(
        self,
        command: Sequence[str],
        log_path: str | os.PathLike,
        *,
        placement: Placement,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        inbox: queue.Queue | None = None,
        new_session: bool = False,  # the worker's own session is its actor's
    ) -> None:
        self.command = [str(c) for c in command]
        self.log_path = Path(log_path)
        self.env = dict(os.environ if env is None else env)
        self.cwd = None if cwd is None else str(cwd)
        self.inbox: queue.Queue = inbox if inbox is not None else queue.Queue()
        self.placement = placement
        self.actor: Any = None
        self.where: dict[str, Any] = {}
        self.returncode: int | None = None
        self.lost = False  # the actor or its node died (not the worker's own doing)
        self.error: str | None = None  # why it could not start
        self._ended = threading.Event()
        self._sequence = 0
        self._lock = threading.Lock()

    def start(self, banner: str | None = None) -> None:
        """Place the actor and start the worker (returns at once; messages follow in `inbox`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        p = self.placement
        self.actor = WorkerHost.options(
            num_cpus=p.cpus,
            num_gpus=p.gpus,
            resources=dict(p.resources) or None,
            scheduling_strategy="SPREAD",
        ).remote(self.command, str(self.log_path), self.env, self.cwd, banner)
        started = self.actor.start.remote()
        threading.Thread(target=self._read, args=(started,), daemon=True, name="remote-worker").start()

    def _read(self, started: Any) -> None:
        try:
            self.where = ray.get(started, timeout=self.placement.start_timeout)
            if "error" in self.where:
                self.error = str(self.where["error"])
                self.returncode = 127
            else:
                while True:
                    messages, ended, code = ray.get(self.actor.receive.remote())
                    for message in messages:
                        self.inbox.put((self, message))
                    if ended:
                        self.returncode = code
                        break
        except GetTimeoutError:
            self.lost = True
            self.error = f"no room on the cluster for its actor in {self.placement.start_timeout:g} s"
        except RayActorError:
            self.lost = True
        except RayError as exc:  # the cluster went away under the driver
            self.lost = True
            self.error = str(exc).splitlines()[0]
        self._ended.set()
        self.inbox.put((self, None))

    def _call(self, method: str, argument: Any = None) -> Any:
        if self.actor is None:
            return None
        with self._lock:
            sequence = self._sequence
            self._sequence += 1
        return self.actor.call.remote(sequence, method, argument)

    @property
    def pid(self) -> int | None:
        """The worker's process id on its node (None until it has started)."""
        return self.where.get("pid")

    @property
    def alive(self) -> bool:
        return self.actor is not None and not self._ended.is_set()

    def send(self, message: Mapping[str, Any]) -> None:
        """Send one message (never raises: a lost worker shows as its end)."""
        with contextlib.suppress(RayError):
            self._call("send", dict(message))

    def close_stdin(self) -> None:
        with contextlib.suppress(RayError):
            self._call("close_stdin")

    def wait(self, timeout: float | None = None) -> int | None:
        """The worker's exit status once it has ended (None while it runs, or when it was lost)."""
        self._ended.wait(timeout)
        return self.returncode

    def stop(self, grace: float = 10.0) -> int | None:
        """End the worker, then its actor."""
        if self.actor is None:
            return None
        if not self._ended.is_set():
            with contextlib.suppress(RayError):
                ray.get(self._call("stop", grace), timeout=grace + 10)
        self._ended.wait(5)
        with contextlib.suppress(RayError):
            ray.kill(self.actor)
        return self.returncode

    def describe_end(self) -> str:
        """How it ended, in words (for error messages)."""
        node = self.where.get("node_ip", "?")
        if self.error:
            return f"could not start on the cluster: {self.error}"
        if self.lost:
            return f"was lost with its Ray actor (node {node})"
        return f"{describe_exit(self.returncode)} on node {node}"

    def log_tail(self, lines: int = 1) -> str:
        return WorkerProcess([], self.log_path).log_tail(lines)


def remote_factory(placement: Placement) -> Callable[..., RemoteProcess]:
    """A process factory (the signature of `WorkerProcess`) that starts workers on the cluster."""

    def make(command: Sequence[str], log_path: str | os.PathLike, **kwargs: Any) -> RemoteProcess:
        return RemoteProcess(command, log_path, placement=placement, **kwargs)

    return make
