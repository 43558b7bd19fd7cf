"""The Blender session's one generation worker and its one job at a time (preview or export).

`SESSION` owns a single `WorkerClient` for as long as Blender runs: the worker keeps its loaded
pipeline between previews, so only the first one pays for importing torch and loading weights.
It is configured from the preferences (the worker's Python, the model cache) and made again when
they change; "Release Worker" and disabling the extension end it (frees GPU memory).

`SESSION.job` is the generation job in progress (PreviewJob or ExportJob); the panel draws its
progress and the operators refuse a second one. `tick()` is what the operators' timers call on
Blender's main thread: poll the job, apply its results to Blender data, report the end.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import bpy

from ..generation.client import WorkerClient, WorkerConfig
from . import redraw, versions
from .preferences import ADDON_PACKAGE, get_preferences, worker_environment, worker_python

WORKER_LOG = "generation-worker.log"


class GenerationJob(Protocol):
    """What the panel and the operators need of a preview or export job."""

    title: str
    image_name: str | None  # the Image the job shows in Blender (None: none)
    state: str  # running | done | failed | cancelled
    status: str
    message: str

    @property
    def done(self) -> bool: ...

    @property
    def progress(self) -> float: ...

    def poll(self) -> bool: ...

    def apply_to_blender(self, context: bpy.types.Context) -> bool: ...

    def cancel(self) -> None: ...


def user_folder() -> Path:
    """dst3d's user folder: the extension's, or Blender's user data files for a legacy add-on."""
    folder = versions.user_folder(ADDON_PACKAGE, create=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def worker_config(context: bpy.types.Context | None = None) -> WorkerConfig:
    """The worker's configuration from the preferences; RuntimeSetupError says what is missing."""
    prefs = get_preferences(context)
    return WorkerConfig(
        python=str(worker_python(prefs)),
        env=worker_environment(prefs),
        log_path=user_folder() / WORKER_LOG,
    )


class WorkerSession:
    """One WorkerClient for the Blender session, the job in progress and the last job's outcome."""

    def __init__(self) -> None:
        self._client: WorkerClient | None = None
        self._key: tuple | None = None
        self.job: GenerationJob | None = None
        self.last_message = ""  # the last job's one-line outcome, for the panel
        self.last_failed = False
        self.last_skipped = False  # an export that rendered but skipped generation
        self.last_title = ""  # which job (or "Worker") the line is about
        self._scratch: Path | None = None
        self.pacer = redraw.Pacer()  # how often the job's news reaches the screen
        self.shown_status = ""  # the status line the sidebar last drew

    @staticmethod
    def _config_key(config: WorkerConfig) -> tuple:
        env: Mapping[str, str] = config.env or {}
        return (config.python, tuple(sorted(env.items())), str(config.log_path))

    def client(self, config: WorkerConfig) -> WorkerClient:
        """The session's client for `config`; a different Python or environment ends the old worker."""
        key = self._config_key(config)
        if self._client is not None and self._key != key:
            self._client.release()
            self._client = None
        if self._client is None:
            self._client, self._key = WorkerClient(config), key
        return self._client

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id while it runs, else None."""
        client = self._client
        return client.pid if client is not None and client.alive else None

    @property
    def busy(self) -> bool:
        """True while a generation job runs (one at a time)."""
        return self.job is not None and not self.job.done

    def start(self, job: GenerationJob) -> None:
        """Make `job` the session's job (the caller checked `busy`)."""
        self.job = job
        self.pacer, self.shown_status = redraw.Pacer(), ""
        self.last_message, self.last_failed, self.last_skipped = f"{job.title}: starting", False, False
        self.last_title = job.title

    def finish(self) -> tuple[str, bool]:
        """Record the ended job's one-line outcome; returns (line, failed)."""
        job = self.job
        if job is None:
            return self.last_message, self.last_failed
        self.last_message, self.last_failed = job.message, job.state != "done"
        self.last_skipped, self.last_title = bool(getattr(job, "skipped", False)), job.title
        self.job = None
        return self.last_message, self.last_failed

    def scratch(self) -> Path:
        """A temporary folder for control images, previews and preview results (removed on release)."""
        if self._scratch is None or not self._scratch.is_dir():
            self._scratch = Path(tempfile.mkdtemp(prefix="dst3d-preview-"))
        return self._scratch

    def cancel(self) -> None:
        """Ask the job in progress to stop."""
        if self.busy:
            self.job.cancel()

    def release(self) -> bool:
        """End the worker (frees its GPU memory); a job in progress fails. True if a worker was running."""
        was_alive = self.worker_pid is not None
        if self._client is not None:
            self._client.release()
        if self.job is not None:
            self.job.poll()  # takes the released worker's failure
        return was_alive

    def shutdown(self) -> None:
        """Everything at once, for unregister: stop the job, end the worker, remove the scratch folder."""
        self.cancel()
        self.release()
        self.job = None
        self._client, self._key = None, None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


SESSION = WorkerSession()


def tick(context: bpy.types.Context) -> tuple[bool, str, bool]:
    """One timer tick on the main thread: poll the job and apply its results to Blender data.

    Returns (ended, line, failed); `line` is the job's outcome once it has ended. This is exactly
    what the operators' timers run; in background mode (no timers) scripts and tests call it.
    What changed reaches the screen only as often as Blender can draw it (redraw.Pacer), and only
    where it shows: the sidebar for a new status, the camera views for a new image.
    """
    job = SESSION.job
    if job is None:
        return True, SESSION.last_message, SESSION.last_failed
    ended = job.poll()
    now = time.monotonic()
    if SESSION.pacer.ready(now) or ended:
        image_changed = job.apply_to_blender(context)
        if image_changed or ended:
            redraw.images(context, bpy.data.images.get(job.image_name) if job.image_name else None)
        if job.status != SESSION.shown_status or ended:
            redraw.sidebars(context)
            SESSION.shown_status = job.status
            image_changed = True
        if image_changed:
            SESSION.pacer.shown(now)
    if not ended:
        return False, job.status, False
    line, failed = SESSION.finish()
    return True, line, failed
