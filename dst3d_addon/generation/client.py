"""The generation client: starts the worker process, sends jobs, streams progress (no torch here).

Blender and the batch script both use it. Nothing blocks unless asked to: `Job.poll()` handles
whatever messages have arrived and returns at once (Blender calls it from a timer or a modal
operator on its main thread); `Job.wait()` blocks (the batch script). A reader thread only moves
lines from the worker's pipe into a queue; it never calls back into the caller.

A worker that dies fails its pending jobs with `WorkerCrashed` (with the exit status and the last
line of its log) and is started again by the next job.
"""

from __future__ import annotations

import itertools
import os
import queue
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.worker_pipe import WorkerProcess, describe_exit
from .errors import GenerationError, MissingRuntime, WorkerCrashed, error_from_kind
from .protocol import PROTOCOL_VERSION, WORKER_MODULE
from .worker_env import default_python, package_path, python_exists, worker_environment


@dataclass
class WorkerConfig:
    """How to start the worker: which Python, extra environment, where its output goes."""

    python: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: str | os.PathLike | None = None
    start_timeout: float = 600.0
    #: Starts the worker (`WorkerProcess`'s signature): a Ray run gives one that starts it on the cluster.
    process_factory: Callable[..., WorkerProcess] = WorkerProcess


class Job:
    """One request to the worker; its fields update as messages arrive (through `poll`/`wait`)."""

    def __init__(self, client: WorkerClient, job_id: int, kind: str) -> None:
        self.client = client
        self.id = job_id
        self.kind = kind
        self.state = "running"  # running | done | failed
        self.step = 0
        self.steps = 0
        self.status = ""
        self.preview: str | None = None
        self.preview_step = 0
        self.result: dict[str, Any] | None = None
        self.error: GenerationError | None = None
        self.cancel_requested = False
        self.listeners: list[Callable[[Job, dict[str, Any]], None]] = []

    @property
    def done(self) -> bool:
        return self.state != "running"

    def _update(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "progress":
            self.step, self.steps = int(message["step"]), int(message["steps"])
        elif kind == "status":
            self.status = str(message.get("message", ""))
        elif kind == "preview":
            self.preview, self.preview_step = message.get("file"), int(message.get("step", 0))
        elif kind in ("result", "loaded"):
            self.result = message
            self.state = "done"
        elif kind == "error":
            self.fail(error_from_kind(str(message.get("kind")), str(message.get("message"))))
        for listener in self.listeners:
            listener(self, message)

    def fail(self, error: GenerationError) -> None:
        self.error = error
        self.state = "failed"

    def poll(self) -> bool:
        """Handle the messages that have arrived (never blocks); True once the job has ended."""
        self.client.pump(0)
        return self.done

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job ends; return its result message or raise its typed error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"generation job {self.id} did not finish in {timeout} s")
            self.client.pump(left)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def cancel(self) -> None:
        """Ask the worker to stop this job at its next denoising step."""
        if not self.done and not self.cancel_requested:
            self.cancel_requested = True
            self.client.send({"type": "cancel", "id": self.id})


