"""Operators for the view: add the dst3d camera, aim it, sample poses, render the control image."""

from __future__ import annotations

import math

import bpy

from ..core.camera import Pose
from ..core.errors import Dst3dError
from ..core.sampling import DEG
from . import rig
from .camera_pose import ensure_view_camera, place_camera, read_pose, sample_and_key
from .control_preview import CONTROL_IMAGE_NAME, image_from_array, render_control, show_image
from .model import render_settings, target_object
from .wording import panel_text

#: Where "Add Camera" puts a new camera: 30 deg round from the front, 20 deg up, 3 units away.
DEFAULT_POSE = Pose(30 * DEG, 20 * DEG, 0.0, 3.0)


def _needs_model(cls: type, context: bpy.types.Context) -> bool:
    if target_object(context) is None:
        cls.poll_message_set("Select a mesh object (or import a model) first")
        return False
    return True


def _needs_camera(cls: type, context: bpy.types.Context) -> bool:
    if not _needs_model(cls, context):
        return False
    camera = context.scene.camera
    if camera is None or camera.type != "CAMERA":
        cls.poll_message_set("The scene has no camera: press Add Camera")
        return False
    return True


class DST3D_OT_add_camera(bpy.types.Operator):
    """Add the dst3d camera (3D-DST's lens) looking at the model, and make it the scene's camera"""

    bl_idname = "dst3d.add_camera"
    bl_label = "Add Camera"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _needs_model(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        try:
            settings = render_settings(scene)
        except ValueError as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        camera = ensure_view_camera(scene)
        rig.set_intrinsics(scene, camera, settings.intrinsics)
        place_camera(camera, target_object(context), DEFAULT_POSE)
        return {"FINISHED"}


class DST3D_OT_aim_camera(bpy.types.Operator):
    """Turn the scene camera to look at the model's origin, keeping its pose angles and distance"""

    bl_idname = "dst3d.aim_camera"
    bl_label = "Aim at Model"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _needs_camera(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj, camera = target_object(context), context.scene.camera
        pose, _aim = read_pose(camera, obj)
        if not pose.distance > 0:
            self.report({"ERROR"}, "The camera sits at the model's origin: move it away first")
            return {"CANCELLED"}
        place_camera(camera, obj, pose)
        return {"FINISHED"}


class DST3D_OT_sample_poses(bpy.types.Operator):
    """Sample camera poses as the render stage does and key them on the dst3d camera, one per frame"""

    bl_idname = "dst3d.sample_poses"
    bl_label = "Sample Poses"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _needs_model(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        settings = scene.dst3d
        obj = target_object(context)
        try:
            _camera, poses = sample_and_key(scene, obj, int(settings.views), int(settings.frame_start))
        except (Dst3dError, ValueError) as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        scene.dst3d.target = obj
        last = settings.frame_start + len(poses) - 1
        self.report(
            {"INFO"}, f"Keyed {len(poses)} poses of {obj.name!r} on frames {settings.frame_start}-{last}"
        )
        return {"FINISHED"}


class DST3D_OT_render_control(bpy.types.Operator):
    """Render the control image (edge map) of the model for the current camera and show it"""

    bl_idname = "dst3d.render_control"
    bl_label = "Render Control Image"
    bl_options = frozenset({"REGISTER"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _needs_camera(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        obj, camera = target_object(context), scene.camera
        try:
            edges = render_control(scene, obj, camera, scene.dst3d.edges)
        except (Dst3dError, ValueError) as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        image = image_from_array(CONTROL_IMAGE_NAME, edges)
        show_image(context, image)
        _pose, aim = read_pose(camera, obj)
        if scene.dst3d.edges != "canny" and aim > 0.5 * DEG:
            self.report(
                {"WARNING"},
                f"The camera misses the model's origin by {math.degrees(aim):.1f} deg; "
                f"{scene.dst3d.edges} renders it aimed at the origin",
            )
        else:
            self.report({"INFO"}, f"Control image {image.size[0]}x{image.size[1]} in {image.name!r}")
        return {"FINISHED"}


classes = (DST3D_OT_add_camera, DST3D_OT_aim_camera, DST3D_OT_sample_poses, DST3D_OT_render_control)
