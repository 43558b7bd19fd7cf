"""The model the panel works on: which object it is, its mesh in the object frame, its ModelJob.

The panel's operators build the same `ModelJob`, `RenderSettings` and `Mesh` as the batch script,
so a pose sampled here is the pose the batch script renders for the same model, view and seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np

from ..core.ids import sanitize_model_id
from ..core.render_plan import ModelJob, model_id_from_path
from ..core.render_settings import RenderSettings
from ..core.sampling import DEG, Distance, SamplingSpec, parse_strategy
from ..core.viewpoint import object_points
from ..core.views import Mesh
from .cad_import import PROP_PATH, PROP_TO_OBJECT, evaluated_triangles

#: The bundled sample model (assets/ next to the package).
SAMPLE_MODEL = Path(__file__).resolve().parents[2] / "assets" / "sample" / "airliner.glb"
SAMPLE_CLASS = ("airliner", "n02690373")


def is_model(obj: bpy.types.Object | None) -> bool:
    """Whether `obj` can be a model: a mesh object."""
    return obj is not None and obj.type == "MESH"


def target_object(context: bpy.types.Context) -> bpy.types.Object | None:
    """The model the panel works on: the active mesh object, else the scene's last model."""
    obj = getattr(context, "active_object", None)
    if is_model(obj):
        return obj
    scene = context.scene
    target = scene.dst3d.target if scene is not None else None
    if is_model(target) and scene in target.users_scene:
        return target
    return None


def to_object_matrix(obj: bpy.types.Object) -> np.ndarray:
    """The 4x4 from the CAD file's coordinates to the object frame (identity if not imported by dst3d)."""
    values = obj.get(PROP_TO_OBJECT)
    if values is None or len(values) != 16:
        return np.eye(4)
    return np.array([float(v) for v in values], dtype=np.float64).reshape(4, 4)


def matrix_world(obj: bpy.types.Object) -> np.ndarray:
    """An object's world matrix as a numpy array."""
    return np.array([list(row) for row in obj.matrix_world], dtype=np.float64)


def model_mesh(obj: bpy.types.Object, scene: bpy.types.Scene | None = None) -> Mesh:
    """The object's evaluated triangles in its own frame (where it stands in the world does not matter)."""
    vertices, faces = evaluated_triangles(obj, scene)
    return Mesh(object_points(matrix_world(obj), vertices), faces, to_object_matrix(obj))


def model_job(obj: bpy.types.Object) -> ModelJob:
    """The ModelJob of an object: its class, id (from the CAD path, else its name) and alignment."""
    settings = obj.dst3d
    path = str(obj.get(PROP_PATH, ""))
    model_id = model_id_from_path(path) if path else sanitize_model_id(obj.name)
    return ModelJob(
        class_name=settings.class_name.strip() or "object",
        model_id=model_id,
        cad_path=path,
        synset=settings.synset.strip() or None,
        forward=settings.forward,
        up=settings.up,
        azimuth_offset=float(settings.azimuth_offset),
        elevation_offset=float(settings.elevation_offset),
    )


def sampling_name(settings: bpy.types.PropertyGroup) -> str:
    """The `--sampling` value of the scene settings (a grid as AxE)."""
    if settings.sampling == "GRID":
        return f"{settings.grid_azimuths}x{settings.grid_elevations}"
    return settings.sampling


def _decimal(value: float) -> float:
    """The decimal a float property was set to: Blender keeps floats in 32 bits (Fill 0.8 reads
    back as 0.800000011920929), the batch script parses the decimal; the shortest decimal of the
    float32 is what the user typed, so poses and dataset.json match `dst3d_batch.py render`."""
    return float(str(np.float32(value)))


def render_settings(scene: bpy.types.Scene) -> RenderSettings:
    """The scene's dst3d settings as the render stage's RenderSettings (ValueError names a bad one),
    equal to what the batch script's options give (see `_decimal`; theta's sd in 1e-4 degrees)."""
    s = scene.dst3d
    if s.distance_mode == "fit":
        distance = Distance("fit", _decimal(s.fit))
    else:
        distance = Distance(s.distance_mode, _decimal(s.distance))
    theta_std = round(float(s.theta_std) / DEG, 4) * DEG if s.theta_std else 0.0
    spec = SamplingSpec(parse_strategy(sampling_name(s)), distance, theta_std)
    return RenderSettings(
        width=int(s.resolution_x),
        height=int(s.resolution_y),
        sampling=spec,
        edges=s.edges,
        seed=int(s.seed),
    )


def degrees(radians: float) -> float:
    """For messages."""
    return radians / DEG if math.isfinite(radians) else radians
