"""The edge modes that need Blender's renderer: Freestyle lines, and 3D-DST's shaded Cycles render.

The scene is set up once per model (engine, world, lights, line set); `render` then only moves the
camera. Both modes render with Cycles on the CPU: Freestyle does not run in Workbench, and EEVEE
needs a GL context (with software GL it took 1.5 to 2.5 minutes per view here, Cycles 0.5 s).

`shaded` mirrors 3D-DST's scripts/blender_render.py (Blender 3.2, Cycles): 32 samples with
OpenImageDenoise, 1 diffuse and 1 glossy bounce, 3 transparent and 3 transmission bounces, a
0.01 px pixel filter, a transparent film (we composite over black, 3D-DST dropped the alpha),
the startup file's grey world (0.0509, strength 1),
Filmic colour management (3.2's default), and one area light of 30000 W scaled to 100 x 100 m,
lying at z = 0.5 above the object and shining down. That light is fixed in the world, so views
from below see only the world's dim light: that is the paper's look. `lighting="camera"` carries
the same light with the camera instead (it lies in the image plane, shining along the view), for
well-lit renders from every side.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import bpy
import cv2
import numpy as np

from ..core.camera import Intrinsics, Pose
from ..core.errors import Dst3dError
from . import rig

MODES = ("freestyle", "shaded")
LIGHTINGS = ("dst3d", "camera")

#: Freestyle line width in pixels at 512 px image width; it scales with the width, never below 1 px.
LINE_WIDTH_512 = 1.25
#: Edges whose faces meet at less than this angle (degrees, 180 = flat) are drawn as creases.
#: Blender's default: sharper than this, the tessellation of coarse curved surfaces shows.
CREASE_ANGLE_DEG = 134.43

#: 3D-DST's light: an area light of this power (W), scaled by this factor, at this height.
DST3D_LIGHT_ENERGY = 30000.0
DST3D_LIGHT_SCALE = 100.0
DST3D_LIGHT_HEIGHT = 0.5
#: The world of Blender 3.2's startup file, which 3D-DST's renders kept.
DST3D_WORLD_GREY = 0.050876088
#: Blender's default Cycles seed, fixed so that the same view renders the same pixels.
CYCLES_SEED = 0

_LIGHT_NAME = "DST3D Area Light"
_WORLD_NAMES = {"freestyle": "DST3D Black World", "shaded": "DST3D World"}
_LINESET_NAME = "DST3D Lines"
#: The renderer that set each scene up last (by the scene's pointer): only it may render there.
_SCENE_OWNER: dict[int, int] = {}
_RENDERABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT", "VOLUME", "POINTCLOUD", "CURVES", "GREASEPENCIL"}


def has_denoiser() -> bool:
    """Whether this Blender's Cycles has OpenImageDenoise (Debian's Blender 3.4 is built without it)."""
    import _cycles  # Cycles' own module, there once the Cycles add-on is (it always is)

    return bool(getattr(_cycles, "with_openimagedenoise", False))


class SceneRenderError(Dst3dError, ValueError):
    """A render option or scene that SceneRenderer cannot use; the message names it."""


def line_width(intrinsics: Intrinsics) -> float:
    """Freestyle line width (px) for an image: LINE_WIDTH_512 at 512 px wide, at least 1 px."""
    return max(1.0, LINE_WIDTH_512 * intrinsics.width / 512.0)


class SceneRenderer:
    """Renders the given objects from poses; the scene is set up once, `render` moves the camera.

    The scene's render settings, world and first view layer are changed for good, and other
    geometry and lights in the scene are hidden from the render until `close()`: give it a scene
    of its own. One renderer at a time per scene: a renderer whose scene another one set up
    since refuses to render (its settings are gone).
    """

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
        lighting: str = "dst3d",
    ) -> None:
        self._tmp: Path | None = None
        self._hidden: list[bpy.types.Object] = []
        if mode not in MODES:
            raise SceneRenderError(f"render mode {mode!r}: use one of {', '.join(MODES)}")
        if lighting not in LIGHTINGS:
            raise SceneRenderError(f"lighting {lighting!r}: use one of {', '.join(LIGHTINGS)}")
        if int(samples) < 1:
            raise SceneRenderError(f"samples {samples}: must be at least 1")
        if threads is not None and int(threads) < 1:
            raise SceneRenderError(f"threads {threads}: must be at least 1")
        if not objects:
            raise SceneRenderError("no objects to render: give SceneRenderer the model's objects")
        self.scene = scene
        self.mode = mode
        self.intrinsics = intrinsics
        self.objects = list(objects)
        self.camera = rig.ensure_camera(scene)
        rig.set_intrinsics(scene, self.camera, intrinsics)
        self._setup_common(scene, threads)
        if mode == "freestyle":
            self._setup_freestyle(scene, intrinsics)
        else:
            self._setup_shaded(scene, int(samples), bool(denoise), lighting)
        self._hide_others(scene)
        self._tmp = Path(tempfile.mkdtemp(prefix="dst3d-render-"))
        _SCENE_OWNER[scene.as_pointer()] = id(self)

    @staticmethod
    def _setup_common(scene: bpy.types.Scene, threads: int | None) -> None:
        render = scene.render
        render.engine = "CYCLES"
        cycles = scene.cycles
        cycles.device = "CPU"
        cycles.seed = CYCLES_SEED
        cycles.use_animated_seed = False
        render.use_border = False
        render.use_motion_blur = False
        render.use_compositing = False
        render.use_sequencer = False
        render.use_persistent_data = True  # keep the BVH between views: only the camera moves
        render.dither_intensity = 0.0  # no noise in the 8-bit images: black stays 0
        render.image_settings.file_format = "PNG"
        render.image_settings.color_depth = "8"
        view = scene.view_settings
        view.look = "None"
        view.exposure = 0.0
        view.gamma = 1.0
        view.use_curve_mapping = False
        scene.display_settings.display_device = "sRGB"
        if threads is not None:  # None leaves the scene's setting alone
            render.threads_mode = "FIXED"
            render.threads = int(threads)

    def _setup_freestyle(self, scene: bpy.types.Scene, intrinsics: Intrinsics) -> None:
        """White Freestyle lines of the visible edges on black; the faces are not rendered at all."""
        render = scene.render
        cycles = scene.cycles
        # One sample at the pixel centre draws each line as solid 8-connected 0/255 pixels.
        cycles.samples = 1
        cycles.use_adaptive_sampling = False
        cycles.use_denoising = False
        cycles.max_bounces = 0
        cycles.filter_width = 0.01
        render.film_transparent = False
        scene.world = _world(_WORLD_NAMES["freestyle"], 0.0, 0.0)
        scene.view_settings.view_transform = "Standard"  # white lines are 255
        render.image_settings.color_mode = "BW"
        render.use_freestyle = True
        render.line_thickness_mode = "ABSOLUTE"
        render.line_thickness = 1.0  # multiplies the line style's thickness
        view_layer = scene.view_layers[0]
        view_layer.material_override = None
        # Faces off: the object renders as nothing (black world), yet Freestyle still uses it
        # to decide which lines are hidden. This is also cheaper than a black material.
        view_layer.use_solid = False
        view_layer.use_freestyle = True
        settings = view_layer.freestyle_settings
        settings.mode = "EDITOR"
        settings.as_render_pass = False
        settings.crease_angle = np.radians(CREASE_ANGLE_DEG)
        # After read_factory_settings(use_empty=True) the line set has no line style: make ours.
        lineset = settings.linesets.get(_LINESET_NAME) or settings.linesets.new(_LINESET_NAME)
        for other in settings.linesets:
            other.show_render = other == lineset
        lineset.select_by_visibility = True
        lineset.visibility = "VISIBLE"
        lineset.select_by_edge_types = True
        lineset.select_by_face_marks = False
        lineset.select_by_collection = False
        lineset.select_by_image_border = True
        for edge_type in ("silhouette", "border", "crease", "external_contour"):
            setattr(lineset, f"select_{edge_type}", True)
        for edge_type in ("contour", "suggestive_contour", "ridge_valley", "material_boundary"):
            setattr(lineset, f"select_{edge_type}", False)
        for edge_type in ("edge_mark", "external_contour", "silhouette", "border", "crease"):
            setattr(lineset, f"exclude_{edge_type}", False)
        style = lineset.linestyle or bpy.data.linestyles.get(_LINESET_NAME)
        if style is None:
            style = bpy.data.linestyles.new(_LINESET_NAME)
        lineset.linestyle = style
        style.color = (1.0, 1.0, 1.0)  # a new line style draws black
        style.alpha = 1.0
        style.thickness = line_width(intrinsics)
        style.thickness_position = "CENTER"
        style.use_chaining = True
        style.chaining = "PLAIN"
        style.caps = "BUTT"

    def _setup_shaded(self, scene: bpy.types.Scene, samples: int, denoise: bool, lighting: str) -> None:
        """3D-DST's shaded render (see the module docstring)."""
        render = scene.render
        cycles = scene.cycles
        cycles.samples = samples
        cycles.use_adaptive_sampling = True
        cycles.use_denoising = denoise
        if denoise:
            if not has_denoiser():
                raise SceneRenderError(
                    f"Blender {bpy.app.version_string} was built without OpenImageDenoise, which the "
                    "shaded render (3D-DST's recipe) denoises with: use a Blender that has it"
                )
            cycles.denoiser = "OPENIMAGEDENOISE"
        cycles.diffuse_bounces = 1
        cycles.glossy_bounces = 1
        cycles.transparent_max_bounces = 3
        cycles.transmission_bounces = 3
        cycles.max_bounces = 12
        cycles.filter_width = 0.01
        render.film_transparent = True
        render.use_freestyle = False
        render.image_settings.color_mode = "RGBA"
        scene.view_settings.view_transform = "Filmic"
        view_layer = scene.view_layers[0]
        view_layer.material_override = None
        view_layer.use_solid = True
        scene.world = _world(_WORLD_NAMES["shaded"], DST3D_WORLD_GREY, 1.0)
        light = _area_light(scene)
        if lighting == "camera":
            # In the image plane, shining down the view axis, carried by the camera.
            light.parent = self.camera
            light.matrix_parent_inverse.identity()
            light.location = (0.0, 0.0, 0.0)
        else:
            light.parent = None
            light.location = (0.0, 0.0, DST3D_LIGHT_HEIGHT)
        light.rotation_mode = "XYZ"
        light.rotation_euler = (0.0, 0.0, 0.0)  # an area light shines down its local -Z
        light.scale = (DST3D_LIGHT_SCALE,) * 3
        self._light = light

    def _hide_others(self, scene: bpy.types.Scene) -> None:
        """Hide from the render every other geometry or light of the scene (restored by close)."""
        keep = {obj.name for obj in self.objects}
        for obj in self.objects:
            obj.hide_render = False  # an earlier renderer may have hidden it
            keep.update(child.name for child in obj.children_recursive)
        if self.mode == "shaded":
            keep.add(self._light.name)
        for obj in scene.objects:
            if obj.name in keep or obj.hide_render:
                continue
            if obj.type in _RENDERABLE or obj.type == "LIGHT":
                obj.hide_render = True
                self._hidden.append(obj)

    def render(self, pose: Pose) -> np.ndarray:
        """The image of `pose`: (H, W) uint8 0/255 lines for freestyle, (H, W, 3) uint8 BGR for shaded.

        The shaded render has a transparent film; it comes back composited over black.
        """
        if self._tmp is None:
            raise SceneRenderError("SceneRenderer.render after close(): make a new renderer")
        if _SCENE_OWNER.get(self.scene.as_pointer()) != id(self):
            raise SceneRenderError(
                f"scene {self.scene.name!r} was set up again by another SceneRenderer: make a new one"
            )
        rig.set_pose(self.camera, pose)
        path = self._tmp / "view.png"
        self.scene.render.filepath = str(path)
        with bpy.context.temp_override(scene=self.scene):
            bpy.ops.render.render(write_still=True, scene=self.scene.name)
        flag = cv2.IMREAD_GRAYSCALE if self.mode == "freestyle" else cv2.IMREAD_UNCHANGED
        image = cv2.imread(str(path), flag)
        if image is None:
            raise SceneRenderError(f"{path}: Blender wrote no image for the {self.mode} render")
        path.unlink()
        if self.mode == "freestyle":
            return image
        return over_black(image)

    def close(self) -> None:
        """Remove the temporary folder and show again what the renderer hid; safe to call twice."""
        for obj in self._hidden:
            with contextlib.suppress(ReferenceError):
                obj.hide_render = False
        self._hidden = []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        tmp = getattr(self, "_tmp", None)  # unset when __init__ refused its arguments
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def over_black(bgra: np.ndarray) -> np.ndarray:
    """A straight-alpha BGRA uint8 image composited over black (BGR uint8).

    3D-DST dropped the alpha instead; that differs where the pixel is partly covered, and where
    the denoiser spread colour into fully transparent pixels (a halo at low sample counts).
    """
    if bgra.ndim != 3 or bgra.shape[2] != 4:
        return bgra if bgra.ndim == 3 else cv2.cvtColor(bgra, cv2.COLOR_GRAY2BGR)
    alpha = bgra[..., 3:].astype(np.uint16)
    return ((bgra[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def _world(name: str, grey: float, strength: float) -> bpy.types.World:
    """A uniform world (Cycles reads its Background node)."""
    world = bpy.data.worlds.get(name) or bpy.data.worlds.new(name)
    world.color = (grey, grey, grey)
    if world.node_tree is None:  # Blender 5.0 gives every world its nodes (use_nodes is deprecated)
        world.use_nodes = True
    nodes = world.node_tree.nodes
    nodes.clear()
    background = nodes.new("ShaderNodeBackground")
    background.inputs["Color"].default_value = (grey, grey, grey, 1.0)
    background.inputs["Strength"].default_value = strength
    output = nodes.new("ShaderNodeOutputWorld")
    world.node_tree.links.new(background.outputs["Background"], output.inputs["Surface"])
    return world


def _area_light(scene: bpy.types.Scene) -> bpy.types.Object:
    """3D-DST's area light (1 m square, 30000 W; the object's scale makes it 100 m wide)."""
    data = bpy.data.lights.get(_LIGHT_NAME)
    if data is None or data.type != "AREA":
        data = bpy.data.lights.new(_LIGHT_NAME, "AREA")
    data.shape = "SQUARE"
    data.size = 1.0
    data.energy = DST3D_LIGHT_ENERGY
    data.color = (1.0, 1.0, 1.0)
    data.spread = np.pi  # Blender's default, as in 3.2
    if hasattr(data, "normalize"):  # Blender 4.0 made it an option; before, it always was
        data.normalize = True  # power spread over the (scaled) area, as 3.2 always did
    obj = bpy.data.objects.get(_LIGHT_NAME)
    if obj is None or obj.type != "LIGHT":
        obj = bpy.data.objects.new(_LIGHT_NAME, data)
    obj.data = data
    obj.hide_render = False
    if scene not in obj.users_scene:
        scene.collection.objects.link(obj)
    return obj
