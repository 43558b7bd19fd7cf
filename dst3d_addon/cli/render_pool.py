"""The render stage's process pool: K render workers, their tasks, and the records they send.

The parent never renders. It starts Blender processes (`blender/render_worker.py`, over the
worker pipe of `core/worker_pipe.py`), hands each a task (some views of one model: the model is
imported once per worker), appends the records they send (one writer), and draws the progress.
A crash in a worker (a corrupt file can crash an importer) costs that model, not the run.

Messages, parent to worker:
    {"type": "init", "settings": {...RenderSettings}, "out": DIR, "threads": N}
    {"type": "task", "model": {...ModelJob}, "views": [0, 3, 6]}
    {"type": "exit"}
worker to parent:
    {"type": "ready"}
    {"type": "view", "record": {...annotation record, its files already written}}
    {"type": "model_error", "model_id": ID, "error": "one line"}
    {"type": "task_done"}
    {"type": "fatal", "error": "one line"}           the worker cannot go on
"""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.dataset import ANNOTATIONS, Dataset
from ..core.errors import Dst3dError
from ..core.progress import Progress
from ..core.render_plan import ModelJob, Shard, Task
from ..core.render_settings import RenderSettings
from ..core.worker_pipe import WorkerProcess


@dataclass
class _Worker:
    """A running render worker and what it is doing."""

    index: int
    process: WorkerProcess
    task: Task | None = None


def worker_command(script: Path | None) -> list[str]:
    """How to start a render worker: Blender itself when we run inside Blender, else this Python
    (running `script`, or the installed package when there is no script)."""
    bpy = sys.modules.get("bpy")
    binary = getattr(getattr(bpy, "app", None), "binary_path", "") if bpy else ""
    is_blender = (
        bool(binary) and Path(binary).name.lower().startswith("blender") and os.access(binary, os.X_OK)
    )
    if script is not None and is_blender:
        return [binary, "-b", "--factory-startup", "-noaudio", "-P", str(script), "--", "_worker"]
    if script is None:
        return [sys.executable, "-m", "dst3d_addon.cli", "_worker"]
    return [sys.executable, str(script), "_worker"]


class RenderRun:
    """Runs the tasks of one render stage over K workers, appending records as views complete."""

    def __init__(
        self,
        dataset: Dataset,
        settings: RenderSettings,
        models: Sequence[ModelJob],
        tasks: list[Task],
        workers: int,
        script: Path | None,
        progress: Progress,
        shard: Shard,
    ) -> None:
        self.shard = shard
        self.dataset = dataset
        self.settings = settings
        self.models = list(models)
        self.queue = list(tasks)
        self.workers_wanted = max(1, min(workers, len(tasks)))
        self.script = script
        self.progress = progress
        self.failed: dict[str, str] = {}  # model id -> reason
        self.written = 0
        self.threads = max(1, (os.cpu_count() or 1) // self.workers_wanted)
        self.inbox: queue.Queue = queue.Queue()
        self.workers: dict[WorkerProcess, _Worker] = {}
        self._next_index = 0

    def failed_key(self, model: ModelJob) -> str:
        return f"{model.class_key}/{model.model_id}"

    def _start_worker(self) -> _Worker:
        index = self._next_index
        self._next_index += 1
        log = self.dataset.root / "logs" / f"render-shard{self.shard.index}-worker{index}.log"
        # A session of its own: Ctrl-C goes to the parent, which stops the workers.
        process = WorkerProcess(worker_command(self.script), log, inbox=self.inbox, new_session=True)
        process.start()
        worker = _Worker(index, process)
        self.workers[process] = worker
        process.send(
            {
                "type": "init",
                "settings": self.settings.as_dict(),
                "out": str(self.dataset.root),
                "threads": self.threads,
            }
        )
        return worker

    def _next_task(self, worker: _Worker) -> None:
        while self.queue:
            task = self.queue.pop(0)
            model = self.models[task.model]
            if self.failed_key(model) in self.failed:
                self.progress.update(0, failed=len(task.views))
                continue
            worker.task = task
            worker.process.send({"type": "task", "model": model.as_dict(), "views": list(task.views)})
            return
        worker.task = None
        worker.process.send({"type": "exit"})

    def _handle(self, worker: _Worker, message: dict) -> None:
        kind = message.get("type")
        if kind in ("ready", "task_done"):
            self._next_task(worker)
        elif kind == "view":
            self.dataset.append(ANNOTATIONS, [message["record"]])
            self.written += 1
            if worker.task is not None:
                worker.task = Task(worker.task.model, worker.task.views[1:])
            self.progress.update(1)
        elif kind == "model_error":
            model = self.models[worker.task.model] if worker.task else None
            key = self.failed_key(model) if model else message.get("model_id", "?")
            self.failed.setdefault(key, message.get("error", "unknown error"))
            if worker.task is not None:
                self.progress.update(0, failed=len(worker.task.views))
                worker.task = Task(worker.task.model, ())
        elif kind == "fatal":
            raise Dst3dError(f"render worker: {message.get('error')}")

    def _worker_ended(self, worker: _Worker) -> None:
        code = worker.process.wait()
        worker.process.close_stdin()
        del self.workers[worker.process]
        if worker.task is not None and worker.task.views:
            model = self.models[worker.task.model]
            reason = (
                f"{model.cad_path}: the render worker crashed (exit code {code}) on this model; "
                f"see {worker.process.log_path}"
            )
            self.failed.setdefault(self.failed_key(model), reason)
            self.progress.update(0, failed=len(worker.task.views))
        if self.queue:
            self._start_worker()

    def run(self) -> None:
        """Render everything; returns when every task is done or failed."""
        skipped = [t for t in self.queue if self.failed_key(self.models[t.model]) in self.failed]
        self.queue = [t for t in self.queue if t not in skipped]
        self.progress.update(0, failed=sum(len(t.views) for t in skipped))
        self.workers_wanted = min(self.workers_wanted, len(self.queue))
        for _ in range(self.workers_wanted):
            self._start_worker()
        try:
            while self.workers:
                try:
                    process, message = self.inbox.get(timeout=1.0)
                except queue.Empty:
                    continue
                worker = self.workers.get(process)
                if worker is None:
                    continue
                if message is None:
                    self._worker_ended(worker)
                else:
                    self._handle(worker, message)
        finally:
            self.stop()

    def stop(self) -> None:
        """End every worker (used on Ctrl-C and errors too)."""
        for worker in list(self.workers.values()):
            worker.process.stop()
        self.workers.clear()
