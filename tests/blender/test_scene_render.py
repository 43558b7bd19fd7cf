"""The Blender-rendered edge modes (Freestyle lines, 3D-DST's shaded Cycles render) against pose-convention.md."""

from __future__ import annotations

import math

import bpy
import cv2
import numpy as np
import pytest

from dst3d_addon.blender.scene_render import SceneRenderer, SceneRenderError, has_denoiser, line_width
from dst3d_addon.core.camera import Intrinsics, Pose, extrinsics, project
from dst3d_addon.core.errors import Dst3dError

INTR = Intrinsics.from_lens(96, 72)
KERNEL_2PX = np.ones((5, 5), np.uint8)  # dilating by it reaches pixels up to 2 px away

# A box with unequal sides, off centre; and an irregular (asymmetric) tetrahedron.
BOX_VERTS = [(x, y, z) for x in (-0.5, 0.4) for y in (-0.3, 0.35) for z in (-0.25, 0.3)]
BOX_FACES = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
TETRA_VERTS = [(-0.5, -0.3, -0.3), (0.45, -0.35, -0.25), (0.1, 0.4, -0.3), (-0.1, -0.05, 0.4)]
TETRA_FACES = [(0, 2, 1), (0, 1, 3), (1, 2, 3), (2, 0, 3)]


@pytest.fixture
def scene() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def add_mesh(scene: bpy.types.Scene, name: str, verts, faces) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(v) for v in verts], [], [tuple(f) for f in faces])
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def add_blob(scene: bpy.types.Scene) -> bpy.types.Object:
    """A smooth, bent, asymmetric ellipsoid (no creases: its lines are silhouettes only)."""
    bpy.ops.mesh.primitive_uv_sphere_add(segments=32, ring_count=16, radius=0.5)
    obj = bpy.context.active_object
    co = np.array([v.co for v in obj.data.vertices])
    x, y, z = co.T
    bent = np.stack([x + 0.4 * z * z, 0.6 * y + 0.2 * x, 0.45 * z + 0.15 * x * x], axis=1)
    obj.data.vertices.foreach_set("co", bent.ravel())
    obj.data.update()
    return obj


def mesh_arrays(obj: bpy.types.Object) -> tuple[np.ndarray, list[tuple[int, ...]], np.ndarray]:
    """World vertices, polygons, and triangles of an object."""
    mw = np.array(obj.matrix_world)
    co = np.array([v.co for v in obj.data.vertices]) @ mw[:3, :3].T + mw[:3, 3]
    polygons = [tuple(p.vertices) for p in obj.data.polygons]
    triangles = np.array([(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)])
    return co, polygons, triangles


def random_pose(rng: np.random.Generator, distance: tuple[float, float] = (2.2, 3.0)) -> Pose:
    theta = rng.uniform(0.2, math.pi) * rng.choice([-1.0, 1.0])
    return Pose(
        float(rng.uniform(-math.pi, math.pi)),
        float(rng.uniform(-1.3, 1.3)),
        float(theta),
        float(rng.uniform(*distance)),
    )


def cv_points(uv: np.ndarray) -> np.ndarray:
    """pose-convention.md pixels to OpenCV's integer coordinates with 4 fractional bits."""
    return np.round((uv - 0.5) * 16).astype(np.int32)


def silhouette(verts: np.ndarray, triangles: np.ndarray, pose: Pose, intr: Intrinsics) -> np.ndarray:
    """The projected mesh filled with cv2.fillPoly (bool, H x W)."""
    uv, depth = project(verts, *extrinsics(pose), intr)
    assert (depth > 0).all()
    mask = np.zeros((intr.height, intr.width), np.uint8)
    for triangle in cv_points(uv)[triangles]:  # one call each: fillPoly XORs overlapping polygons
        cv2.fillPoly(mask, [triangle], 1, lineType=cv2.LINE_8, shift=4)
    return mask > 0


