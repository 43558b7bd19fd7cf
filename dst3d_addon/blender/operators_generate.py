"""Operators for generation: preview the current camera, export a dataset, cancel, release the worker.

Thin shells over `PreviewJob` / `ExportJob` and the session (generate_session.py). Started from
the panel (invoke), a job runs under a modal operator whose timer calls `tick` on Blender's main
thread; Esc or the Cancel button stops it. Started from a script (execute), a `bpy.app.timers`
callback drives it, or with `wait=True` the call blocks until it ends. In background mode no
timer runs: a script drives the job with `generate_session.tick(context)`, as the timers would.
No other thread touches bpy; the worker's reader thread only queues lines.
"""

from __future__ import annotations

import time

import bpy
from bpy.props import BoolProperty

from ..core.errors import Dst3dError
from ..generation.errors import GenerationError
from ..generation.runtime_setup import RuntimeSetupError
from . import versions
from .export_job import make_export_job
from .generate_session import SESSION, GenerationJob, tick
from .model import target_object
from .preferences import get_preferences, runtime_problem
from .preview_job import make_preview_job
from .wording import panel_text

TIMER_INTERVAL_S = 0.2


def preview_problem(context: bpy.types.Context) -> tuple[str, str | None] | None:
    """Why Generate Preview cannot run now and the operator that fixes it (if any), or None."""
    if SESSION.busy:
        return f"{SESSION.job.title} is running: wait, or cancel it", None
    if target_object(context) is None:
        return "Select a mesh object (or import a model) first", None
    camera = context.scene.camera
    if camera is None or camera.type != "CAMERA":
        return "The scene has no camera", "dst3d.add_camera"
    problem = runtime_problem(context)
    if problem is not None:
        try:
            managed = get_preferences(context).worker_runtime == "MANAGED"
        except RuntimeSetupError:
            managed = False
        return problem, "dst3d.setup_runtime" if managed else None
    return None


def export_problem(context: bpy.types.Context) -> tuple[str, str | None] | None:
    """Why Export cannot run now (one line, and a fixing operator if any), or None."""
    if SESSION.busy:
        return f"{SESSION.job.title} is running: wait, or cancel it", None
    if not any(o.type == "MESH" for o in context.selected_objects):
        return "Select the models to export (mesh objects)", "dst3d.import_sample"
    if not context.scene.dst3d.export_dir.strip():
        return "Choose a Dataset Folder", None
    return None


def _timer() -> float | None:
    """The `bpy.app.timers` callback for jobs started from scripts."""
    ended, line, failed = tick(bpy.context)
    if ended:
        if line:
            print(f"dst3d: {'error: ' if failed else ''}{line}")
        return None
    return TIMER_INTERVAL_S


class JobOperator:
    """The modal shell around a worker job (preview, export, LLM prompts: one at a time, in `SESSION`)."""

    wait: BoolProperty(
        name="Wait",
        description="Block until the job ends (scripts in background mode, where no timer runs)",
        default=False,
        options={"SKIP_SAVE"},
    )
    _timer_handle = None
    #: (reason, fix operator) when the operator cannot run now, else None; set per subclass.
    problem = staticmethod(lambda context: None)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        problem = cls.problem(context)
        if problem is not None:
            cls.poll_message_set(problem[0])
            return False
        return True

    def make_job(self, context: bpy.types.Context) -> GenerationJob:
        raise NotImplementedError

    def _start(self, context: bpy.types.Context) -> bool:
        if SESSION.busy:
            self.report({"ERROR"}, f"{SESSION.job.title} is still running")
            return False
        try:
            job = self.make_job(context)
        except (Dst3dError, ValueError) as exc:
            line = panel_text(exc).splitlines()[0] if str(exc) else type(exc).__name__
            SESSION.last_message, SESSION.last_failed, SESSION.last_title = line, True, self.job_title
            self.report({"ERROR"}, line)
            return False
        SESSION.start(job)
        return True

    def _report_end(self, line: str, failed: bool) -> None:
        if failed:
            self.report({"ERROR"}, line)
        elif SESSION.last_skipped:
            self.report({"WARNING"}, line)
        else:
            self.report({"INFO"}, line)

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self._start(context):
            return {"CANCELLED"}
        if self.wait:
            while True:
                ended, line, failed = tick(context)
                if ended:
                    self._report_end(line, failed)
                    return {"CANCELLED"} if failed else {"FINISHED"}
                time.sleep(TIMER_INTERVAL_S / 4)
        if not bpy.app.timers.is_registered(_timer):
            bpy.app.timers.register(_timer, first_interval=TIMER_INTERVAL_S)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        if context.window is None:
            return self.execute(context)
        if not self._start(context):
            return {"CANCELLED"}
        self._timer_handle = context.window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            SESSION.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        ended, line, failed = tick(context)
        if not ended:
            return {"RUNNING_MODAL"}
        self._report_end(line, failed)
        if self._timer_handle is not None:
            context.window_manager.event_timer_remove(self._timer_handle)
            self._timer_handle = None
        return {"CANCELLED"} if failed else {"FINISHED"}


