"""Control images: geometry edges on a cube, a sphere, occluding and hinged planes; the shaded
render; 3D-DST's Canny recipe."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from dst3d_addon.core.camera import Intrinsics, Pose, extrinsics, project
from dst3d_addon.core.control import (
    ControlError,
    canny,
    geometry_edges,
    geometry_image,
    mask_image,
    shaded_image,
)
from dst3d_addon.core.raster import rasterize

from .test_raster import cube, looking_down, quad, uv_sphere

INTR = Intrinsics(160, 120, 150.0, (78.0, 62.0))
CUBE_POSE = Pose(0.6, 0.45, 0.3, 3.0)

#: The cube's quads as vertex ids (vertex i = 4x + 2y + z, as in test_raster.cube).
CUBE_QUADS = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def distance_to_edges(edges: np.ndarray) -> np.ndarray:
    """Distance (px) from every pixel to the nearest edge pixel."""
    return cv2.distanceTransform((edges == 0).astype(np.uint8), cv2.DIST_L2, 5)


def cube_view():
    V, F = cube(1.0)
    R, C = extrinsics(CUBE_POSE)
    visible = []
    for q in CUBE_QUADS:
        centre = V[list(q)].mean(0)
        if centre @ (C - centre) > 0:  # outward normal of a centred cube = its face centre
            visible.append(q)
    return V, F, R, C, visible


def test_cube_edges_cover_every_visible_edge_and_leave_faces_clean():
    V, F, R, C, visible = cube_view()
    assert len(visible) == 3
    r = rasterize(V, F, R, C, INTR)
    edges = geometry_edges(r)
    assert edges.dtype == np.uint8 and set(np.unique(edges)) <= {0, 255}
    dist = distance_to_edges(edges)
    uv, _ = project(V, R, C, INTR)
    total_length = 0.0
    seen = set()
    for q in visible:
        for a, b in zip(q, q[1:] + q[:1], strict=True):
            if (b, a) in seen:
                continue
            seen.add((a, b))
            total_length += np.linalg.norm(uv[b] - uv[a])
            for t in np.linspace(0.05, 0.95, 25):
                u, v = uv[a] + t * (uv[b] - uv[a])
                assert dist[int(v), int(u)] <= 1.5, f"edge {a}-{b} missing at t={t:.2f}"
        # The interior of each visible face (3 px in from its outline) has no line pixel.
        poly = np.zeros(edges.shape, np.uint8)
        cv2.fillConvexPoly(poly, np.round(uv[list(q)] - 0.5).astype(np.int32), 1)
        inner = cv2.erode(poly, np.ones((7, 7), np.uint8)).astype(bool)
        assert inner.sum() > 100
        assert not edges[inner].any()
    assert len(seen) == 9  # 6 silhouette edges + 3 creases
    # Lines about one pixel wide: not many more pixels than the drawn length.
    assert (edges > 0).sum() < 1.6 * total_length


def test_fine_sphere_has_a_silhouette_and_no_interior_lines():
    V, F, N = uv_sphere(48, 96, 0.5)
    R, C = extrinsics(Pose(0.3, 0.5, -0.4, 2.2))
    for normals in (None, N):
        r = rasterize(V, F, R, C, INTR, vertex_normals=normals)
        edges = geometry_edges(r) > 0
        mask = r.mask.astype(np.uint8)
        interior = cv2.erode(mask, np.ones((7, 7), np.uint8)).astype(bool)
        assert interior.sum() > 2000
        assert edges[interior].sum() <= 2
        rim = mask.astype(bool) & ~cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
        dist = distance_to_edges(edges.astype(np.uint8))
        assert (dist[rim] <= 1.0).all()


def test_coarse_facets_above_the_crease_angle_do_show():
    """An 8-sided prism: neighbouring sides meet at 45 deg, so its side creases are drawn."""
    k = 8
    ang = np.arange(k) * 2 * math.pi / k + math.pi / k
    ring = np.stack([0.5 * np.cos(ang), 0.5 * np.sin(ang)], 1)
    V = np.vstack([np.c_[ring, np.full(k, -0.5)], np.c_[ring, np.full(k, 0.5)]])
    F = np.array(
        [t for i in range(k) for t in ((i, (i + 1) % k, k + (i + 1) % k), (i, k + (i + 1) % k, k + i))]
    )
    R, C = extrinsics(Pose(0.0, 0.0, 0.0, 3.0))  # from the front, axis vertical
    r = rasterize(V, F, R, C, INTR)
    edges = geometry_edges(r) > 0
    uv, _ = project(V, R, C, INTR)
    dist = distance_to_edges(edges.astype(np.uint8))
    # The vertical crease between the two sides facing the camera: vertices at angle 270 +- 22.5.
    front = [i for i in range(k) if abs(math.sin(ang[i]) + 1) < 0.5]
    for i in front:
        for t in np.linspace(0.1, 0.9, 9):
            u, v = uv[i] + t * (uv[i + k] - uv[i])
            assert dist[int(v), int(u)] <= 1.5


def hinge(angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Two 1 x 2 panels meeting along the Y axis, their normals `angle_deg` apart (a roof)."""
    h = math.radians(angle_deg) / 2
    x, z = math.cos(h), math.sin(h)
    V = np.array([[-x, -1, -z], [0, -1, 0], [0, 1, 0], [-x, 1, -z], [x, -1, -z], [x, 1, -z]])
    F = np.array([[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 2]])
    return V, F