def exact_silhouette(verts: np.ndarray, triangles: np.ndarray, pose: Pose, intr: Intrinsics) -> np.ndarray:
    """Pixels whose centre lies in a projected triangle: what a renderer sampling pixel centres sees."""
    uv, _ = project(verts, *extrinsics(pose), intr)
    jj, ii = np.mgrid[0 : intr.height, 0 : intr.width]
    p = np.stack([ii.ravel() + 0.5, jj.ravel() + 0.5], axis=1)
    inside = np.zeros(len(p), bool)
    for a, b, c in uv[triangles]:
        d1 = (b[0] - a[0]) * (p[:, 1] - a[1]) - (b[1] - a[1]) * (p[:, 0] - a[0])
        d2 = (c[0] - b[0]) * (p[:, 1] - b[1]) - (c[1] - b[1]) * (p[:, 0] - b[0])
        d3 = (a[0] - c[0]) * (p[:, 1] - c[1]) - (a[1] - c[1]) * (p[:, 0] - c[0])
        inside |= ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))
    return inside.reshape(intr.height, intr.width)


def outline(mask: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0


def near(image: np.ndarray) -> np.ndarray:
    """Pixels within 2 px of a set pixel."""
    return cv2.dilate(image.astype(np.uint8), KERNEL_2PX) > 0


def convex_edges(verts, polygons, pose: Pose, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Drawings of the visible and of the hidden edges of a convex polyhedron seen from `pose`.

    An edge of a convex body is visible iff one of its two faces faces the camera.
    """
    R, C = extrinsics(pose)
    uv, _ = project(verts, R, C, intr)
    centroid = verts.mean(axis=0)
    facing: dict[tuple[int, int], bool] = {}
    for poly in polygons:
        pts = verts[list(poly)]
        normal = np.cross(pts[1] - pts[0], pts[2] - pts[0])
        normal *= np.sign(normal @ (pts.mean(axis=0) - centroid))  # outwards, whatever the winding
        front = bool(normal @ (C - pts.mean(axis=0)) > 0)
        for a, b in zip(poly, poly[1:] + poly[:1], strict=True):
            key = (min(a, b), max(a, b))
            facing[key] = facing.get(key, False) or front
    visible = np.zeros((intr.height, intr.width), np.uint8)
    hidden = np.zeros_like(visible)
    pts = cv_points(uv)
    for (a, b), front in facing.items():
        cv2.line(visible if front else hidden, tuple(pts[a]), tuple(pts[b]), 1, 1, cv2.LINE_8, shift=4)
    return visible > 0, hidden > 0


@pytest.mark.parametrize("shape", ["box", "tetra"])
def test_freestyle_draws_the_visible_edges_only(scene, shape):
    verts, faces = (BOX_VERTS, BOX_FACES) if shape == "box" else (TETRA_VERTS, TETRA_FACES)
    obj = add_mesh(scene, shape, verts, faces)
    co, polygons, _ = mesh_arrays(obj)
    rng = np.random.default_rng(3)
    hidden_tested = 0
    with SceneRenderer(scene, [obj], INTR, "freestyle") as renderer:
        for _ in range(4):
            pose = random_pose(rng)
            lines = renderer.render(pose)
            assert lines.shape == (72, 96) and lines.dtype == np.uint8
            assert set(np.unique(lines)) <= {0, 255}
            lit = lines > 0
            visible, hidden = convex_edges(co, polygons, pose, INTR)
            assert lit.sum() > 50
            assert (lit & ~near(visible)).sum() <= 0.02 * lit.sum()  # nothing but visible edges
            assert (visible & near(lit)).sum() >= 0.95 * visible.sum()  # all of them drawn
            hidden_only = hidden & ~near(near(visible))  # hidden edges 4 px away from visible ones
            hidden_tested += int(hidden_only.sum())
            assert not (lit & hidden_only).any()
    assert hidden_tested > 20  # the poses did have hidden edges to leave out


def test_freestyle_lines_follow_the_silhouette(scene):
    obj = add_blob(scene)
    co, _, triangles = mesh_arrays(obj)
    rng = np.random.default_rng(5)
    with SceneRenderer(scene, [obj], INTR, "freestyle") as renderer:
        for _ in range(4):
            pose = random_pose(rng)
            lit = renderer.render(pose) > 0
            edge = outline(silhouette(co, triangles, pose, INTR))
            assert lit.sum() > 50
            assert (lit & near(edge)).sum() >= 0.9 * lit.sum()
            assert (edge & near(lit)).sum() >= 0.9 * edge.sum()


def test_freestyle_check_sees_hidden_lines(scene):
    """The visibility check can fail: with the line set's visibility off, hidden edges appear."""
    obj = add_mesh(scene, "box", BOX_VERTS, BOX_FACES)
    co, polygons, _ = mesh_arrays(obj)
    pose = Pose(0.5, 0.5, 0.3, 2.4)
    with SceneRenderer(scene, [obj], INTR, "freestyle") as renderer:
        visible, hidden = convex_edges(co, polygons, pose, INTR)
        hidden_only = hidden & ~near(near(visible))
        assert not (renderer.render(pose) > 0)[hidden_only].any()
        scene.view_layers[0].freestyle_settings.linesets["DST3D Lines"].select_by_visibility = False
        assert (renderer.render(pose) > 0)[hidden_only].sum() > 0.5 * hidden_only.sum()


#: Debian's Blender 3.4 is built without OpenImageDenoise.
HAS_DENOISER = has_denoiser()
needs_denoiser = pytest.mark.skipif(not HAS_DENOISER, reason="this Blender has no OpenImageDenoise")


@pytest.mark.parametrize("denoise", [False, pytest.param(True, marks=needs_denoiser)])
def test_shaded_render_covers_the_projected_mesh(scene, denoise):
    box = add_mesh(scene, "box", BOX_VERTS, BOX_FACES)
    blob = add_blob(scene)
    rng = np.random.default_rng(9 + denoise)
    for obj in (box, blob):
        others = [o for o in (box, blob) if o is not obj]
        co, _, triangles = mesh_arrays(obj)
        with SceneRenderer(scene, [obj], INTR, "shaded", samples=2, denoise=denoise) as renderer:
            for _ in range(3):
                pose = random_pose(rng)
                image = renderer.render(pose)
                assert image.shape == (72, 96, 3) and image.dtype == np.uint8
                seen = image.max(axis=2) > 3
                truth = exact_silhouette(co, triangles, pose, INTR)
                iou = (seen & truth).sum() / (seen | truth).sum()
                assert iou >= 0.99, f"{obj.name} {pose}: IoU {iou:.3f}"
        assert all(not o.hide_render for o in others)  # close() shows the other object again


def test_renders_are_deterministic(scene):
    """The same view gives the same pixels, whatever came before and however many threads."""
    obj = add_mesh(scene, "tetra", TETRA_VERTS, TETRA_FACES)
    pose = Pose(2.0, -0.4, -1.0, 2.3)
    for mode in ("freestyle", "shaded"):
        with SceneRenderer(scene, [obj], INTR, mode, samples=4, threads=1, denoise=HAS_DENOISER) as renderer:
            first = renderer.render(pose)
            assert first.any()
            renderer.render(Pose(0.0, 0.2, 0.5, 2.5))
            np.testing.assert_array_equal(renderer.render(pose), first)
        assert scene.render.threads_mode == "FIXED" and scene.render.threads == 1
        with SceneRenderer(scene, [obj], INTR, mode, samples=4, threads=2, denoise=HAS_DENOISER) as renderer:
            np.testing.assert_array_equal(renderer.render(pose), first)


def test_camera_lighting_lights_the_underside(scene):
    """3D-DST's light is fixed above the object; lighting='camera' carries it with the camera."""
    obj = add_mesh(scene, "box", BOX_VERTS, BOX_FACES)
    below = Pose(0.3, -1.2, 0.2, 2.4)
    above = Pose(0.3, 1.2, 0.2, 2.4)
    means = {}
    for lighting in ("dst3d", "camera"):
        with SceneRenderer(scene, [obj], INTR, "shaded", samples=2, denoise=False, lighting=lighting) as r:
            for name, pose in (("below", below), ("above", above)):
                image = r.render(pose)
                means[lighting, name] = image[image.max(axis=2) > 3].mean()
    assert means["dst3d", "above"] > 2 * means["dst3d", "below"]  # the paper's look: dim from below
    assert means["camera", "below"] > 1.5 * means["dst3d", "below"]
    assert means["camera", "below"] == pytest.approx(means["camera", "above"], rel=0.15)


def test_line_width_scales_with_the_image():
    assert line_width(Intrinsics.from_lens(512, 512)) == pytest.approx(1.25)
    assert line_width(Intrinsics.from_lens(1024, 768)) == pytest.approx(2.5)
    assert line_width(Intrinsics.from_lens(96, 72)) == 1.0  # never thinner than a pixel


def test_freestyle_lines_thicken_with_resolution(scene):
    obj = add_mesh(scene, "box", BOX_VERTS, BOX_FACES)
    pose = Pose(0.5, 0.5, 0.3, 2.4)
    counts = {}
    for width in (128, 512):
        intr = Intrinsics.from_lens(width, width)
        with SceneRenderer(scene, [obj], intr, "freestyle") as renderer:
            counts[width] = int((renderer.render(pose) > 0).sum())
    # Four times the length at 1.25 instead of 1 px wide: about 5 times the pixels.
    assert 4.3 * counts[128] < counts[512] < 6.5 * counts[128]


def test_other_objects_are_hidden_then_restored(scene):
    box = add_mesh(scene, "box", BOX_VERTS, BOX_FACES)
    tetra = add_mesh(scene, "tetra", TETRA_VERTS, TETRA_FACES)
    tetra.location = (0.0, 0.0, 5.0)
    renderer = SceneRenderer(scene, [box], INTR, "freestyle")
    assert tetra.hide_render and not box.hide_render
    renderer.close()
    renderer.close()  # twice is fine
    assert not tetra.hide_render
    with pytest.raises(SceneRenderError, match="close"):
        renderer.render(Pose(0.0, 0.0, 0.0, 3.0))


def test_a_renderer_shows_its_objects_again(scene):
    """A model hidden by an earlier, unclosed renderer is rendered by its own renderer."""
    box = add_mesh(scene, "box", BOX_VERTS, BOX_FACES)
    tetra = add_mesh(scene, "tetra", TETRA_VERTS, TETRA_FACES)
    first = SceneRenderer(scene, [box], INTR, "freestyle")
    assert tetra.hide_render
    with SceneRenderer(scene, [tetra], INTR, "freestyle") as second:
        assert box.hide_render and not tetra.hide_render
        assert (second.render(Pose(0.5, 0.5, 0.3, 2.4)) > 0).sum() > 50
        # The scene is set up for `second` now: `first` would render with the wrong settings.
        with pytest.raises(SceneRenderError, match="another SceneRenderer"):
            first.render(Pose(0.5, 0.5, 0.3, 2.4))
    first.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "pencil"}, "render mode 'pencil'"),
        ({"mode": "shaded", "samples": 0}, "samples 0"),
        ({"mode": "shaded", "lighting": "studio"}, "lighting 'studio'"),
        ({"mode": "shaded", "threads": 0}, "threads 0"),
    ],
)
def test_bad_options_are_refused_in_one_line(scene, kwargs, message):
    obj = add_mesh(scene, "box", BOX_VERTS, BOX_FACES)
    with pytest.raises(SceneRenderError, match=message) as info:
        SceneRenderer(scene, [obj], INTR, **kwargs)
    assert isinstance(info.value, Dst3dError) and "\n" not in str(info.value)


def test_no_objects_refused(scene):
    with pytest.raises(SceneRenderError, match="no objects"):
        SceneRenderer(scene, [], INTR, "freestyle")


@pytest.mark.skipif(HAS_DENOISER, reason="this Blender has OpenImageDenoise")
def test_a_blender_without_denoiser_says_so(scene):
    obj = add_mesh(scene, "tetra", TETRA_VERTS, TETRA_FACES)
    with pytest.raises(SceneRenderError, match="without OpenImageDenoise"):
        SceneRenderer(scene, [obj], INTR, "shaded", samples=2, denoise=True)
