"""The camera's pose relative to the model: read it, write it, key sampled poses on the timeline."""

from __future__ import annotations

import json

import bpy
import numpy as np
from mathutils import Matrix

from ..core.camera import Pose
from ..core.viewpoint import camera_matrix, relative_pose
from ..core.views import view_pose
from . import rig
from .model import matrix_world, model_job, model_mesh, render_settings

#: The camera the panel keys sampled poses on (not rig.CAMERA_NAME, which the render stage owns).
VIEW_CAMERA_NAME = "DST3D View"
#: Custom property on the camera: the poses keyed on it, by frame ({"frame": [a, e, theta, d, seed]}).
PROP_POSES = "dst3d_poses"


def read_pose(camera: bpy.types.Object, obj: bpy.types.Object) -> tuple[Pose, float]:
    """The camera's pose relative to `obj` and the angle (radians) by which it misses obj's origin."""
    return relative_pose(matrix_world(obj), matrix_world(camera))


def place_camera(camera: bpy.types.Object, obj: bpy.types.Object, pose: Pose) -> None:
    """Move the camera to `pose` relative to `obj`, looking at its origin."""
    camera.matrix_world = Matrix(camera_matrix(matrix_world(obj), pose).tolist())


def write_pose(scene: bpy.types.Scene, camera: bpy.types.Object, obj: bpy.types.Object, pose: Pose) -> None:
    """Place the camera; if it is animated, key the new pose at the current frame so it sticks."""
    place_camera(camera, obj, pose)
    if camera.animation_data is not None and camera.animation_data.action is not None:
        _key(camera, scene.frame_current)


def ensure_view_camera(scene: bpy.types.Scene) -> bpy.types.Object:
    """The panel's camera (created and made the scene's camera if missing)."""
    camera = rig.ensure_camera(scene, VIEW_CAMERA_NAME)
    camera.rotation_mode = "QUATERNION"  # keys interpolate without Euler flips
    return camera


def sample_and_key(
    scene: bpy.types.Scene, obj: bpy.types.Object, views: int, frame_start: int
) -> tuple[bpy.types.Object, list[tuple[int, Pose]]]:
    """Sample `views` poses of `obj` as the render stage does and key them on the view camera.

    Frame frame_start + i shows view i (constant interpolation: each frame is exactly one pose);
    the scene's frame range is set to them. Returns the camera and the (seed, pose) of each view.
    """
    settings = render_settings(scene)
    job = model_job(obj)
    mesh = model_mesh(obj, scene)
    poses = [view_pose(settings, job, view, mesh) for view in range(views)]
    camera = ensure_view_camera(scene)
    rig.set_intrinsics(scene, camera, settings.intrinsics)
    camera.animation_data_clear()
    for i, (_seed, pose) in enumerate(poses):
        place_camera(camera, obj, pose)
        _key(camera, frame_start + i)
    for fcurve in camera_fcurves(camera):
        for point in fcurve.keyframe_points:
            point.interpolation = "CONSTANT"
    camera[PROP_POSES] = json.dumps(
        {
            str(frame_start + i): [p.azimuth, p.elevation, p.theta, p.distance, seed]
            for i, (seed, p) in enumerate(poses)
        }
    )
    scene.frame_start = frame_start
    scene.frame_end = frame_start + views - 1
    scene.frame_set(frame_start)
    return camera, poses


def keyed_pose(camera: bpy.types.Object, frame: int) -> tuple[Pose, int] | None:
    """The exact sampled pose and seed keyed at `frame` (None if that frame has no sampled pose)."""
    text = camera.get(PROP_POSES)
    if not text:
        return None
    entry = json.loads(text).get(str(int(frame)))
    if entry is None:
        return None
    return Pose(*map(float, entry[:4])), int(entry[4])


def camera_fcurves(camera: bpy.types.Object) -> list[bpy.types.FCurve]:
    """The F-curves of the camera's action (slotted actions of Blender 4.4+, or the older API)."""
    anim = camera.animation_data
    if anim is None or anim.action is None:
        return []
    try:
        from bpy_extras.anim_utils import action_get_channelbag_for_slot
    except ImportError:  # Blender < 4.4
        return list(anim.action.fcurves)
    bag = action_get_channelbag_for_slot(anim.action, anim.action_slot)
    return list(bag.fcurves) if bag is not None else []


def _key(camera: bpy.types.Object, frame: int) -> None:
    camera.keyframe_insert("location", frame=frame)
    rotation = "rotation_quaternion" if camera.rotation_mode == "QUATERNION" else "rotation_euler"
    camera.keyframe_insert(rotation, frame=frame)


def pose_array(pose: Pose) -> np.ndarray:
    """(a, e, theta, d) as an array (tests and messages)."""
    return np.array([pose.azimuth, pose.elevation, pose.theta, pose.distance])
