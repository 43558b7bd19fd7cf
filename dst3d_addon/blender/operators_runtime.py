"""Operators for the worker's Python: set up the managed environment, check the configured one.

Both run a runtime_setup.StepJob. The operator is a thin modal shell: a timer polls the job on
Blender's main thread, the preferences and the panel draw `ACTIVE.job`'s progress, Esc or the
Cancel button stops it. (In background mode there are no timers: tests drive the job directly.)
"""

from __future__ import annotations

import bpy

from ..generation.runtime_setup import (
    RuntimeSetupError,
    StepJob,
    check_step,
    describe_check,
    parse_check,
    setup_steps,
)
from . import redraw, versions
from .preferences import SETUP_LOG, get_preferences, managed_env_dir, worker_python
from .wording import panel_text


class _Active:
    """The runtime job in progress (one at a time), for the progress display and Cancel."""

    job: StepJob | None = None
    title: str = ""


ACTIVE = _Active()


def online_problem() -> str | None:
    """Why setting up may not download anything now (Blender's online access is off), or None."""
    if not versions.online_access():
        return (
            "Blender's online access is off (Preferences > System > Network > Allow Online Access): "
            "allow it to download torch, or choose an Existing Python"
        )
    return None


def setup_job(torch_build: str) -> StepJob:
    """The managed environment's setup job (in dst3d's user folder)."""
    env = managed_env_dir(create=True)
    return StepJob(setup_steps(env, torch_build), env.parent / SETUP_LOG)


def check_job(prefs: bpy.types.AddonPreferences) -> StepJob:
    """A job that imports torch, diffusers and transformers in the configured worker Python."""
    python = worker_python(prefs)
    log = managed_env_dir(create=True).parent / "worker-check.log"
    return StepJob([check_step(python)], log)


def finish(job: StepJob, prefs: bpy.types.AddonPreferences) -> str:
    """Store what the job found in the preferences; returns that one line."""
    if job.state == "done":
        try:
            prefs.runtime_status = "Ready: " + describe_check(parse_check(job.output))
        except RuntimeSetupError as exc:
            prefs.runtime_status = f"Not usable: {exc}"
    elif job.state == "cancelled":
        prefs.runtime_status = "Cancelled: run it again to finish the setup"
    else:
        prefs.runtime_status = f"Failed: {job.error}"
    return prefs.runtime_status


class _StepJobOperator:
    """The modal shell around a StepJob."""

    _timer = None

    def make_job(self, context: bpy.types.Context) -> StepJob:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        """From a script or in background mode: run the job to its end (blocking)."""
        try:
            job = self.make_job(context)
        except RuntimeSetupError as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        job.wait()
        line = finish(job, get_preferences(context))
        self.report({"INFO"} if job.state == "done" else {"ERROR"}, line)
        return {"FINISHED"} if job.state == "done" else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        if ACTIVE.job is not None and not ACTIVE.job.done:
            self.report({"ERROR"}, f"{ACTIVE.title} is still running")
            return {"CANCELLED"}
        try:
            job = self.make_job(context)
        except RuntimeSetupError as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        ACTIVE.job, ACTIVE.title = job, self.bl_label
        get_preferences(context).runtime_status = f"{self.bl_label}..."
        self._timer = context.window_manager.event_timer_add(0.25, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = ACTIVE.job
        if job is None:
            return self._end(context, {"CANCELLED"})
        if event.type == "ESC":
            job.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        status = job.status
        if not job.poll():
            if job.status != status:
                redraw.sidebars(context)
            return {"RUNNING_MODAL"}
        line = finish(job, get_preferences(context))
        self.report({"INFO"} if job.state == "done" else {"ERROR"}, line)
        return self._end(context, {"FINISHED"} if job.state == "done" else {"CANCELLED"})

    def _end(self, context: bpy.types.Context, result: set[str]) -> set[str]:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        redraw.sidebars(context)
        return result


class DST3D_OT_setup_runtime(_StepJobOperator, bpy.types.Operator):
    """Set up the worker's Python in dst3d's user folder: torch, diffusers, transformers, accelerate, safetensors"""

    bl_idname = "dst3d.setup_runtime"
    bl_label = "Set Up Worker Runtime"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        problem = online_problem()
        if problem is not None:
            cls.poll_message_set(problem)
            return False
        return True

    def make_job(self, context: bpy.types.Context) -> StepJob:
        problem = online_problem()
        if problem is not None:
            raise RuntimeSetupError(problem)
        return setup_job(get_preferences(context).torch_build)


class DST3D_OT_check_runtime(_StepJobOperator, bpy.types.Operator):
    """Check that the worker's Python imports torch, diffusers and transformers, and which devices it sees"""

    bl_idname = "dst3d.check_runtime"
    bl_label = "Check Worker Runtime"

    def make_job(self, context: bpy.types.Context) -> StepJob:
        return check_job(get_preferences(context))


class DST3D_OT_cancel_runtime_job(bpy.types.Operator):
    """Stop the worker setup or check in progress"""

    bl_idname = "dst3d.cancel_runtime_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return ACTIVE.job is not None and not ACTIVE.job.done

    def execute(self, context: bpy.types.Context) -> set[str]:
        ACTIVE.job.cancel()
        return {"FINISHED"}


def draw_progress(layout: bpy.types.UILayout) -> bool:
    """Draw the runtime job's progress and a Cancel button; False when no job is running."""
    job = ACTIVE.job
    if job is None or job.done:
        return False
    row = layout.row(align=True)
    versions.progress_bar(row, job.progress, job.status[:80])
    row.operator(DST3D_OT_cancel_runtime_job.bl_idname, text="", icon="CANCEL")
    return True


classes = (DST3D_OT_setup_runtime, DST3D_OT_check_runtime, DST3D_OT_cancel_runtime_job)
