"""The Blender camera of a pose (pose-convention.md, "Blender")."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from ..core.camera import DEFAULT_SENSOR_MM, Intrinsics, Pose, blender_matrix_world, extrinsics

CAMERA_NAME = "DST3D Camera"


def ensure_camera(scene: bpy.types.Scene, name: str = CAMERA_NAME) -> bpy.types.Object:
    """The scene's dst3d camera object, created (and made the active camera) if missing."""
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != "CAMERA":
        data = bpy.data.cameras.new(name)
        obj = bpy.data.objects.new(name, data)
    if obj.name not in scene.collection.objects and scene not in obj.users_scene:
        scene.collection.objects.link(obj)
    scene.camera = obj
    return obj


def set_intrinsics(scene: bpy.types.Scene, camera: bpy.types.Object, intrinsics: Intrinsics) -> None:
    """Resolution, lens and sensor so that Blender renders exactly `intrinsics` (no shift, square pixels)."""
    render = scene.render
    render.resolution_x = intrinsics.width
    render.resolution_y = intrinsics.height
    render.resolution_percentage = 100
    render.pixel_aspect_x = 1.0
    render.pixel_aspect_y = 1.0
    cam = camera.data
    cam.type = "PERSP"
    cam.sensor_fit = "HORIZONTAL"
    cam.sensor_width = DEFAULT_SENSOR_MM
    cam.lens = intrinsics.blender_lens(DEFAULT_SENSOR_MM)
    px, py = intrinsics.principal
    # Blender's shift is in units of the larger image side.
    size = max(intrinsics.width, intrinsics.height)
    cam.shift_x = -(px - intrinsics.width / 2.0) / size
    cam.shift_y = (py - intrinsics.height / 2.0) / size
    cam.clip_start = 1e-3
    cam.clip_end = 1e4


def set_pose(camera: bpy.types.Object, pose: Pose) -> None:
    """Place the camera at `pose` relative to the object frame (= world frame)."""
    R, C = extrinsics(pose)
    camera.matrix_world = Matrix(blender_matrix_world(R, C).tolist())


def matrix_world_array(obj: bpy.types.Object) -> np.ndarray:
    """An object's world matrix as a numpy array."""
    return np.array([list(row) for row in obj.matrix_world], dtype=np.float64)
