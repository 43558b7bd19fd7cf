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
    {"type": "model_warning", "model_id": ID, "warning": "one line"}   something the import changed
    {"type": "model_error", "model_id": ID, "error": "one line"}
    {"type": "task_done"}
    {"type": "fatal", "error": "one line"}           the worker cannot go on

Records are appended once per id (`files.RecordLog`: two identical runs never write a view twice)
and, when the run ends, the file is put in id order, so it does not depend on which worker was
faster. A worker that sends nothing for `model_timeout` seconds (an importer blocked on a file, a
render that never ends) is stopped and costs its model alone.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import Dst3dError
from ..core.files import remove_temps_of
from ..core.progress import Progress
from ..core.render_plan import ModelJob, RecordWriter, RenderPlan, Task
from ..core.render_settings import RenderSettings
from ..core.views import file_paths
from ..core.worker_pipe import WorkerProcess, describe_exit

#: Seconds a render worker may send nothing (importing a model, rendering a view) by default.
DEFAULT_MODEL_TIMEOUT = 600.0
#: Workers in a row that end before they are ready stop the run (a worker that cannot start).
START_FAILURES = 3


@dataclass
class _Worker:
    """A running render worker and what it is doing."""

    index: int
    process: WorkerProcess
    task: Task | None = None
    loaded: int | None = None  # the model in its scene
    heard: float = 0.0  # when it last sent a message (time.monotonic())
    ready: bool = False  # it has said so (it started)


def blender_binary() -> str:
    """The Blender binary this process is (`blender -b -P ...`), or "" under a plain Python (the
    bpy module's binary path is no Blender binary)."""
    bpy = sys.modules.get("bpy")
    binary = getattr(getattr(bpy, "app", None), "binary_path", "") if bpy else ""
    if binary and Path(binary).name.lower().startswith("blender") and os.access(binary, os.X_OK):
        return binary
    return ""


def worker_command(script: Path | None) -> list[str]:
    """How to start a render worker: Blender itself when we run inside Blender, else this Python
    (running `script`, or the installed package when there is no script)."""
    binary = blender_binary()
    if script is not None and binary:
        return [binary, "-b", "--factory-startup", "-noaudio", "-P", str(script), "--", "_worker"]
    if script is None:
        return [sys.executable, "-m", "dst3d_addon.cli", "_worker"]
    return [sys.executable, str(script), "_worker"]


