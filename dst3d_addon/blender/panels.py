"""The panel: View3D > Sidebar > DST3D, with Object, Camera Pose, Control, Generate and Export sections.

A button that cannot work is replaced by the reason (and, where one exists, a button that fixes
it) instead of failing after a click. Drawing only reads: nothing here writes to Blender data.
"""

from __future__ import annotations

import math

import bpy

from ..generation.runtime_setup import RuntimeSetupError
from .camera_pose import keyed_pose, read_pose
from .control_preview import CONTROL_IMAGE_NAME
from .export_job import ExportJob
from .generate_session import SESSION
from .model import target_object
from .operators_generate import draw_job, export_problem, last_line, preview_problem
from .operators_prompts import write_problem
from .operators_runtime import draw_progress
from .preferences import ADDON_PACKAGE, get_preferences, model_choice, runtime_problem
from .preview_job import PREVIEW_IMAGE_NAME, PreviewJob
from .prompts_job import PromptsJob
from .properties import preset_values
from .wording import panel_text

#: Aim errors below this are shown as "aimed" (radians).
_AIMED = math.radians(0.05)


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DST3D"


def _why(layout: bpy.types.UILayout, text: str, icon: str = "INFO") -> None:
    col = layout.column(align=True)
    for i, line in enumerate(_wrap(text, 42)):
        col.label(text=line, icon=icon if i == 0 else "BLANK1")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


class DST3D_PT_object(_Panel, bpy.types.Panel):
    bl_label = "Object"
    bl_idname = "DST3D_PT_object"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        row = layout.row(align=True)
        row.operator("dst3d.import_cad", icon="IMPORT")
        row.operator("dst3d.import_sample", text="Sample", icon="OUTLINER_OB_MESH")
        obj = target_object(context)
        if obj is None:
            _why(layout, "Select a mesh object, or import a CAD model")
            return
        layout.label(text=obj.name, icon="OBJECT_DATA")
        s = obj.dst3d
        col = layout.column()
        col.use_property_split = True
        col.prop(s, "class_name")
        col.prop(s, "synset")
        col.prop(s, "prompt")
        col.prop(s, "negative_prompt")
        col.prop(s, "captions_file")
        _draw_prompt_list(layout, context, obj)
        box = layout.box()
        box.label(text="Alignment")
        col = box.column()
        col.use_property_split = True
        col.prop(s, "forward")
        col.prop(s, "up")
        col.prop(s, "azimuth_offset")
        col.prop(s, "elevation_offset")
        box.operator("dst3d.realign", icon="FILE_REFRESH")


class DST3D_UL_prompts(bpy.types.UIList):
    """An object's prompt list: each prompt editable in place."""

    bl_idname = "DST3D_UL_prompts"

    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_prop, _index=0, _flt=0):
        layout.prop(item, "text", text="", emboss=False)


