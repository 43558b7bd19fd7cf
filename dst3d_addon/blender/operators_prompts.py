"""Operators on an object's prompt list: add, remove, roll the dice, and Write Prompts.

Write Prompts fills the list with the object's class name, varied: the template writer at once,
or the LLM writer in its worker process as a job (progress, Esc or the Cancel button), one job at
a time with previews and exports (`SESSION`).
"""

from __future__ import annotations

import random

import bpy

from ..core.errors import Dst3dError
from .generate_session import SESSION, GenerationJob
from .model import target_object
from .operators_generate import JobOperator
from .prompts_job import make_prompts_job, selected_prompt, write_template_prompts
from .wording import panel_text


def _has_model(cls: type, context: bpy.types.Context) -> bool:
    if target_object(context) is None:
        cls.poll_message_set("Select a mesh object (or import a model) first")
        return False
    return True


class DST3D_OT_prompt_add(bpy.types.Operator):
    """Add a prompt to the model's list (a copy of the selected one, or its prompt template)"""

    bl_idname = "dst3d.prompt_add"
    bl_label = "Add Prompt"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _has_model(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = target_object(context)
        s = obj.dst3d
        text = selected_prompt(obj) or s.prompt
        s.prompts.add().text = text
        s.prompt_index = len(s.prompts) - 1
        return {"FINISHED"}


class DST3D_OT_prompt_remove(bpy.types.Operator):
    """Remove the selected prompt from the model's list"""

    bl_idname = "dst3d.prompt_remove"
    bl_label = "Remove Prompt"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not _has_model(cls, context):
            return False
        if not len(target_object(context).dst3d.prompts):
            cls.poll_message_set("The list is empty")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = target_object(context).dst3d
        index = min(s.prompt_index, len(s.prompts) - 1)
        s.prompts.remove(index)
        s.prompt_index = max(0, min(index, len(s.prompts) - 1))
        return {"FINISHED"}


class DST3D_OT_roll_prompt(bpy.types.Operator):
    """Pick another prompt of the list at random (Generate Preview uses the selected one)"""

    bl_idname = "dst3d.roll_prompt"
    bl_label = "Roll Prompt"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not _has_model(cls, context):
            return False
        if len(target_object(context).dst3d.prompts) < 2:
            cls.poll_message_set("The list needs two prompts or more")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = target_object(context).dst3d
        others = [i for i in range(len(s.prompts)) if i != s.prompt_index]
        s.prompt_index = random.choice(others)
        return {"FINISHED"}


def write_problem(context: bpy.types.Context) -> tuple[str, str | None] | None:
    """Why Write Prompts cannot run now (and the operator that fixes it), or None."""
    if SESSION.busy:
        return f"{SESSION.job.title} is running: wait, or cancel it", None
    if target_object(context) is None:
        return "Select a mesh object (or import a model) first", None
    return None


class DST3D_OT_write_prompts(JobOperator, bpy.types.Operator):
    """Fill the model's prompt list with varied prompts naming its class (templates at once, or the LLM in the worker)"""

    bl_idname = "dst3d.write_prompts"
    bl_label = "Write Prompts"
    bl_options = frozenset({"REGISTER", "UNDO"})
    job_title = "Write Prompts"

    problem = staticmethod(write_problem)

    def make_job(self, context: bpy.types.Context) -> GenerationJob:
        return make_prompts_job(context, SESSION, target_object(context))

    def _templates(self, context: bpy.types.Context) -> set[str]:
        obj = target_object(context)
        s = obj.dst3d
        try:
            written = write_template_prompts(
                obj, int(s.prompt_count), int(context.scene.dst3d.generation_seed)
            )
        except (Dst3dError, ValueError) as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        SESSION.last_message = (
            f"Wrote {len(written.prompts)} prompts for {obj.name!r} with the template writer"
        )
        SESSION.last_failed, SESSION.last_title = False, self.job_title
        self.report({"INFO"}, SESSION.last_message)
        return {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if target_object(context).dst3d.prompt_writer == "templates":
            return self._templates(context)
        return super().execute(context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if target_object(context).dst3d.prompt_writer == "templates":
            return self._templates(context)
        return super().invoke(context, event)


classes = (DST3D_OT_prompt_add, DST3D_OT_prompt_remove, DST3D_OT_roll_prompt, DST3D_OT_write_prompts)
