"""The pipe every dst3d worker process speaks: JSON objects, one per line, both ways.

Three kinds of worker use it: render workers (Blender processes, `blender/render_worker.py`), the
generation worker (`generation/worker/`) and the KCF worker (`kcf/worker.py`); each module's
docstring lists its own messages. The rules are the same for all:

- The parent writes to the worker's stdin. The worker writes its messages to its original
  stdout, which it takes over at start (`Channel.take_stdout`): from then on anything else printed
  to fd 1 (library prints, Blender's own output) goes to stderr, the worker's log. Lines that are
  not JSON (printed before the take-over) are passed on as `{"type": "garbled", "line": ...}`.
- The parent's end (`WorkerProcess`) reads the messages on a thread into a queue, so a caller can
  poll without blocking (Blender's timers) or wait; the thread never calls back into the caller.
- A worker's end shows as a final `None` message; `WorkerProcess.describe_exit` words its status.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .errors import Dst3dError


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line of UTF-8 JSON."""
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


class LineReader:
    """Splits a byte stream into complete messages (a partial line waits for more bytes)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return the messages completed by them (a line that is not a JSON object
        comes back as {"type": "garbled", "line": its first 200 characters})."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        return [decode(line) for line in lines if line.strip()]


def decode(line: bytes) -> dict[str, Any]:
    """One line as a message (see `LineReader.feed`)."""
    try:
        message = json.loads(line)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        return {"type": "garbled", "line": line[:200].decode("utf-8", "replace").strip()}
    return message


class Channel:
    """The worker's end: whole messages written to a stream, safe to use from several threads."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    @classmethod
    def take_stdout(cls, *, follow_parent: bool = True) -> Channel:
        """A channel on this process's original stdout; fd 1 itself then points at stderr, so
        whatever else prints (libraries, Blender) goes to the log, never into the protocol. With
        `follow_parent`, the worker also ends when its parent does (`exit_with_parent`)."""
        stream = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)
        if follow_parent:
            exit_with_parent()
        return cls(stream)

    def send(self, message: Mapping[str, Any]) -> None:
        """Write one message (raises OSError when the parent has gone)."""
        data = encode(message)
        with self._lock:
            self._stream.write(data)
            self._stream.flush()


def first_line(error: BaseException) -> str:
    """`Kind: the first line of its message` (for a one-line `fatal` message)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def serve_job(
    modules: Sequence[str],
    job_path: str | os.PathLike,
    run: Callable[[dict[str, Any], Channel], int],
    adjust: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """The main of a worker that runs one job file (KCF's, eval's): it takes stdout over, says
    `{"type": "missing", "module", "error"}` when one of `modules` cannot be imported (exit 3),
    reads the job (`adjust` may change it), runs it, and turns an error into one `fatal` line
    (exit 1; the traceback goes to the log). Returns the exit code."""
    channel = Channel.take_stdout()
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            channel.send({"type": "missing", "module": module, "error": str(err)})
            return 3
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        job = json.loads(Path(job_path).read_text(encoding="utf-8"))
        if adjust is not None:
            adjust(job)
        return run(job, channel)
    except KeyboardInterrupt:
        return 130
    except Dst3dError as err:
        channel.send({"type": "fatal", "error": err.text})
        return 1
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        channel.send({"type": "fatal", "error": first_line(err)})
        return 1


def exit_with_parent(interval: float = 0.5) -> None:
    """End this process (exit status 70) soon after its parent ends, however the parent ended:
    a killed batch script must not leave its workers running. A daemon thread watches the parent
    id, which changes when the parent is gone (POSIX); where it never changes, nothing happens."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def describe_exit(code: int | None) -> str:
    """How a worker ended, in words ("exited with code 1", "was killed by signal 9")."""
    if code is None:
        return "stopped answering"
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


class WorkerProcess:
    """The parent's end: one worker process, its stderr in a log file, its messages in a queue.

    `inbox` may be shared by several workers (the render pool); each item is (worker, message),
    and a worker's end is (worker, None). Start with `start`; `send` never raises (a dead worker
    shows up as its end); `stop` ends it (SIGTERM, then SIGKILL after a grace period).
    """

    def __init__(
        self,
        command: Sequence[str],
        log_path: str | os.PathLike,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        inbox: queue.Queue | None = None,
        new_session: bool = False,
    ) -> None:
        self.command = [str(c) for c in command]
        self.log_path = Path(log_path)
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.inbox: queue.Queue = inbox if inbox is not None else queue.Queue()
        self.new_session = new_session
        self.process: subprocess.Popen | None = None

    def start(self, banner: str | None = None) -> None:
        """Start the process (OSError if it cannot be started); `banner` is written to the log first."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            if banner:
                log.write(f"--- {banner} {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
                log.flush()
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self.env,
                cwd=None if self.cwd is None else str(self.cwd),
                start_new_session=self.new_session,
            )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        reader = LineReader()
        assert process.stdout is not None
        try:
            while True:
                data = process.stdout.read1(1 << 16)
                if not data:
                    break
                for message in reader.feed(data):
                    self.inbox.put((self, message))
        except (OSError, ValueError):
            pass
        with contextlib.suppress(OSError):
            process.stdout.close()
        self.inbox.put((self, None))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, message: Mapping[str, Any]) -> None:
        """Write one message to the worker's stdin (a dead worker is noticed by its end message)."""
        if self.process is None or self.process.stdin is None:
            return
        try:
            self.process.stdin.write(encode(message))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def close_stdin(self) -> None:
        """Tell the worker there is nothing more (it ends when it has read everything)."""
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status, waiting up to `timeout` seconds (None if still running then)."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10.0) -> int | None:
        """End the worker: SIGTERM, then SIGKILL if it has not ended within `grace` seconds."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.close_stdin()  # its stdout is closed by the reader thread at its end
        return self.process.returncode

    def log_tail(self, lines: int = 1) -> str:
        """The last non-empty lines of the log (for error messages), joined by ' | '."""
        if not self.log_path.is_file():
            return ""
        with open(self.log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode("utf-8", "replace")
        kept = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("---")]
        return " | ".join(kept[-lines:])
