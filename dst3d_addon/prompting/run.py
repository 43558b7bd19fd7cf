"""The LLM prompt writer's run, without torch: start its worker, turn its messages into groups.

`LlmRun` writes the job file, starts `python -m dst3d_addon.generation.worker.llm` in the worker Python
over the worker pipe (`core/worker_pipe.py`), and hands each finished group to `on_group` as it
arrives. `poll()` never blocks for long (Blender drives it from a timer); `run()` blocks (the batch
script). A worker without torch or transformers, a model that is missing or no causal LM, or a
crash end the run with `error` set to one line.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import setting
from ..core.files import write_json_atomic
from ..core.worker_pipe import WorkerProcess, describe_exit
from ..generation.errors import GenerationError, MissingRuntime, error_from_kind
from ..generation.worker_env import PIP_PACKAGES, package_path, python_exists, worker_environment
from .llm_template import LlmTemplate
from .llm_writer import LlmSettings
from .targets import PromptTarget
from .templates import Written

WORKER_MODULE = "dst3d_addon.generation.worker.llm"
#: The pip packages the LLM writer's worker needs.
LLM_PACKAGES = ("torch", "transformers", "safetensors")


def llm_job(
    llm: str,
    settings: LlmSettings,
    template: LlmTemplate,
    targets: Sequence[PromptTarget],
    n: int,
    *,
    device: str = "auto",
    threads: int | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """The worker's job (JSON-friendly)."""
    return {
        "llm": llm,
        "settings": dict(settings.__dict__),
        "template": template.as_dict(),
        "targets": [t.as_dict() for t in targets],
        "n": int(n),
        "device": device,
        "threads": threads,
        "cache_dir": cache_dir,
    }


class LlmRun:
    """One LLM worker writing the job's groups. States: starting -> writing -> done, or failed
    (`error`). `on_group(target, written, seconds)` runs on the caller's thread, in `poll`."""

    def __init__(
        self,
        job: Mapping[str, Any],
        job_path: Path,
        log_path: Path,
        python: str,
        *,
        on_group: Callable[[PromptTarget, Written, float], None],
        on_progress: Callable[[str, int, int], None] = lambda group, asked, kept: None,
        on_status: Callable[[str], None] = lambda line: None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.job = dict(job)
        self.job_path = Path(job_path)
        self.log_path = Path(log_path)
        self.python = python
        self.on_group = on_group
        self.on_progress = on_progress
        self.on_status = on_status
        self.env = env
        self.state = "starting"
        self.error: GenerationError | None = None
        self.model = ""
        self.groups_done = 0
        self.process: WorkerProcess | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def start(self) -> None:
        """Start the worker (MissingRuntime when the Python cannot be started)."""
        if not self.python or not python_exists(self.python):
            raise MissingRuntime(f"{setting('python')} {self.python}: no such interpreter")
        write_json_atomic(self.job_path, self.job)
        self.process = WorkerProcess(
            [self.python, "-m", WORKER_MODULE, str(self.job_path)],
            self.log_path,
            env=worker_environment(self.env),
            cwd=package_path(),
        )
        try:
            self.process.start(banner="LLM prompt writer")
        except OSError as err:
            raise MissingRuntime(
                f"{setting('python')} {self.python}: cannot start it ({err.strerror or err})"
            ) from None
        self.process.close_stdin()

    def poll(self, timeout: float = 0.0) -> bool:
        """Handle the worker's messages (waiting up to `timeout` for the first); True once finished."""
        if self.finished:
            return True
        if self.process is None:
            self.start()
        assert self.process is not None
        wait = timeout
        while True:
            try:
                _, message = (
                    self.process.inbox.get(timeout=wait) if wait > 0 else self.process.inbox.get_nowait()
                )
            except queue.Empty:
                return self.finished
            wait = 0.0
            if message is None:
                self._ended()
                return True
            self._handle(message)

    def _handle(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "started":
            self.state = "writing"
            self.model = str(message.get("model", ""))
            self.on_status(f"LLM ready: {self.model} in {float(message.get('seconds', 0)):.1f} s")
        elif kind == "status":
            self.on_status(str(message.get("message", "")))
        elif kind == "progress":
            self.on_progress(
                str(message.get("group")), int(message.get("asked", 0)), int(message.get("kept", 0))
            )
        elif kind == "group":
            target = PromptTarget.from_dict(dict(message["target"]))
            written = Written(
                [str(p) for p in message.get("prompts", [])],
                [str(s) for s in message.get("sources", [])],
                {str(k): int(v) for k, v in dict(message.get("dropped", {})).items()},
                int(message.get("asked", 0)),
            )
            self.groups_done += 1
            self.on_group(target, written, float(message.get("seconds", 0.0)))
        elif kind == "missing":
            packages = " ".join(PIP_PACKAGES.get(m, m) for m in LLM_PACKAGES)
            self._fail(
                MissingRuntime(
                    f"{setting('python')} {self.python}: cannot import {message.get('module')} ({message.get('error')}); "
                    f"install them (pip install {packages}) into that Python, or pass {setting('python')} PATH "
                    "(or set DST3D_WORKER_PYTHON) to one that has them"
                )
            )
        elif kind == "fatal":
            self._fail(error_from_kind(str(message.get("kind", "internal")), str(message.get("error", ""))))
        elif kind == "garbled":
            self.on_status(f"worker: {message.get('line')}")

    def _fail(self, error: GenerationError) -> None:
        if self.error is None:
            self.error = error
        self.state = "failed"

    def _ended(self) -> None:
        assert self.process is not None
        code = self.process.wait(timeout=10)
        if self.error is not None:
            self.state = "failed"
        elif code == 0:
            self.state = "done"
        else:
            tail = self.process.log_tail()
            self._fail(
                GenerationError(
                    f"the LLM worker (pid {self.process.pid}) {describe_exit(code)}"
                    + (f"; its log ({self.log_path}) ends: {tail}" if tail else "")
                )
            )

    def run(self, poll_interval: float = 0.2) -> str:
        """Drive the run to its end (blocking); KeyboardInterrupt stops the worker first."""
        try:
            while not self.poll(poll_interval):
                pass
        except BaseException:
            self.cancel()
            raise
        return self.state

    def cancel(self) -> None:
        """Stop the worker (the groups already handed over stay)."""
        if self.process is not None:
            self.process.stop(grace=2.0)
        if not self.finished:
            self._fail(GenerationError("cancelled"))