@pytest.mark.parametrize(("angle", "drawn"), [(15.0, False), (25.0, False), (40.0, True), (90.0, True)])
def test_crease_threshold(angle, drawn):
    V, F = hinge(angle)
    R, C = looking_down(4.0)
    intr = Intrinsics(100, 80, 100.0, (50.0, 40.0))
    r = rasterize(V, F, R, C, intr)
    edges = geometry_edges(r, crease_deg=30.0) > 0
    interior = cv2.erode(r.mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    ridge = np.zeros_like(interior)
    ridge[:, 48:53] = True  # the hinge projects onto column 50
    # Either a full line along the ridge or nothing at all, and nothing elsewhere inside.
    rows = interior.any(axis=1)
    assert rows.sum() > 40
    assert (edges & ridge)[rows].any(axis=1).all() == drawn
    assert (edges & ridge & interior).any() == drawn
    assert not (edges & interior & ~ridge).any()


def test_occlusion_between_parallel_faces_is_drawn_small_steps_are_not():
    R, C = looking_down(3.0)
    intr = Intrinsics(120, 100, 100.0, (60.0, 50.0))
    back, fb = quad([[-1.5, -1.2, 0], [1.5, -1.2, 0], [1.5, 1.2, 0], [-1.5, 1.2, 0]])
    # A pixel at depth ~2.7 spans 0.027 units: 0.3 is a step of ~11 px, 0.01 one of ~0.4 px.
    for gap, drawn in ((0.3, True), (0.01, False)):
        front, ff = quad([[-0.5, -0.4, gap], [0.5, -0.4, gap], [0.5, 0.4, gap], [-0.5, 0.4, gap]])
        r = rasterize(np.vstack([back, front]), np.vstack([fb, ff + 4]), R, C, intr)
        edges = geometry_edges(r) > 0
        uv, _ = project(front, R, C, intr)
        (u0, v0), (u1, v1) = uv.min(0), uv.max(0)
        box = np.zeros_like(edges)
        box[int(v0) - 1 : int(v1) + 2, int(u0) - 1 : int(u1) + 2] = True
        inner = np.zeros_like(edges)
        inner[int(v0) + 3 : int(v1) - 3, int(u0) + 3 : int(u1) - 3] = True
        outline = box & ~inner
        assert not edges[inner].any()
        assert (edges[outline].sum() > 0.9 * 2 * ((u1 - u0) + (v1 - v0))) == drawn
        # The outer silhouette of the back plane is always there.
        assert edges[0].sum() == 0 and edges[r.mask.any(1).argmax()].sum() > 50


def test_geometry_image_encodes_face_normals():
    V, F, R, C, _ = cube_view()
    r = rasterize(V, F, R, C, INTR)
    g = geometry_image(r)
    assert g.shape == (120, 160, 3) and g.dtype == np.uint8
    assert (g[~r.mask] == 0).all()
    # Three faces, three colours, each a strong step from the others.
    colours = {tuple(c) for c in g[r.mask]}
    assert len(colours) == 3
    cs = np.array(sorted(colours), float)
    assert min(np.abs(a - b).sum() for i, a in enumerate(cs) for b in cs[i + 1 :]) > 60
    np.testing.assert_allclose(g[r.mask] / 127.5 - 1, r.face_normals[r.mask], atol=0.01)


def test_edges_are_deterministic_and_thresholds_validated():
    V, F, N = uv_sphere(12, 24, 0.5)
    R, C = extrinsics(Pose(0.2, 0.3, 0.4, 2.0))
    a = geometry_edges(rasterize(V, F, R, C, INTR, N))
    b = geometry_edges(rasterize(V, F, R, C, INTR, N))
    assert a.tobytes() == b.tobytes()
    r = rasterize(V, F, R, C, INTR)
    for bad in ({"crease_deg": 0.0}, {"crease_deg": 180.0}, {"gap_px": 0.0}):
        with pytest.raises(ControlError):
            geometry_edges(r, **bad)


def test_shaded_render_is_readable():
    V, F, R, C, _ = cube_view()
    r = rasterize(V, F, R, C, INTR)
    img = shaded_image(r)
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    grey = img[..., 0]
    assert (grey[~r.mask] == 0).all()
    assert grey[r.mask].min() >= 60  # far above the black background
    levels = sorted({int(g) for g in grey[r.mask]})
    assert len(levels) == 3 and min(np.diff(levels)) >= 10  # the three faces are told apart
    assert shaded_image(r, background=128)[~r.mask].min() == 128
    assert shaded_image(r).tobytes() == img.tobytes()


def test_canny_recipe_on_the_shaded_render_finds_the_silhouette():
    V, F, R, C, _ = cube_view()
    r = rasterize(V, F, R, C, INTR)
    img = shaded_image(r)
    edges = canny(img)
    np.testing.assert_array_equal(edges, cv2.Canny(img, 100, 200))
    np.testing.assert_array_equal(edges, canny(img[..., 0]))  # grey: colour == gray
    mask = r.mask.astype(np.uint8)
    rim = r.mask & ~cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
    assert (distance_to_edges(edges)[rim] <= 1.5).mean() > 0.98


def test_empty_view_gives_black_images():
    V, F = cube(1.0, (0.0, 0.0, 10.0))  # behind the camera
    r = rasterize(V, F, *looking_down(2.0), INTR)
    assert not r.mask.any()
    assert not geometry_edges(r).any()
    assert not shaded_image(r).any()
    assert not geometry_image(r).any()


def test_flat_shading_option():
    V, F, N = uv_sphere(12, 24, 0.5)
    R, C = extrinsics(Pose(0.2, 0.3, 0.4, 2.0))
    r = rasterize(V, F, R, C, INTR, N)
    smooth, flat = shaded_image(r)[..., 0], shaded_image(r, smooth=False)[..., 0]
    # Flat shading is constant per face, smooth shading is not.
    fi = r.face_index[r.mask]
    one = fi == np.bincount(fi).argmax()
    assert len(np.unique(flat[r.mask][one])) == 1
    assert (smooth[r.mask] != flat[r.mask]).mean() > 0.5


def test_canny_rejects_wrong_images():
    with pytest.raises(ControlError):
        canny(np.zeros((8, 8), np.float32))
    with pytest.raises(ControlError):
        canny(np.zeros((8, 8, 4), np.uint8))


def test_mask_image():
    m = np.zeros((4, 5), bool)
    m[1:3, 2:4] = True
    img = mask_image(m)
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img, m * 255)