class RenderRun:
    """Runs the views of a render plan over K workers, appending records as views complete."""

    def __init__(
        self,
        plan: RenderPlan,
        settings: RenderSettings,
        workers: int,
        script: Path | None,
        progress: Progress,
        *,
        model_timeout: float = DEFAULT_MODEL_TIMEOUT,
        process_factory: Callable[..., WorkerProcess] = WorkerProcess,
        retries: int = 0,
        threads: int | None = None,
    ) -> None:
        """`process_factory` starts the workers (`WorkerProcess`'s signature: a Ray run gives remote
        ones); `retries` is how many times a model's views go to another worker after the one that
        had them ended (a lost node; 0 locally, where a worker that crashes fails its model at once);
        `threads` each worker's threads (default: the cores shared between the workers)."""
        self.plan = plan
        self.dataset = plan.dataset
        self.settings = settings
        self.models = plan.models
        self.workers_wanted = max(1, min(workers, plan.total))
        self.queue = plan.tasks(self.workers_wanted)
        self.script = script
        self.progress = progress
        self.model_timeout = model_timeout
        self.failed: dict[str, str] = {}  # model key -> reason
        self.warnings: dict[str, list[str]] = {}  # model key -> what its import changed
        self.records = RecordWriter(plan)
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.workers_wanted)
        self.process_factory = process_factory
        self.retries = retries
        self.retried: dict[tuple[int, int], int] = {}  # (model, view) -> times it was handed out again
        self.lost = 0  # views handed out again after their worker ended
        self._orphans: list[Task] = []  # views a worker had in hand when it ended
        self._start_failures = 0
        self.inbox: queue.Queue = queue.Queue()
        self.workers: dict[WorkerProcess, _Worker] = {}
        self._next_index = 0
        # Set by a run that consumes the views as they come (the `run` stage on a cluster):
        self.hold: Callable[[], bool] | None = None  # True: idle workers wait (re-asked each second)
        self.on_view: Callable[[dict], None] | None = None  # each record once appended
        self.sort_records = True  # False: the caller sorts (`records.finish()`) on its own thread
        self._parked: list[tuple[_Worker, float]] = []  # (worker, since when)
        self.waited = 0.0  # seconds workers spent waiting for `hold`, summed over workers
        self.ended: float | None = None  # when the last worker ended (time.monotonic())

    def failed_key(self, model: ModelJob) -> str:
        return f"{model.class_key}/{model.model_id}"

    def fail_model(self, index: int, reason: str) -> None:
        """Mark model `index` failed (the first reason stays) and count its views left as failed."""
        key = self.failed_key(self.models[index])
        if key not in self.failed:
            self.failed[key] = reason
            self.progress.update(0, failed=self.queue.drop(index))

    def _start_worker(self) -> _Worker:
        index = self._next_index
        self._next_index += 1
        log = self.dataset.root / "logs" / f"render-shard{self.plan.shard.index}-worker{index}.log"
        # A session of its own: Ctrl-C goes to the parent, which stops the workers.
        process = self.process_factory(worker_command(self.script), log, inbox=self.inbox, new_session=True)
        process.start()
        worker = _Worker(index, process, heard=time.monotonic())
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
        task = self.queue.next_task(worker.loaded)
        worker.task = task
        if task is None:
            worker.process.send({"type": "exit"})
            return
        worker.loaded = task.model
        model = self.models[task.model]
        worker.process.send({"type": "task", "model": model.as_dict(), "views": list(task.views)})

    @property
    def written(self) -> int:
        return self.records.written

    def _handle(self, worker: _Worker, message: dict) -> None:
        kind = message.get("type")
        worker.heard = time.monotonic()
        if kind in ("ready", "task_done"):
            if kind == "ready":
                worker.ready = True
                self._start_failures = 0
            if self.hold is not None and self.queue.has_work() and self.hold():
                worker.task = None
                self._parked.append((worker, time.monotonic()))
            else:
                self._next_task(worker)
        elif kind == "view":
            self.records.add(message["record"])
            if self.on_view is not None:
                self.on_view(message["record"])
            if worker.task is not None:
                worker.task = Task(worker.task.model, worker.task.views[1:])
            self.progress.update(1)
        elif kind == "model_warning" and worker.task is not None:
            key = self.failed_key(self.models[worker.task.model])
            warnings = self.warnings.setdefault(key, [])
            if message.get("warning") not in warnings:
                warnings.append(str(message.get("warning")))
        elif kind == "model_error" and worker.task is not None:
            self.progress.update(0, failed=len(worker.task.views))
            self.fail_model(worker.task.model, str(message.get("error", "unknown error")))
            worker.task = Task(worker.task.model, ())
            worker.loaded = None
        elif kind == "fatal":
            raise Dst3dError(f"render worker: {message.get('error')}")

    def _worker_ended(self, worker: _Worker) -> None:
        code = worker.process.wait()
        worker.process.close_stdin()
        del self.workers[worker.process]
        self._parked = [(w, since) for w, since in self._parked if w is not worker]
        ended = getattr(worker.process, "describe_end", None)
        how = ended() if ended is not None else f"crashed ({describe_exit(code)})"
        if not worker.ready:
            self._start_failures += 1
            if self._start_failures >= START_FAILURES:
                raise Dst3dError(
                    f"render worker: {START_FAILURES} workers in a row ended before they were ready; the last {how}; "
                    f"see {worker.process.log_path}"
                )
        if worker.task is not None and worker.task.views:
            task = worker.task
            model = self.models[task.model]
            self._orphans.append(task)
            # Counted per view: a node lost with several workers on one model costs each view one
            # try, while a view that kills every worker that takes it runs out of tries.
            counts = [self.retried.get((task.model, view), 0) for view in task.views]
            if max(counts) < self.retries:
                for view in task.views:
                    self.retried[(task.model, view)] = self.retried.get((task.model, view), 0) + 1
                self.lost += len(task.views)
                self.queue.put_back(task)
            else:
                tries = f" (a view of it, {self.retries + 1} times)" if self.retries else ""
                self.progress.update(0, failed=len(task.views))
                self.fail_model(
                    task.model,
                    f"{model.cad_path}: the render worker {how} on this model{tries}; "
                    f"see {worker.process.log_path}",
                )
        if len(self.workers) < self.workers_wanted and self.queue.has_work():
            self._start_worker()

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.task is not None and worker.task.views and now - worker.heard > self.model_timeout:
                model = self.models[worker.task.model]
                self.progress.update(0, failed=len(worker.task.views))
                self.fail_model(
                    worker.task.model,
                    f"{model.cad_path}: no view in {self.model_timeout:g} s (importing or rendering it); "
                    f"stopped (raise --model-timeout for slow models; see {worker.process.log_path})",
                )
                worker.task = Task(worker.task.model, ())
                worker.process.stop(grace=2.0)  # its end arrives as a message and starts another

    def run(self) -> None:
        """Render everything; returns when every task is done or failed. Sorts the records at the end."""
        for _ in range(self.workers_wanted):
            if not self.queue.has_work():  # models that failed their checks leave less to do
                break
            self._start_worker()
        try:
            while self.workers:
                self._unpark()
                try:
                    process, message = self.inbox.get(timeout=1.0)
                except queue.Empty:
                    self._check_deadlines()
                    continue
                worker = self.workers.get(process)
                if worker is None:
                    continue
                if message is None:
                    self._worker_ended(worker)
                else:
                    self._handle(worker, message)
                self._check_deadlines()
        finally:
            self.stop()
            self._remove_orphan_temps()
            self.ended = time.monotonic()
        if self.sort_records:
            self.records.finish()

    def _unpark(self) -> None:
        """Give the waiting workers their tasks once `hold` lets them go."""
        if self._parked and not (self.hold is not None and self.hold()):
            parked, self._parked = self._parked, []
            now = time.monotonic()
            for worker, since in parked:
                self.waited += now - since
                self._next_task(worker)

    def _remove_orphan_temps(self) -> None:
        """Remove the temporary files that workers which ended with views in hand left (none of
        this run's writers is running now; a lost node's files would otherwise wait a day)."""
        for task in self._orphans:
            model = self.models[task.model]
            for view in task.views:
                for rel in file_paths(model.annotation_id(view), True).values():
                    remove_temps_of(self.dataset.path(rel))
        self._orphans.clear()

    def stop(self) -> None:
        """End every worker (used on Ctrl-C and errors too)."""
        for worker in list(self.workers.values()):
            worker.process.stop()
        self.workers.clear()