class WorkerClient:
    """Owns one worker process (started lazily, restarted after a crash)."""

    def __init__(self, config: WorkerConfig | None = None) -> None:
        self.config = config or WorkerConfig()
        self.hello: dict[str, Any] | None = None
        self._process: WorkerProcess | None = None
        self._log_path: Path | None = None
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._fatal: GenerationError | None = None
        self._releasing = False
        self._crashed = False
        self.restarts = 0  # workers started again after one ended unexpectedly

    # ----------------------------------------------------------------------------- process
    @property
    def python(self) -> str:
        return self.config.python or default_python()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.alive

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self) -> None:
        """Start the worker if it is not running (returns at once; `hello` arrives later)."""
        if self.alive:
            return
        if self._process is not None:  # it died: take its last messages, fail its jobs, start anew
            self.pump(0)
            if self._process is not None:
                self._worker_ended()
        if self._crashed:
            self.restarts += 1
            self._crashed = False
        if self.config.log_path is not None:
            self._log_path = Path(self.config.log_path)
        else:
            self._log_path = Path(tempfile.gettempdir()) / f"dst3d-worker-{os.getpid()}.log"
        python = self.python
        if not python_exists(python):
            raise MissingRuntime(
                f"worker Python {python}: no such file; set the worker's Python to one with torch"
            )
        process = self.config.process_factory(
            [python, "-u", "-m", WORKER_MODULE],
            self._log_path,
            env=worker_environment(self.config.env),
            cwd=package_path(),
        )
        try:
            process.start(banner="dst3d worker started")
        except OSError as exc:
            raise MissingRuntime(f"worker Python {python}: cannot start it ({exc.strerror or exc})") from None
        self._process = process
        self.hello = None
        self._fatal = None

    def _reap(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        code = process.wait(timeout=5)
        process.close_stdin()
        return code

    def log_tail(self, lines: int = 1) -> str:
        """The last non-empty lines of the worker's log (for error messages)."""
        if self._log_path is None:
            return ""
        return WorkerProcess([], self._log_path).log_tail(lines)

    def send(self, message: dict[str, Any]) -> None:
        """Write one message to the worker (a dead pipe is noticed by `pump`)."""
        if self._process is not None:
            self._process.send(message)

    # ----------------------------------------------------------------------------- messages
    def pump(self, timeout: float = 0) -> None:
        """Handle arrived messages; wait up to `timeout` seconds for the first one."""
        if self._process is None:
            if timeout > 0:
                time.sleep(timeout)
            return
        inbox = self._process.inbox
        try:
            first = inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
        except queue.Empty:
            return
        self._dispatch(*first)
        while True:
            try:
                item = inbox.get_nowait()
            except queue.Empty:
                return
            self._dispatch(*item)

    def _dispatch(self, process: WorkerProcess, message: dict[str, Any] | None) -> None:
        if process is not self._process:
            return  # from a worker that has already been reaped
        if message is None:
            self._worker_ended()
            return
        kind = message.get("type")
        if kind == "hello":
            if message.get("protocol") != PROTOCOL_VERSION:
                self._fatal = GenerationError(
                    f"worker {self.python} speaks protocol {message.get('protocol')}, not {PROTOCOL_VERSION}"
                )
            self.hello = message
            return
        if kind == "fatal":
            self._fatal = error_from_kind(str(message.get("kind")), str(message.get("message")))
            return
        job = self._jobs.get(message.get("id"))
        if job is None:
            return
        job._update(message)
        if job.done:
            self._jobs.pop(job.id, None)

    def _worker_ended(self) -> None:
        pid = self.pid
        code = self._reap()
        if self._releasing:
            error: GenerationError = WorkerCrashed("the generation worker was released")
        elif self._fatal is not None:
            error = self._fatal
        else:
            self._crashed = True
            tail = self.log_tail()
            error = WorkerCrashed(
                f"the generation worker (pid {pid}) {describe_exit(code)}"
                + (f"; its log {self._log_path} ends: {tail}" if tail else f"; see its log {self._log_path}")
                + "; the next job starts a new one"
            )
        for job in list(self._jobs.values()):
            job.fail(error)
        self._jobs.clear()

    # ----------------------------------------------------------------------------- jobs
    def _submit(self, kind: str, message: dict[str, Any]) -> Job:
        self.start()
        job = Job(self, next(self._ids), kind)
        self._jobs[job.id] = job
        self.send({**message, "type": kind, "id": job.id})
        return job

    def wait_ready(self, timeout: float | None = None) -> dict[str, Any]:
        """Start the worker if needed and wait for its hello (torch imported); returns it."""
        self.start()
        deadline = time.monotonic() + (self.config.start_timeout if timeout is None else timeout)
        while self.hello is None:
            if self._fatal is not None:
                raise self._fatal
            if self._process is None:  # ended before saying hello
                raise self._fatal or WorkerCrashed(
                    f"the generation worker ({self.python}) ended while starting; see its log {self._log_path}: "
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise WorkerCrashed(f"the generation worker ({self.python}) did not start in time")
            self.pump(0.2)
        if self._fatal is not None:
            raise self._fatal
        return self.hello

    def load(self, pipeline: Mapping[str, Any], *, fallback: Mapping[str, Any] | None = None) -> Job:
        """Load (or keep) a pipeline without generating: warms the worker up."""
        return self._submit(
            "load", {"pipeline": dict(pipeline), "fallback": dict(fallback) if fallback else None}
        )

    def generate(
        self,
        pipeline: Mapping[str, Any],
        settings: Mapping[str, Any],
        items: Sequence[Mapping[str, Any]],
        *,
        fallback: Mapping[str, Any] | None = None,
        preview_every: int = 0,
        preview_dir: str | os.PathLike | None = None,
        batching: str = "exact",
    ) -> Job:
        """Queue a batch of images; each item names its control image, prompts, seed and output file."""
        return self._submit(
            "generate",
            {
                "pipeline": dict(pipeline),
                "settings": dict(settings),
                "fallback": dict(fallback) if fallback else None,
                "items": [dict(item) for item in items],
                "preview_every": int(preview_every),
                "preview_dir": str(preview_dir) if preview_dir is not None else None,
                "batching": batching,
            },
        )

    def release(self, timeout: float = 10.0) -> None:
        """End the worker (frees its GPU memory); pending jobs fail. The next job starts a new one."""
        process = self._process
        if process is None:
            return
        self._releasing = True
        try:
            self.send({"type": "exit"})
            process.close_stdin()
            if process.wait(timeout=timeout) is None:
                process.stop(grace=1.0)
            deadline = time.monotonic() + 5
            while self._process is not None and time.monotonic() < deadline:
                self.pump(0.1)
            if self._process is not None:
                self._worker_ended()
        finally:
            self._releasing = False

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