def _draw_prompt_list(layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """The object's prompts: the list (Preview uses the selected one), add, remove, dice, Write Prompts."""
    s = obj.dst3d
    box = layout.box()
    box.label(text=f"Prompts ({len(s.prompts)})" if len(s.prompts) else "Prompts (empty: the prompt above)")
    row = box.row()
    row.template_list(DST3D_UL_prompts.bl_idname, "", s, "prompts", s, "prompt_index", rows=3)
    col = row.column(align=True)
    col.operator("dst3d.prompt_add", text="", icon="ADD")
    col.operator("dst3d.prompt_remove", text="", icon="REMOVE")
    col.separator()
    col.operator("dst3d.roll_prompt", text="", icon="FILE_REFRESH")
    if draw_job(box, PromptsJob):
        return
    row = box.row(align=True)
    row.prop(s, "prompt_writer", text="")
    row.prop(s, "prompt_count")
    problem = write_problem(context)
    if problem is not None and SESSION.busy:
        _why(box, problem[0])
    if s.prompt_writer == "llm" and runtime_problem(context) is not None:
        _why(box, "The LLM writer needs a worker Python (Preferences > DST3D)")
    box.operator("dst3d.write_prompts", icon="TEXT")
    _draw_line(box, ("Write Prompts",))


class DST3D_PT_camera_pose(_Panel, bpy.types.Panel):
    bl_label = "Camera Pose"
    bl_idname = "DST3D_PT_camera_pose"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scene = context.scene
        s = scene.dst3d
        obj = target_object(context)
        if obj is None:
            _why(layout, "Select a mesh object: poses are relative to it")
            return
        camera = scene.camera
        if camera is None or camera.type != "CAMERA":
            _why(layout, "The scene has no camera")
            layout.operator("dst3d.add_camera", icon="CAMERA_DATA")
        else:
            col = layout.column(align=True)
            col.use_property_split = True
            col.prop(s, "pose_azimuth")
            col.prop(s, "pose_elevation")
            col.prop(s, "pose_theta")
            col.prop(s, "pose_distance")
            _pose, aim = read_pose(camera, obj)
            if aim > _AIMED:
                _why(
                    layout,
                    f"{camera.name} misses {obj.name}'s origin by {math.degrees(aim):.1f} deg",
                    "ERROR",
                )
                layout.operator("dst3d.aim_camera", icon="CON_TRACKTO")
            keyed = keyed_pose(camera, scene.frame_current)
            if keyed is not None:
                layout.label(text=f"Sampled view {scene.frame_current - s.frame_start}, seed {keyed[1]}")
        box = layout.box()
        box.label(text="Sample Poses")
        col = box.column()
        col.use_property_split = True
        col.prop(s, "views")
        col.prop(s, "sampling")
        if s.sampling == "GRID":
            col.prop(s, "grid_azimuths")
            col.prop(s, "grid_elevations")
        col.prop(s, "seed")
        col.prop(s, "theta_std")
        col.prop(s, "distance_mode")
        col.prop(s, "fit" if s.distance_mode == "fit" else "distance")
        col.prop(s, "frame_start")
        box.operator("dst3d.sample_poses", icon="KEYFRAME")


class DST3D_PT_control(_Panel, bpy.types.Panel):
    bl_label = "Control"
    bl_idname = "DST3D_PT_control"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.dst3d
        col = layout.column(align=True)
        col.use_property_split = True
        col.prop(s, "resolution_x")
        col.prop(s, "resolution_y")
        col.prop(s, "edges")
        if target_object(context) is None:
            _why(layout, "Select a mesh object to render its edges")
        elif context.scene.camera is None:
            _why(layout, "The scene has no camera")
            layout.operator("dst3d.add_camera", icon="CAMERA_DATA")
        else:
            layout.operator("dst3d.render_control", icon="IMAGE_DATA")
        image = bpy.data.images.get(CONTROL_IMAGE_NAME)
        if image is not None:
            layout.label(text=f"{image.name}: {image.size[0]} x {image.size[1]}", icon="IMAGE")


def draw_runtime_state(layout: bpy.types.UILayout, context: bpy.types.Context) -> bool:
    """The worker runtime's state: its problem with a fixing button, or setup progress. True if usable."""
    if draw_progress(layout):
        return False
    problem = runtime_problem(context)
    if problem is None:
        return True
    _why(layout, problem, "ERROR")
    row = layout.row(align=True)
    try:
        managed = get_preferences(context).worker_runtime == "MANAGED"
    except RuntimeSetupError:
        managed = False
    if managed:
        row.operator("dst3d.setup_runtime", icon="IMPORT")
    op = row.operator("preferences.addon_show", text="Preferences", icon="PREFERENCES")
    op.module = ADDON_PACKAGE
    return False


class DST3D_PT_generate(_Panel, bpy.types.Panel):
    bl_label = "Generate"
    bl_idname = "DST3D_PT_generate"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.dst3d
        try:
            pipeline, controlnet = model_choice(get_preferences(context))
            layout.label(
                text=f"Model: {pipeline}" + (f" + {controlnet}" if controlnet else ""), icon="NODE_TEXTURE"
            )
        except RuntimeSetupError as exc:
            _why(layout, panel_text(exc), "ERROR")
        col = layout.column()
        col.use_property_split = True
        col.prop(s, "generation_preset")
        col.prop(s, "override_preset")
        if s.override_preset:
            col.prop(s, "steps")
            col.prop(s, "guidance")
            col.prop(s, "control_scale")
        else:
            values = preset_values(s.generation_preset)
            col.label(
                text=f"{values['steps']} steps, guidance {values['guidance']}, control {values['control_scale']}"
            )
        col.prop(s, "generation_seed")
        if draw_runtime_state(layout, context):
            _draw_preview(layout, context)
        if SESSION.worker_pid is not None:
            layout.operator("dst3d.release_worker", icon="X")


def _draw_line(layout: bpy.types.UILayout, titles: tuple[str, ...]) -> None:
    """The last job's one-line outcome (error, skipped step or result)."""
    found = last_line(titles)
    if found is not None:
        line, failed = found
        _why(layout, line, "ERROR" if failed or SESSION.last_skipped else "CHECKMARK")


def _draw_preview(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """Generate Preview (or why it cannot run, with a fixing button), its progress and outcome."""
    if not draw_job(layout, PreviewJob):
        problem = preview_problem(context)
        if problem is not None:
            _why(layout, problem[0])
            if problem[1] is not None:
                layout.operator(problem[1])
        layout.operator("dst3d.generate_preview", icon="RENDER_STILL")
    _draw_line(layout, ("Preview", "Worker"))
    image = bpy.data.images.get(PREVIEW_IMAGE_NAME)
    if image is not None:
        layout.label(text=f"{image.name}: {image.size[0]} x {image.size[1]}", icon="IMAGE")


class DST3D_PT_export(_Panel, bpy.types.Panel):
    bl_label = "Export"
    bl_idname = "DST3D_PT_export"
    bl_options = frozenset({"DEFAULT_CLOSED"})

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.dst3d
        col = layout.column()
        col.use_property_split = True
        col.prop(s, "export_dir")
        col.prop(s, "views")
        col.prop(s, "images_per_view")
        selected = [o for o in context.selected_objects if o.type == "MESH"]
        layout.label(text=f"{len(selected)} selected model(s)", icon="OBJECT_DATA")
        if draw_job(layout, ExportJob):
            return
        problem = export_problem(context)
        if problem is not None:
            _why(layout, problem[0])
            if problem[1] is not None:
                layout.operator(problem[1])
        elif runtime_problem(context) is not None:
            _why(layout, "No worker Python yet: Export renders the views and skips the images")
        layout.operator("dst3d.export_dataset", icon="EXPORT")
        _draw_line(layout, ("Export",))
        layout.operator("dst3d.dataset_pictures", icon="IMAGE_DATA")


classes = (
    DST3D_UL_prompts,
    DST3D_PT_object,
    DST3D_PT_camera_pose,
    DST3D_PT_control,
    DST3D_PT_generate,
    DST3D_PT_export,
)
