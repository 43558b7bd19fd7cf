"""The control image of the current camera, as an Image datablock shown in an Image Editor.

`canny` (geometry edges) rasterises the model with the render stage's own code for exactly what
the camera sees, wherever it points. `freestyle` and `canny-shaded` render with Blender in a
temporary scene (the artist's scene and render settings are left alone), from the camera's pose
relative to the model, i.e. aimed at the model's origin as the render stage's cameras are.
"""

from __future__ import annotations

import contextlib

import bpy
import numpy as np

from ..core import control, raster
from ..core.camera import Intrinsics
from ..core.errors import Dst3dError
from ..core.viewpoint import blender_intrinsics, relative_extrinsics, relative_pose
from . import rig
from .model import matrix_world, model_mesh

CONTROL_IMAGE_NAME = "DST3D Control"


class ControlPreviewError(Dst3dError):
    """The control image cannot be made (no camera, not a perspective camera, ...)."""


def camera_intrinsics(scene: bpy.types.Scene, camera: bpy.types.Object) -> Intrinsics:
    """The intrinsics of a perspective camera at the scene's render resolution (percentage applied)."""
    cam = camera.data
    if cam.type != "PERSP":
        raise ControlPreviewError(f"camera {camera.name!r} is {cam.type.lower()}: use a perspective camera")
    r = scene.render
    scale = r.resolution_percentage / 100.0
    width, height = max(1, round(r.resolution_x * scale)), max(1, round(r.resolution_y * scale))
    if abs(r.pixel_aspect_x - r.pixel_aspect_y) > 1e-6:
        raise ControlPreviewError(f"scene {scene.name!r}: pixel aspect must be 1:1 for exact control images")
    return blender_intrinsics(
        width, height, cam.lens, cam.sensor_width, cam.sensor_height, cam.sensor_fit, cam.shift_x, cam.shift_y
    )


def render_control(
    scene: bpy.types.Scene, obj: bpy.types.Object, camera: bpy.types.Object, edges: str = "canny"
) -> np.ndarray:
    """The control image (H, W) uint8, white lines on black, of `obj` seen by `camera`."""
    intrinsics = camera_intrinsics(scene, camera)
    mesh = model_mesh(obj, scene)
    if edges == "canny":
        R, C = relative_extrinsics(matrix_world(obj), matrix_world(camera))
        return control.geometry_edges(raster.rasterize(mesh.vertices, mesh.faces, R, C, intrinsics))
    if edges not in ("freestyle", "canny-shaded"):
        raise ControlPreviewError(f"edge mode {edges!r}: use canny, freestyle or canny-shaded")
    pose, _aim = relative_pose(matrix_world(obj), matrix_world(camera))
    image = blender_render(obj, intrinsics, "freestyle" if edges == "freestyle" else "shaded", pose)
    if edges == "freestyle":
        return image if image.ndim == 2 else image[..., :3].max(axis=2)
    return control.canny(image)


def blender_render(obj: bpy.types.Object, intrinsics: Intrinsics, mode: str, pose) -> np.ndarray:
    """Render `obj` (at the world origin, as the render stage does) in a scene made for the purpose."""
    from .scene_render import SceneRenderer

    temp_scene = bpy.data.scenes.new("DST3D Control Render")
    proxy = obj.copy()  # shares the mesh; placed in the object frame
    proxy.matrix_world.identity()
    temp_scene.collection.objects.link(proxy)
    # SceneRenderer finds its camera by rig.CAMERA_NAME: lend it the name, restore it after.
    existing = bpy.data.objects.get(rig.CAMERA_NAME)
    if existing is not None:
        existing.name = rig.CAMERA_NAME + " (kept)"
    before = {o.as_pointer() for o in bpy.data.objects}
    try:
        with SceneRenderer(temp_scene, [proxy], intrinsics, mode) as renderer:
            return renderer.render(pose)
    finally:
        made = [o for o in bpy.data.objects if o.as_pointer() not in before]
        datas = [o.data for o in made if o.data is not None]
        bpy.data.objects.remove(proxy, do_unlink=True)
        for o in made:
            bpy.data.objects.remove(o, do_unlink=True)
        for data in datas:
            with contextlib.suppress(ReferenceError, TypeError):
                if data.users == 0:
                    (bpy.data.cameras if isinstance(data, bpy.types.Camera) else bpy.data.lights).remove(data)
        bpy.data.scenes.remove(temp_scene)
        if existing is not None:
            existing.name = rig.CAMERA_NAME


def image_from_array(name: str, pixels: np.ndarray) -> bpy.types.Image:
    """An Image datablock holding a uint8 gray or RGB(A) image (top row first), packed into the .blend."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[:, :, None]
    height, width, channels = a.shape
    rgba = np.ones((height, width, 4), np.float32)
    rgba[:, :, :3] = (a[:, :, :3] if channels >= 3 else np.repeat(a[:, :, :1], 3, axis=2)) / 255.0
    if channels == 4:
        rgba[:, :, 3] = a[:, :, 3] / 255.0
    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != (width, height):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, width, height, alpha=True)
    image.pixels.foreach_set(rgba[::-1].reshape(-1))  # Blender's rows go bottom-up
    image.update()
    image.pack()
    return image


def image_array(image: bpy.types.Image) -> np.ndarray:
    """An Image's pixels as (H, W, 4) uint8, top row first (tests and exports)."""
    width, height = image.size
    data = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(data)
    return np.rint(data.reshape(height, width, 4)[::-1] * 255.0).astype(np.uint8)


def show_image(context: bpy.types.Context, image: bpy.types.Image) -> bool:
    """Show `image` in an Image Editor: an open one, else a new window. False without a UI (background)."""
    wm = context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                area.tag_redraw()
                return True
    window = context.window
    if window is None:
        return False
    before = set(wm.windows[:])
    with contextlib.suppress(RuntimeError), context.temp_override(window=window):
        bpy.ops.wm.window_new()
    new = [w for w in wm.windows if w not in before]
    if not new:
        return False
    area = new[0].screen.areas[0]
    area.type = "IMAGE_EDITOR"
    area.spaces.active.image = image
    return True
