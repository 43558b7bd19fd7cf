"""The generation client: starts the worker process, sends jobs, streams progress (no torch here).

Blender and the batch script both use it. Nothing blocks unless asked to: `Job.poll()` handles
whatever messages have arrived and returns at once (Blender calls it from a timer or a modal
operator on its main thread); `Job.wait()` blocks (the batch script). A reader thread only moves
lines from the worker's pipe into a queue; it never calls back into the caller.

A worker that dies fails its pending jobs with `WorkerCrashed` (with the exit status and the last
line of its log) and is started again by the next job.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.worker_protocol import LineReader, encode
from .errors import GenerationError, MissingRuntime, WorkerCrashed, error_from_kind
from .protocol import PROTOCOL_VERSION, WORKER_MODULE

#: The folder that holds the `dst3d_addon` package: the worker imports it from there.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
WORKER_PYTHON_ENV = "DST3D_WORKER_PYTHON"
_EOF = object()


def default_python() -> str:
    """The worker's interpreter when none is configured: $DST3D_WORKER_PYTHON, else this Python."""
    return os.environ.get(WORKER_PYTHON_ENV) or sys.executable


@dataclass
class WorkerConfig:
    """How to start the worker: which Python, extra environment, where its output goes."""

    python: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: str | os.PathLike | None = None
    start_timeout: float = 600.0


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


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
        self._proc: subprocess.Popen | None = None
        self._log_file: Any = None
        self._log_path: Path | None = None
        self._messages: queue.Queue[Any] = queue.Queue()
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
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self) -> None:
        """Start the worker if it is not running (returns at once; `hello` arrives later)."""
        if self.alive:
            return
        if self._proc is not None:  # it died: take its last messages, fail its jobs, start anew
            self.pump(0)
            if self._proc is not None:
                self._worker_ended()
        if self._crashed:
            self.restarts += 1
            self._crashed = False
        env = dict(os.environ)
        env.update(self.config.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        if self.config.log_path is not None:
            self._log_path = Path(self.config.log_path)
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self._log_path = Path(tempfile.gettempdir()) / f"dst3d-worker-{os.getpid()}.log"
        self._log_file = open(self._log_path, "ab")  # noqa: SIM115 (kept open for the process' life)
        self._log_file.write(f"--- dst3d worker started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self._log_file.flush()
        python = self.python
        if not Path(python).is_file() and not _on_path(python):
            raise MissingRuntime(
                f"worker Python {python}: no such file; set the worker's Python to one with torch"
            )
        try:
            self._proc = subprocess.Popen(
                [python, "-u", "-m", WORKER_MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log_file,
                env=env,
                cwd=str(PACKAGE_ROOT),
            )
        except OSError as exc:
            raise MissingRuntime(f"worker Python {python}: cannot start it ({exc.strerror or exc})") from None
        self.hello = None
        self._fatal = None
        self._messages = queue.Queue()
        threading.Thread(target=self._read, args=(self._proc, self._messages), daemon=True).start()

    def _read(self, proc: subprocess.Popen, messages: queue.Queue) -> None:
        reader = LineReader()
        assert proc.stdout is not None
        while True:
            data = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(1)
            if not data:
                break
            try:
                for message in reader.feed(data):
                    messages.put(message)
            except ValueError:  # not JSON: a stray line on the protocol pipe; keep going
                reader = LineReader()
        messages.put(_EOF)

    def _reap(self) -> int | None:
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def log_tail(self, lines: int = 1) -> str:
        """The last non-empty lines of the worker's log (for error messages)."""
        if self._log_path is None or not self._log_path.is_file():
            return ""
        with open(self._log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode("utf-8", "replace")
        kept = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("---")]
        return " | ".join(kept[-lines:])

    def send(self, message: dict[str, Any]) -> None:
        """Write one message to the worker (a dead pipe is noticed by `pump`)."""
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(encode(message))
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    # ----------------------------------------------------------------------------- messages
    def pump(self, timeout: float = 0) -> None:
        """Handle arrived messages; wait up to `timeout` seconds for the first one."""
        try:
            first = self._messages.get(timeout=timeout) if timeout > 0 else self._messages.get_nowait()
        except queue.Empty:
            return
        self._dispatch(first)
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return
            self._dispatch(message)

    def _dispatch(self, message: Any) -> None:
        if message is _EOF:
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
                f"the generation worker (pid {pid}) {_describe_exit(code)}"
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
            if self._proc is None:  # ended before saying hello
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
        if self._proc is None:
            return
        self._releasing = True
        try:
            self.send({"type": "exit"})
            with contextlib.suppress(OSError):
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            deadline = time.monotonic() + 5
            while self._proc is not None and time.monotonic() < deadline:
                self.pump(0.1)
            if self._proc is not None:
                self._worker_ended()
        finally:
            self._releasing = False

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _on_path(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None