class DST3D_OT_generate_preview(JobOperator, bpy.types.Operator):
    """Generate an image for the current camera in the worker; it becomes the camera's background image"""

    bl_idname = "dst3d.generate_preview"
    bl_label = "Generate Preview"
    job_title = "Preview"

    problem = staticmethod(preview_problem)

    def make_job(self, context: bpy.types.Context) -> GenerationJob:
        return make_preview_job(context, SESSION)


class DST3D_OT_export_dataset(JobOperator, bpy.types.Operator):
    """Render the selected models' views into the dataset folder, then generate their images in the worker"""

    bl_idname = "dst3d.export_dataset"
    bl_label = "Export Dataset"
    job_title = "Export"

    problem = staticmethod(export_problem)

    def make_job(self, context: bpy.types.Context) -> GenerationJob:
        return make_export_job(context, SESSION)


class DST3D_OT_cancel_generation(bpy.types.Operator):
    """Stop the preview or export in progress (what is already written stays)"""

    bl_idname = "dst3d.cancel_generation"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not SESSION.busy:
            cls.poll_message_set("Nothing is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        SESSION.cancel()
        return {"FINISHED"}


class DST3D_OT_release_worker(bpy.types.Operator):
    """End the generation worker: frees its GPU memory (the next preview starts it again)"""

    bl_idname = "dst3d.release_worker"
    bl_label = "Release Worker"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if SESSION.worker_pid is None:
            cls.poll_message_set("No worker is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        pid = SESSION.worker_pid
        try:
            SESSION.release()
        except GenerationError as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        if SESSION.job is not None and SESSION.job.done:
            SESSION.finish()
        SESSION.last_message, SESSION.last_failed, SESSION.last_title = (
            f"Worker (pid {pid}) released",
            False,
            "Worker",
        )
        self.report({"INFO"}, SESSION.last_message)
        return {"FINISHED"}


def draw_job(layout: bpy.types.UILayout, kind: type) -> bool:
    """Draw the running job of `kind` (PreviewJob or ExportJob): progress and Cancel. False if none."""
    job = SESSION.job
    if job is None or job.done or not isinstance(job, kind):
        return False
    row = layout.row(align=True)
    versions.progress_bar(row, job.progress, job.status[:80])
    row.operator(DST3D_OT_cancel_generation.bl_idname, text="", icon="CANCEL")
    return True


def last_line(titles: tuple[str, ...]) -> tuple[str, bool] | None:
    """The last outcome line if it came from a job with one of these titles: (line, failed)."""
    if SESSION.last_message and SESSION.last_title in titles and not SESSION.busy:
        return SESSION.last_message, SESSION.last_failed
    return None


def shutdown() -> None:
    """For unregister: stop the timer, cancel the job, end the worker."""
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    SESSION.shutdown()


classes = (
    DST3D_OT_generate_preview,
    DST3D_OT_export_dataset,
    DST3D_OT_cancel_generation,
    DST3D_OT_release_worker,
)
