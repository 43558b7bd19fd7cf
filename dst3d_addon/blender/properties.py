"""dst3d's settings, saved with the .blend: `scene.dst3d` (sampling, control image, generation,
export, and the live camera pose) and `object.dst3d` (class, prompts and the prompt list,
alignment)."""

import contextlib
import math
from dataclasses import replace

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..core.camera import Pose
from ..core.generation_settings import DEFAULT_GENERATION_PRESET, GENERATION_PRESETS, GenerationSettings
from ..core.generation_settings import settings_from_preset as _settings_from_preset
from ..core.prompts import PAPER_NEGATIVE, PAPER_PROMPT
from ..core.render_settings import (
    AXES,
    DEFAULT_FIT,
    DEFAULT_RESOLUTION,
    DEFAULT_VIEWS,
    EDGE_MODES,
    MAX_RESOLUTION,
)
from ..core.sampling import STRATEGIES
from ..prompting.stage import MAX_PROMPTS

AXIS_ITEMS = [(a, a, f"The model's {a} axis") for a in AXES]
_EDGE_TEXT = {
    "canny": ("Geometry", "Silhouettes, creases and occlusion lines of the geometry (fast, exact)"),
    "freestyle": ("Freestyle", "Blender Freestyle lines (Cycles, about 0.3 s)"),
    "canny-shaded": ("Shaded + Canny", "3D-DST's recipe: a Cycles render, then Canny 100/200 (seconds)"),
}
_SAMPLING_ITEMS = [
    (k, f"3D-DST {k}" if k.isdigit() else k.capitalize(), v) for k, v in STRATEGIES.items() if k != "AxE"
]
_SAMPLING_ITEMS.append(("GRID", "Grid", "A grid of azimuths x elevations"))


def _apply_resolution(self: bpy.types.PropertyGroup, _context: bpy.types.Context) -> None:
    """The control image's size is the scene's render size: keep them equal."""
    render = self.id_data.render
    render.resolution_x, render.resolution_y = self.resolution_x, self.resolution_y
    render.resolution_percentage = 100


