"""The edge modes that need Blender's renderer: Freestyle lines, and 3D-DST's shaded Cycles render.

The scene is set up once per model (engine, world, lights, line sets); `render` then only moves
the camera. Both modes render with Cycles on the CPU, which needs no GL context.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Sequence

import bpy
import cv2
import numpy as np

from ..core.camera import Intrinsics, Pose
from . import rig

MODES = ("freestyle", "shaded")

#: Lights of the shaded mode, in the object frame: (name, direction towards the light, strength).
_SUNS = (
    ("DST3D Key", (0.6, -0.8, 0.9), 3.0),
    ("DST3D Fill", (-0.8, -0.3, 0.4), 1.2),
    ("DST3D Back", (0.1, 0.9, 0.6), 1.5),
    ("DST3D Below", (0.2, 0.1, -1.0), 0.8),
)


def _sun(scene: bpy.types.Scene, name: str, direction: Sequence[float], strength: float) -> bpy.types.Object:
    """A sun light shining from `direction` towards the origin."""
    light = bpy.data.lights.get(name) or bpy.data.lights.new(name, "SUN")
    light.energy = strength
    obj = bpy.data.objects.get(name) or bpy.data.objects.new(name, light)
    if scene not in obj.users_scene:
        scene.collection.objects.link(obj)
    d = np.asarray(direction, dtype=np.float64)
    d /= np.linalg.norm(d)
    # A sun shines down its local -Z: point local +Z at the light's direction.
    obj.rotation_mode = "QUATERNION"
    from mathutils import Vector

    obj.rotation_quaternion = Vector(d.tolist()).to_track_quat("Z", "Y")
    return obj


def _world(scene: bpy.types.Scene, colour: tuple[float, float, float], strength: float) -> None:
    world = bpy.data.worlds.get("DST3D World") or bpy.data.worlds.new("DST3D World")
    world.use_nodes = True
    background = world.node_tree.nodes.get("Background")
    if background is None:
        background = world.node_tree.nodes.new("ShaderNodeBackground")
    background.inputs["Color"].default_value = (*colour, 1.0)
    background.inputs["Strength"].default_value = strength
    scene.world = world


def _black_material() -> bpy.types.Material:
    mat = bpy.data.materials.get("DST3D Black") or bpy.data.materials.new("DST3D Black")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (0.0, 0.0, 0.0, 1.0)
    output = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return mat


class SceneRenderer:
    """Renders the current model from poses, with a scene built once."""

    def __init__(
        self,
        scene: bpy.types.Scene,
        objects: Sequence[bpy.types.Object],
        intrinsics: Intrinsics,
        mode: str,
        *,
        samples: int = 32,
        denoise: bool = True,
        threads: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown render mode {mode!r}: use one of {', '.join(MODES)}")
        self.scene = scene
        self.mode = mode
        self.objects = list(objects)
        self.camera = rig.ensure_camera(scene)
        rig.set_intrinsics(scene, self.camera, intrinsics)
        render = scene.render
        render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.seed = 0
        render.film_transparent = False
        render.dither_intensity = 0.0  # no noise in the 8-bit images: black stays 0
        render.use_compositing = False
        render.use_sequencer = False
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGB"
        render.image_settings.color_depth = "8"
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.view_settings.exposure = 0.0
        scene.view_settings.gamma = 1.0
        if threads:
            render.threads_mode = "FIXED"
            render.threads = int(threads)
        view_layer = scene.view_layers[0]
        if mode == "freestyle":
            self._setup_freestyle(scene, view_layer, intrinsics)
        else:
            scene.cycles.samples = int(samples)
            scene.cycles.use_denoising = bool(denoise)
            render.use_freestyle = False
            view_layer.material_override = None
            # The world lights the object softly from every side (so views from below are not
            # black) but the film is transparent, so the background is black, as for the lines.
            _world(scene, (0.25, 0.25, 0.25), 1.0)
            render.film_transparent = True
            for name, direction, strength in _SUNS:
                _sun(scene, name, direction, strength)
        handle, self._path = tempfile.mkstemp(prefix="dst3d-render-", suffix=".png")
        os.close(handle)

    def _setup_freestyle(
        self, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, intrinsics: Intrinsics
    ) -> None:
        """Black object on a black world, white Freestyle lines of visible edges only."""
        scene.cycles.samples = 1
        scene.cycles.use_denoising = False
        _world(scene, (0.0, 0.0, 0.0), 0.0)
        view_layer.material_override = _black_material()
        render = scene.render
        render.use_freestyle = True
        render.line_thickness_mode = "ABSOLUTE"
        render.line_thickness = max(1.0, intrinsics.width / 512.0)
        view_layer.use_freestyle = True
        settings = view_layer.freestyle_settings
        settings.mode = "EDITOR"
        settings.crease_angle = math.radians(150.0)  # creases sharper than 30 deg
        settings.as_render_pass = False
        lineset = settings.linesets.get("DST3D") or settings.linesets.new("DST3D")
        for other in settings.linesets:
            other.show_render = other == lineset
        lineset.select_by_visibility = True
        lineset.visibility = "VISIBLE"
        lineset.select_by_edge_types = True
        lineset.select_silhouette = True
        lineset.select_border = True
        lineset.select_crease = True
        lineset.select_external_contour = True
        style = bpy.data.linestyles.get("DST3D Lines") or bpy.data.linestyles.new("DST3D Lines")
        style.color = (1.0, 1.0, 1.0)
        style.thickness = 1.0
        style.alpha = 1.0
        lineset.linestyle = style

    def render(self, pose: Pose) -> np.ndarray:
        """The image of `pose`: (H, W) uint8 lines for freestyle, (H, W, 3) BGR for shaded."""
        rig.set_pose(self.camera, pose)
        self.scene.render.filepath = self._path
        with bpy.context.temp_override(scene=self.scene):
            bpy.ops.render.render(write_still=True)
        flag = cv2.IMREAD_GRAYSCALE if self.mode == "freestyle" else cv2.IMREAD_COLOR
        image = cv2.imread(self._path, flag)
        if image is None:
            raise RuntimeError(f"Blender wrote no image to {self._path}")
        return image

    def close(self) -> None:
        """Remove the temporary image file."""
        path = getattr(self, "_path", None)  # unset when __init__ refused its arguments
        if path and os.path.exists(path):
            os.remove(path)

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            self.close()
