"""Operators that bring models in: import an aligned CAD file, the bundled sample, re-align."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.cad_files import SUPPORTED
from ..core.errors import Dst3dError
from ..core.synsets import synset_name
from .cad_import import PROP_MODEL, PROP_PATH, import_cad
from .model import SAMPLE_CLASS, SAMPLE_MODEL, target_object
from .properties import AXIS_ITEMS
from .wording import panel_text


@contextlib.contextmanager
def _keep_models(scene: bpy.types.Scene) -> Iterator[None]:
    """import_cad replaces the scene's earlier models; the panel adds one instead (several per scene)."""
    kept = [obj for obj in scene.objects if obj.get(PROP_MODEL)]
    for obj in kept:
        obj[PROP_MODEL] = False
    try:
        yield
    finally:
        for obj in kept:
            with contextlib.suppress(ReferenceError):
                obj[PROP_MODEL] = True


def add_model(
    context: bpy.types.Context,
    path: str,
    class_name: str,
    synset: str,
    forward: str = "-Y",
    up: str = "Z",
    azimuth_offset: float = 0.0,
    elevation_offset: float = 0.0,
) -> bpy.types.Object:
    """Import `path` aligned and normalised (as the render stage does), keep the scene's other models,
    fill the object's dst3d settings, and make it the active object and the panel's model."""
    scene = context.scene
    with _keep_models(scene):
        model = import_cad(
            path,
            forward=forward,
            up=up,
            azimuth_offset=azimuth_offset,
            elevation_offset=elevation_offset,
            scene=scene,
        )
    obj = model.object
    settings = obj.dst3d
    name = class_name.strip()
    if name in ("", "object"):  # the default: a known synset names the class ("airliner")
        name = synset_name(synset.strip()) or "object"
    settings.class_name = name
    settings.synset = synset.strip()
    settings.forward, settings.up = forward, up
    settings.azimuth_offset, settings.elevation_offset = azimuth_offset, elevation_offset
    for other in context.view_layer.objects:
        other.select_set(False)
    with contextlib.suppress(RuntimeError):  # not in the view layer (another scene): leave selection
        obj.select_set(True)
        context.view_layer.objects.active = obj
    scene.dst3d.target = obj
    return obj


class DST3D_OT_import_cad(bpy.types.Operator, ImportHelper):
    """Import a CAD model, aligned and normalised as the render stage does (front -Y, +Z up, size 1)"""

    bl_idname = "dst3d.import_cad"
    bl_label = "Import Aligned CAD"
    bl_options = frozenset({"REGISTER", "UNDO"})

    filter_glob: StringProperty(default=";".join(f"*{s}" for s in sorted(SUPPORTED)), options={"HIDDEN"})
    class_name: StringProperty(name="Class", default="object", description="Class name of the model")
    synset: StringProperty(name="Synset", default="", description="WordNet id (optional)")
    forward: EnumProperty(
        name="Forward", items=AXIS_ITEMS, default="-Y", description="Where the model's front points"
    )
    up: EnumProperty(name="Up", items=AXIS_ITEMS, default="Z", description="Where the model's top points")
    azimuth_offset: FloatProperty(name="Azimuth Offset", subtype="ANGLE", default=0.0)
    elevation_offset: FloatProperty(name="Elevation Offset", subtype="ANGLE", default=0.0)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            obj = add_model(
                context,
                self.filepath,
                self.class_name,
                self.synset,
                self.forward,
                self.up,
                self.azimuth_offset,
                self.elevation_offset,
            )
        except (Dst3dError, ValueError) as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {Path(self.filepath).name} as {obj.name!r}")
        return {"FINISHED"}


class DST3D_OT_import_sample(bpy.types.Operator):
    """Import the bundled sample airliner (already aligned)"""

    bl_idname = "dst3d.import_sample"
    bl_label = "Import Sample Model"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not SAMPLE_MODEL.is_file():
            cls.poll_message_set(f"The sample model is missing: {SAMPLE_MODEL}")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            obj = add_model(context, str(SAMPLE_MODEL), *SAMPLE_CLASS)
        except (Dst3dError, ValueError) as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported the sample model as {obj.name!r}")
        return {"FINISHED"}


class DST3D_OT_realign(bpy.types.Operator):
    """Import the model's CAD file again with its (edited) forward, up and offsets"""

    bl_idname = "dst3d.realign"
    bl_label = "Re-align"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = target_object(context)
        if obj is None:
            cls.poll_message_set("Select a model first")
            return False
        if not obj.get(PROP_PATH):
            cls.poll_message_set("This object was not imported by dst3d: there is no CAD file to re-align")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        old = target_object(context)
        s = old.dst3d
        path, args = str(old[PROP_PATH]), (s.class_name, s.synset, s.forward, s.up)
        offsets = (s.azimuth_offset, s.elevation_offset)
        try:
            obj = add_model(context, path, *args, *offsets)
        except (Dst3dError, ValueError) as exc:
            self.report({"ERROR"}, panel_text(exc))  # the old object stays as it was
            return {"CANCELLED"}
        obj.matrix_world = old.matrix_world.copy()
        for key in ("prompt", "negative_prompt", "captions_file", "prompt_writer", "prompt_count"):
            setattr(obj.dst3d, key, getattr(s, key))
        for item in s.prompts:
            obj.dst3d.prompts.add().text = item.text
        obj.dst3d.prompt_index = s.prompt_index
        name, mesh = old.name, old.data
        bpy.data.objects.remove(old, do_unlink=True)
        if mesh is not None and mesh.users == 0:
            bpy.data.meshes.remove(mesh)
        obj.name = name
        self.report({"INFO"}, f"Re-aligned {obj.name!r}")
        return {"FINISHED"}


classes = (DST3D_OT_import_cad, DST3D_OT_import_sample, DST3D_OT_realign)