def _is_mesh(_self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH"


# ------------------------------------------------------------------------------ the live camera pose


def _pose_parts(scene: bpy.types.Scene) -> tuple | None:
    """(camera, model, pose) for the pose fields, or None when there is no camera or model."""
    from .camera_pose import read_pose
    from .model import target_object

    camera = scene.camera
    obj = target_object(bpy.context) if bpy.context.scene == scene else scene.dst3d.target
    if camera is None or obj is None or camera == obj:
        return None
    pose, _aim = read_pose(camera, obj)
    return camera, obj, pose


def _pose_getter(field: str):
    def get(self: bpy.types.PropertyGroup) -> float:
        parts = _pose_parts(self.id_data)
        return 0.0 if parts is None else float(getattr(parts[2], field))

    return get


def _pose_setter(field: str):
    def set_(self: bpy.types.PropertyGroup, value: float) -> None:
        from .camera_pose import write_pose

        scene = self.id_data
        parts = _pose_parts(scene)
        if parts is None:
            return
        camera, obj, pose = parts
        if field == "distance" and not (math.isfinite(value) and value > 0):
            return
        write_pose(scene, camera, obj, replace(pose, **{field: float(value)}))

    return set_


def current_pose(scene: bpy.types.Scene) -> Pose | None:
    """The scene camera's pose relative to the panel's model (None without a camera or model)."""
    parts = _pose_parts(scene)
    return None if parts is None else parts[2]


class DST3D_SceneSettings(bpy.types.PropertyGroup):
    """Scene-wide settings: what the batch script's options say, for the panel."""

    target: PointerProperty(
        name="Model", type=bpy.types.Object, poll=_is_mesh, description="The model the panel works on"
    )
    # sampling (the render stage's options)
    views: IntProperty(
        name="Views", default=DEFAULT_VIEWS, min=1, max=100000, description="Poses to sample (--views)"
    )
    sampling: EnumProperty(name="Sampling", items=_SAMPLING_ITEMS, default="1", description="--sampling")
    grid_azimuths: IntProperty(name="Azimuths", default=8, min=1, max=360)
    grid_elevations: IntProperty(name="Elevations", default=3, min=1, max=180)
    seed: IntProperty(
        name="Seed", default=0, min=0, description="The run seed (--seed): each view's seed derives from it"
    )
    theta_std: FloatProperty(
        name="Theta Std",
        subtype="ANGLE",
        default=0.0,
        min=0.0,
        max=math.pi,
        description="In-plane rotation sd (--theta-std)",
    )
    distance_mode: EnumProperty(
        name="Distance",
        items=[
            ("fit", "Fit", "The distance at which the object fills a share of the image (--fit)"),
            ("fixed", "Fixed", "A fixed distance in object units (--distance)"),
            ("random", "Random", "3D-DST's truncated normal around a distance (--random-distance)"),
        ],
        default="fit",
    )
    fit: FloatProperty(
        name="Fill", default=DEFAULT_FIT, min=0.05, max=2.0, description="Share of the shorter image side"
    )
    distance: FloatProperty(name="Distance", default=3.0, min=0.01, soft_max=20.0, description="Object units")
    frame_start: IntProperty(name="First Frame", default=1, min=0, description="The frame of view 0")
    # control image
    resolution_x: IntProperty(
        name="Width",
        default=DEFAULT_RESOLUTION[0],
        min=8,
        max=MAX_RESOLUTION,
        subtype="PIXEL",
        update=_apply_resolution,
    )
    resolution_y: IntProperty(
        name="Height",
        default=DEFAULT_RESOLUTION[1],
        min=8,
        max=MAX_RESOLUTION,
        subtype="PIXEL",
        update=_apply_resolution,
    )
    edges: EnumProperty(
        name="Edges", items=[(m, *_EDGE_TEXT[m]) for m in EDGE_MODES], default="canny", description="--edges"
    )
    # generation
    generation_preset: EnumProperty(
        name="Preset",
        items=[
            ("paper", "Paper", "3D-DST's generation: DDIM, 20 steps, guidance 9"),
            ("fast", "Fast", "Previews: LCM-LoRA, 4 steps (UniPC, 10 steps without the LoRA)"),
        ],
        default=DEFAULT_GENERATION_PRESET,
    )
    override_preset: BoolProperty(
        name="Override", default=False, description="Use the steps, guidance and control scale below"
    )
    steps: IntProperty(name="Steps", default=20, min=1, max=1000)
    guidance: FloatProperty(name="Guidance", default=9.0, min=0.0, soft_max=20.0)
    control_scale: FloatProperty(name="Control Scale", default=1.0, min=0.0, soft_max=2.0)
    generation_seed: IntProperty(name="Seed", default=0, min=0, description="Generation seed")
    # export
    export_dir: StringProperty(
        name="Dataset Folder", subtype="DIR_PATH", description="Where the dataset goes"
    )
    images_per_view: IntProperty(name="Images per View", default=1, min=1, max=64)
    # the live pose of the scene camera relative to the model (read and written through the camera)
    pose_azimuth: FloatProperty(
        name="Azimuth", subtype="ANGLE", get=_pose_getter("azimuth"), set=_pose_setter("azimuth"),
        description="Camera around +Z; 0 sees the front (pose-convention.md)",
    )  # fmt: skip
    pose_elevation: FloatProperty(
        name="Elevation", subtype="ANGLE", min=-math.pi / 2, max=math.pi / 2,
        get=_pose_getter("elevation"), set=_pose_setter("elevation"), description="Camera height angle",
    )  # fmt: skip
    pose_theta: FloatProperty(
        name="Theta", subtype="ANGLE", get=_pose_getter("theta"), set=_pose_setter("theta"),
        description="In-plane rotation: the object turns counter-clockwise on screen",
    )  # fmt: skip
    pose_distance: FloatProperty(
        name="Distance", min=1e-4, soft_max=20.0, get=_pose_getter("distance"), set=_pose_setter("distance"),
        description="Camera to the object's origin, in object units",
    )  # fmt: skip


class DST3D_PromptItem(bpy.types.PropertyGroup):
    """One prompt of an object's list (a template: {class} and {synset} are filled in)."""

    text: StringProperty(name="Prompt", description="A prompt; {class} and {synset} are filled in")


class DST3D_ObjectSettings(bpy.types.PropertyGroup):
    """Per-model settings: class, prompts, alignment."""

    class_name: StringProperty(name="Class", default="object", description="Class name ({class} in prompts)")
    synset: StringProperty(name="Synset", default="", description="WordNet id, e.g. n02690373 (optional)")
    prompt: StringProperty(
        name="Prompt", default=PAPER_PROMPT, description="Template with {class} and {synset}"
    )
    negative_prompt: StringProperty(name="Negative", default=PAPER_NEGATIVE)
    captions_file: StringProperty(
        name="Captions",
        subtype="FILE_PATH",
        description="Captions file (csv, jsonl, json, txt): replaces the prompt",
    )
    prompts: CollectionProperty(type=DST3D_PromptItem, name="Prompts")
    prompt_index: IntProperty(
        name="Prompt",
        default=0,
        min=0,
        description="The prompt Generate Preview uses (the dice picks another)",
    )
    prompt_writer: EnumProperty(
        name="Writer",
        items=[
            ("templates", "Templates", "Sentences from word lists (instant)"),
            ("llm", "LLM", "A local language model in the worker Python (Preferences > DST3D > Prompt LLM)"),
        ],
        default="templates",
        description="What Write Prompts uses",
    )
    prompt_count: IntProperty(
        name="Count", default=20, min=1, max=MAX_PROMPTS, description="Prompts Write Prompts writes"
    )
    forward: EnumProperty(
        name="Forward", items=AXIS_ITEMS, default="-Y", description="Where the model's front points"
    )
    up: EnumProperty(name="Up", items=AXIS_ITEMS, default="Z", description="Where the model's top points")
    azimuth_offset: FloatProperty(name="Azimuth Offset", subtype="ANGLE", default=0.0)
    elevation_offset: FloatProperty(name="Elevation Offset", subtype="ANGLE", default=0.0)


def generation_settings(
    scene: bpy.types.Scene,
    obj: bpy.types.Object | None,
    pipeline: str,
    controlnet: str | None,
    dtype: str,
) -> GenerationSettings:
    """The GenerationSettings of one model: the scene's preset and overrides, the object's prompts.

    `pipeline`/`controlnet`/`dtype` come from the preferences (preferences.model_choice). Width and
    height are left to the control image's size. Without an object (an export, whose models'
    prompts go into the dataset's prompts.jsonl) the prompts are 3D-DST's defaults, as the batch
    script's, so `dst3d_batch.py generate --out DIR` alone resumes the export. SettingsError names
    the bad setting.
    """
    s = scene.dst3d
    overrides: dict = {
        "pipeline": pipeline,
        "controlnet": controlnet,
        "dtype": dtype,
        "seed": int(s.generation_seed),
    }
    if obj is not None:
        o = obj.dst3d
        overrides.update(
            prompt=o.prompt,
            negative_prompt=o.negative_prompt,
            captions=bpy.path.abspath(o.captions_file) if o.captions_file.strip() else None,
        )
    if s.override_preset:
        overrides.update(steps=int(s.steps), guidance=float(s.guidance), control_scale=float(s.control_scale))
    return _settings_from_preset(s.generation_preset, **overrides)


def preset_values(name: str) -> dict:
    """The steps, guidance and control scale a generation preset uses (shown when not overridden)."""
    return {k: GENERATION_PRESETS[name][k] for k in ("steps", "guidance", "control_scale")}


classes = (DST3D_SceneSettings, DST3D_PromptItem, DST3D_ObjectSettings)


def register() -> None:
    """Attach the groups to Scene and Object (after the classes are registered)."""
    bpy.types.Scene.dst3d = PointerProperty(type=DST3D_SceneSettings)
    bpy.types.Object.dst3d = PointerProperty(type=DST3D_ObjectSettings)


def unregister() -> None:
    """Detach them (before the classes are unregistered)."""
    for owner in (bpy.types.Scene, bpy.types.Object):
        with contextlib.suppress(AttributeError):
            del owner.dst3d
