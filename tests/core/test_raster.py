"""The numpy rasteriser against independent references: brute-force point-in-triangle, cv2.fillPoly,
analytic planes and spheres."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from dst3d_addon.core.camera import Intrinsics, Pose, extrinsics, project
from dst3d_addon.core.raster import (
    Raster,
    RasterError,
    _scan,
    is_truncated,
    mask_bbox,
    rasterize,
)

# ---------------------------------------------------------------------------------------------
# Meshes and cameras shared with test_control.py


def cube(size: float = 1.0, centre=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned cube, 8 vertices, 12 outward-wound triangles; vertex i = 4x + 2y + z."""
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = [t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))]
    return v * size + np.asarray(centre, dtype=float), np.array(f)


def uv_sphere(
    n_lat: int, n_lon: int, radius: float = 0.5, centre=(0.0, 0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A UV sphere: (vertices, faces, exact unit normals)."""
    th = np.linspace(0.0, math.pi, n_lat + 1)[1:-1]
    ph = np.linspace(0.0, 2 * math.pi, n_lon, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    ring = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
    n = np.vstack([[0.0, 0.0, 1.0], ring, [0.0, 0.0, -1.0]])
    last = len(n) - 1
    i = np.arange(n_lat - 2)[:, None]
    j = np.arange(n_lon)[None, :]
    a = 1 + i * n_lon + j
    b = 1 + i * n_lon + (j + 1) % n_lon
    c, d = a + n_lon, b + n_lon
    body = np.concatenate([np.stack([a, c, d], -1).reshape(-1, 3), np.stack([a, d, b], -1).reshape(-1, 3)])
    top = np.stack([np.zeros(n_lon, int), a[0], b[0]], -1)
    bottom = np.stack([np.full(n_lon, last), d[-1], c[-1]], -1)
    return n * radius + np.asarray(centre, dtype=float), np.concatenate([top, body, bottom]), n


def quad(corners) -> tuple[np.ndarray, np.ndarray]:
    """Two triangles spanning four corners given in order."""
    return np.asarray(corners, dtype=float), np.array([[0, 1, 2], [0, 2, 3]])


def looking_down(distance: float) -> tuple[np.ndarray, np.ndarray]:
    """A camera on +Z looking down at the XY plane (object +X right, +Y up on screen)."""
    return np.eye(3), np.array([0.0, 0.0, distance])


def pixel_rays(intrinsics: Intrinsics) -> np.ndarray:
    """Camera-frame rays through every pixel centre, scaled to depth 1: (H, W, 3)."""
    W, H = intrinsics.width, intrinsics.height
    px, py = intrinsics.principal
    u = (np.arange(W) + 0.5 - px) / intrinsics.viewport
    v = (py - np.arange(H) - 0.5) / intrinsics.viewport
    U, Vv = np.meshgrid(u, v)
    return np.stack([U, Vv, -np.ones_like(U)], -1)


def random_pose(rng: np.random.Generator, distance: float) -> Pose:
    """A pose with every angle random, theta included (never 0)."""
    theta = rng.uniform(0.2, 1.2) * rng.choice([-1.0, 1.0])
    return Pose(rng.uniform(-math.pi, math.pi), rng.uniform(-1.2, 1.2), theta, distance)


# ---------------------------------------------------------------------------------------------
# Independent references


def brute_force(V, F, R, C, intrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel and per triangle: strict inside test of the pixel centre in screen space, and the
    exact ray-plane depth. Returns (covered, nearest depth, nearest face)."""
    uv, _ = project(V, R, C, intrinsics)
    W, H = intrinsics.width, intrinsics.height
    cu, cv = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rays = pixel_rays(intrinsics)
    pc = (V - C) @ R.T
    best = np.full((H, W), np.inf)
    face = np.full((H, W), -1)
    for t, (a, b, c) in enumerate(F):
        pa, pb, pc_ = uv[a], uv[b], uv[c]

        def edge(p, q):
            return (q[0] - p[0]) * (cv - p[1]) - (q[1] - p[1]) * (cu - p[0])

        e = np.stack([edge(pa, pb), edge(pb, pc_), edge(pc_, pa)])
        inside = (e > 0).all(0) | (e < 0).all(0)
        n = np.cross(pc[b] - pc[a], pc[c] - pc[a])
        depth = (n @ pc[a]) / (rays @ n)
        closer = inside & (depth < best)
        best[closer] = depth[closer]
        face[closer] = t
    return face >= 0, best, face


def fill_poly_mask(V, F, R, C, intrinsics, factor: int = 5) -> np.ndarray:
    """OpenCV's polygon fill of every projected triangle, at `factor` x the resolution, sampled
    at the sub-pixels holding the pixel centres (OpenCV fills boundary pixels too, so the
    supersampling shrinks its over-coverage to a fraction of a pixel)."""
    uv, _ = project(V, R, C, intrinsics)
    shift = 8
    pts = np.round((uv * factor - 0.5) * (1 << shift)).astype(np.int32)
    out = np.zeros((intrinsics.height * factor, intrinsics.width * factor), np.uint8)
    for f in F:  # one at a time: fillPoly of a polygon list would XOR the overlaps
        cv2.fillConvexPoly(out, pts[f], 1, lineType=cv2.LINE_8, shift=shift)
    half = factor // 2
    return out[half::factor, half::factor].astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# ---------------------------------------------------------------------------------------------
# Coverage


def test_coverage_matches_fill_poly_on_random_poses_non_square():
    rng = np.random.default_rng(7)
    intr = Intrinsics(200, 136, 150.0, (104.0, 64.0))
    cv_, cf = cube(0.7, (0.1, -0.05, 0.0))
    sv, sf, _ = uv_sphere(10, 16, 0.4, (-0.1, 0.2, 0.1))
    V = np.vstack([cv_, sv])
    F = np.vstack([cf, sf + len(cv_)])
    for _ in range(6):
        R, C = extrinsics(random_pose(rng, 2.2))
        r = rasterize(V, F, R, C, intr)
        ref = fill_poly_mask(V, F, R, C, intr)
        assert r.mask.sum() > 2000
        assert iou(r.mask, ref) >= 0.99


def test_matches_brute_force_exactly():
    """Mask and nearest face equal a per-pixel point-in-triangle test; depth equals ray-plane."""
    rng = np.random.default_rng(3)
    intr = Intrinsics(72, 52, 60.0, (35.0, 27.5))
    cv_, cf = cube(0.6, (0.15, 0.0, 0.0))
    sv, sf, _ = uv_sphere(6, 8, 0.35, (-0.2, 0.1, 0.15))
    V = np.vstack([cv_, sv])
    F = np.vstack([cf, sf + len(cv_)])
    for _ in range(4):
        R, C = extrinsics(random_pose(rng, 2.0))
        r = rasterize(V, F, R, C, intr)
        covered, depth, face = brute_force(V, F, R, C, intr)
        np.testing.assert_array_equal(r.mask, covered)
        np.testing.assert_allclose(r.depth[covered], depth[covered], rtol=1e-6)
        assert np.isinf(r.depth[~covered]).all()
        # Faces agree except where two faces meet at the same depth (shared edges of the tessellation).
        agree = r.face_index[covered] == face[covered]
        assert agree.mean() > 0.99
        assert (r.face_index[~covered] == -1).all()


def _fragment_count(tri_uv: np.ndarray, W: int, H: int) -> np.ndarray:
    """How many fragments each pixel gets from screen triangles (T, 3, 2)."""
    _, s_row, s_col, s_len = _scan(
        [tri_uv[:, c, 0] for c in range(3)], [tri_uv[:, c, 1] for c in range(3)], W, H
    )
    count = np.zeros((H, W), int)
    for r_, c_, n_ in zip(s_row, s_col, s_len, strict=True):
        count[r_, c_ : c_ + n_] += 1
    return count


def _grid_mesh(xs, ys, jitter, rng) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle tessellated on a grid, interior vertices moved by `jitter`, random windings."""
    gx, gy = np.meshgrid(xs, ys)
    interior = (gx > xs[0]) & (gx < xs[-1]) & (gy > ys[0]) & (gy < ys[-1])
    gx = gx + interior * rng.choice(jitter, gx.shape)
    gy = gy + interior * rng.choice(jitter, gy.shape)
    nx = len(xs)
    faces = []
    for i in range(len(ys) - 1):
        for j in range(nx - 1):
            a, b = i * nx + j, i * nx + j + 1
            c, d = a + nx, b + nx
            for t in [(a, b, d), (a, d, c)] if rng.random() < 0.5 else [(a, b, c), (b, d, c)]:
                faces.append(t if rng.random() < 0.5 else t[::-1])
    return np.stack([gx.ravel(), gy.ravel()], 1), np.array(faces)


@pytest.mark.parametrize(
    ("xs", "ys", "jitter"),
    [
        # Vertices on pixel centres and pixel corners, edges through centres in every direction.
        ([2.5, 5.0, 7.5, 9.5, 12.25, 15.5, 18.5], [3.5, 6.0, 6.5, 10.5, 13.5], [0.0, 0.5, 0.37]),
        # Every vertex on a pixel centre: edges with slopes like 7/3 cross centres mid-edge, where
        # the crossing is not exact in floating point and must be computed the same way twice.
        (np.arange(1.5, 62.0, 6.0), np.arange(2.5, 47.0, 7.0), [-2.0, -1.0, 0.0, 1.0, 2.0]),
    ],
)
def test_shared_edges_leave_no_holes_and_no_double_coverage(xs, ys, jitter):
    """Count the fragments of a tessellated rectangle: exactly one per pixel centre inside it
    (left and top borders inclusive, right and bottom exclusive), none outside."""
    rng = np.random.default_rng(1)
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    W, H = int(xs[-1]) + 3, int(ys[-1]) + 3
    for _ in range(3):
        pts, F = _grid_mesh(xs, ys, jitter, rng)
        count = _fragment_count(pts[F], W, H)  # screen coordinates directly
        cu, cv = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
        expected = (cu >= xs[0]) & (cu < xs[-1]) & (cv >= ys[0]) & (cv < ys[-1])
        np.testing.assert_array_equal(count, expected.astype(int))


@pytest.mark.parametrize("flip", [False, True])
def test_shared_edge_whose_crossing_is_inexact_in_floating_point(flip):
    """Edge A-B passes exactly through the pixel centre (27.5, 9.5), but walked from A or from B
    the crossing rounds to different pixels. For one triangle A-B is its long edge, for the other
    a short one; the pixel must still be drawn exactly once."""
    a, b = (36.5, 2.5), (0.5, 30.5)
    s = (b[0] - a[0]) / (b[1] - a[1])
    assert math.ceil(a[0] + (9.5 - a[1]) * s - 0.5) != math.ceil(b[0] + (9.5 - b[1]) * s - 0.5)
    left, below = (5.5, 9.5), (40.5, 34.5)
    tris = np.array([[a, b, left], [b, a, below]] if not flip else [[left, a, b], [below, b, a]])
    count = _fragment_count(tris, 64, 40)
    assert count.max() == 1
    assert count[9, 27] == 1


def test_shared_edges_through_the_public_api():
    """A plane cut into a fan of thin triangles around a centre on a pixel centre: the mask is
    exactly the polygon's pixel centres, with no hole at the shared vertex or along the spokes."""
    intr = Intrinsics(40, 40, 100.0, (20.0, 20.0))
    R, C = looking_down(100.0)  # one object unit = one pixel at z = 0
    k = 24
    ang = np.linspace(0, 2 * math.pi, k, endpoint=False)
    centre = np.array([0.5, -0.5, 0.0])  # projects onto the pixel centre (20.5, 20.5)
    rim = centre + np.stack([12 * np.cos(ang), 12 * np.sin(ang), np.zeros(k)], 1)
    V = np.vstack([centre, rim])  # spokes at 0, 45, 90 ... deg run through pixel centres
    F = np.array([[0, 1 + i, 1 + (i + 1) % k] for i in range(k)])
    r = rasterize(V, F, R, C, intr)
    covered, _, _ = brute_force(V, F, R, C, intr)
    assert r.mask[20, 20]
    assert iou(r.mask, fill_poly_mask(V, F, R, C, intr)) > 0.98
    # Every pixel strictly inside some triangle is drawn; the only extra ones lie on spokes.
    assert (covered <= r.mask).all()
    assert r.mask.sum() - covered.sum() <= 2 * k


# ---------------------------------------------------------------------------------------------
# Depth, occlusion, normals


def test_plane_facing_the_camera_has_the_analytic_depth():
    intr = Intrinsics(64, 48, 80.0, (32.0, 24.0))
    R, C = looking_down(3.0)
    V, F = quad([[-1, -1, 0.5], [1, -1, 0.5], [1, 1, 0.5], [-1, 1, 0.5]])
    r = rasterize(V, F, R, C, intr)
    assert r.mask.all()
    np.testing.assert_allclose(r.depth, 2.5, rtol=1e-7)
    np.testing.assert_allclose(r.normals[r.mask], [[0, 0, 1]] * r.mask.sum(), atol=1e-7)


def test_tilted_plane_depth_is_perspective_correct():
    intr = Intrinsics(96, 80, 90.0, (47.0, 41.0))
    R, C = extrinsics(Pose(0.4, 0.3, 0.5, 2.0))
    # A plane through the origin tilted 70 deg away from the camera's axis: strong depth change.
    n = np.array([math.sin(1.2), 0.0, math.cos(1.2)])
    n_cam = R @ n
    t1 = np.cross(n, [0.0, 1.0, 0.0])
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(n, t1)
    V = np.array([s * t1 + q * t2 for s, q in ((-3, -3), (3, -3), (3, 3), (-3, 3))])
    F = np.array([[0, 1, 2], [0, 2, 3]])
    r = rasterize(V, F, R, C, intr)
    rays = pixel_rays(intr)
    o = -R @ C  # the plane's point (object origin) in the camera frame
    analytic = (n_cam @ o) / (rays @ n_cam)
    assert r.mask.sum() > 1000
    np.testing.assert_allclose(r.depth[r.mask], analytic[r.mask], rtol=2e-6)
    assert analytic[r.mask].max() / analytic[r.mask].min() > 1.5


def test_nearer_triangles_occlude_farther_ones_whatever_the_order():
    intr = Intrinsics(50, 40, 50.0, (25.0, 20.0))
    R, C = looking_down(5.0)
    back, fb = quad([[-3, -3, 0], [3, -3, 0], [3, 3, 0], [-3, 3, 0]])
    front, ff = quad([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]])
    for V, F, front_faces in (
        (np.vstack([back, front]), np.vstack([fb, ff + 4]), (2, 3)),
        (np.vstack([front, back]), np.vstack([ff, fb + 4]), (0, 1)),
    ):
        r = rasterize(V, F, R, C, intr)
        # The front square spans +-1 at depth 4: +-12.5 px around the centre.
        cu = np.arange(50) + 0.5 - 25.0
        cv = np.arange(40) + 0.5 - 20.0
        inner = (np.abs(cv)[:, None] < 12.4) & (np.abs(cu)[None, :] < 12.4)
        assert np.isin(r.face_index[inner], front_faces).all()
        np.testing.assert_allclose(r.depth[inner], 4.0, rtol=1e-7)
        outer = (np.abs(cv)[:, None] > 12.6) | (np.abs(cu)[None, :] > 12.6)
        assert not np.isin(r.face_index[outer], front_faces).any()
        np.testing.assert_allclose(r.depth[outer], 5.0, rtol=1e-7)


def test_both_windings_give_the_same_images():
    rng = np.random.default_rng(11)
    intr = Intrinsics(80, 64, 70.0, (40.0, 32.0))
    V, F = cube(0.8)
    flipped = F.copy()
    some = rng.random(len(F)) < 0.5
    flipped[some] = flipped[some][:, ::-1]
    R, C = extrinsics(random_pose(rng, 2.0))
    a = rasterize(V, F, R, C, intr)
    b = rasterize(V, flipped, R, C, intr)
    for name in ("mask", "depth", "normals", "face_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_normals_are_unit_and_face_the_camera():
    rng = np.random.default_rng(5)
    intr = Intrinsics(90, 70, 80.0, (45.0, 35.0))
    V, F = cube(0.8)
    rays = pixel_rays(intr)
    for _ in range(5):
        R, C = extrinsics(random_pose(rng, 2.0))
        r = rasterize(V, F, R, C, intr)
        n = r.normals[r.mask]
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-6)
        # Towards the camera: n . (0 - X) > 0 with X = depth * ray.
        assert ((n * -rays[r.mask]).sum(1) > 0).all()
        # And they are the cube's own face normals, rotated into the camera frame.
        world = n @ R
        assert np.allclose(np.abs(world).max(1), 1.0, atol=1e-6)
        assert (r.normals[~r.mask] == 0).all()


def test_interpolated_vertex_normals_are_perspective_correct():
    """On a facet whose corners lie on a sphere, barycentric interpolation of the exact normals
    gives exactly the radial direction of the surface point: a check of 3D (not screen) weights."""
    intr = Intrinsics(96, 96, 120.0, (48.0, 48.0))
    V, F, N = uv_sphere(12, 24, 0.5)
    R, C = extrinsics(Pose(0.5, 0.4, 0.3, 1.3))
    flat = rasterize(V, F, R, C, intr)
    smooth = rasterize(V, F, R, C, intr, vertex_normals=-N)  # the sign must not matter
    m = smooth.mask
    X = pixel_rays(intr)[m] * smooth.depth[m, None].astype(float)
    radial = X - (-R @ C)
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)

    def worst(n):  # radians; |a - b| rather than arccos, which is blind below ~3e-4 in float32
        return np.linalg.norm(n[m] - radial, axis=1).max()

    assert worst(smooth.normals) < 1e-5
    assert worst(flat.normals) > 0.1  # the facets show without vertex normals
    np.testing.assert_array_equal(smooth.face_normals, flat.face_normals)
    np.testing.assert_array_equal(smooth.depth, flat.depth)


# ---------------------------------------------------------------------------------------------
# Near plane


def test_floor_crossing_the_camera_plane_is_clipped_not_smeared():
    """A floor below a camera looking at the horizon extends far behind the camera."""
    intr = Intrinsics(64, 48, 60.0, (32.0, 24.0))
    R, C = extrinsics(Pose(0.0, 0.0, 0.0, 1.0))  # camera at (0, -1, 0) looking along +Y
    h = 0.5
    V, F = quad([[-50, -50, -h], [50, -50, -h], [50, 50, -h], [-50, 50, -h]])
    r = rasterize(V, F, R, C, intr)
    rows = np.arange(48) + 0.5
    below = rows > 24.0 + 60.0 * h / 51.0 + 0.5  # nearer than the plane's far edge (distance 51)
    assert r.mask[below].all()
    assert not r.mask[rows < 24.0].any()  # nothing above the horizon
    j, i = np.nonzero(r.mask & below[:, None])
    expected = h * 60.0 / (j + 0.5 - 24.0)
    np.testing.assert_allclose(r.depth[j, i], expected, rtol=1e-6)
    assert np.isfinite(r.depth[r.mask]).all()


def ray_cast(V, F, R, C, intrinsics, near) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the nearest ray-triangle hit in 3D (Moller-Trumbore) with depth > near:
    (covered, depth). Independent of projection, so it also holds with vertices behind the camera."""
    rays = pixel_rays(intrinsics)  # depth 1 along each ray
    pc = (V - C) @ R.T
    best = np.full(rays.shape[:2], np.inf)
    for a, b, c in F:
        e1, e2 = pc[b] - pc[a], pc[c] - pc[a]
        p = np.cross(rays, e2)
        det = p @ e1
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = -pc[a]
            bu = (p @ s) * inv
            q = np.cross(s, e1)
            bv = (rays @ q) * inv
            t = (q @ e2) * inv  # the depth, since rays have depth 1
        hit = (bu > 0) & (bv > 0) & (bu + bv < 1) & (t > near) & (np.abs(det) > 0)
        best = np.where(hit & (t < best), t, best)
    return np.isfinite(best), best


def test_camera_among_random_triangles_matches_a_ray_caster():
    """Triangle soup around the camera: many cross the near plane or lie behind it."""
    rng = np.random.default_rng(4)
    intr = Intrinsics(64, 48, 40.0, (31.0, 25.0))
    for _ in range(5):
        centres = rng.uniform(-0.6, 0.6, (20, 1, 3))
        V = (centres + rng.uniform(-0.3, 0.3, (20, 3, 3))).reshape(-1, 3)
        F = np.arange(60).reshape(20, 3)
        R, C = extrinsics(random_pose(rng, 0.2))
        near = 0.05
        r = rasterize(V, F, R, C, intr, near=near)
        covered, depth = ray_cast(V, F, R, C, intr, near)
        assert 0.1 * covered.size < covered.sum() < 0.9 * covered.size
        assert (r.mask != covered).sum() <= 2  # ties on edges only
        both = r.mask & covered
        np.testing.assert_allclose(r.depth[both], depth[both], rtol=2e-7)
        assert (r.depth[r.mask] > near * (1 - 1e-6)).all()
        np.testing.assert_allclose(np.linalg.norm(r.normals[r.mask], axis=1), 1.0, atol=1e-6)


def test_geometry_behind_the_camera_draws_nothing():
    intr = Intrinsics(32, 32, 30.0, (16.0, 16.0))
    R, C = looking_down(1.0)
    V, F = quad([[-1, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]])  # above the camera, behind it
    r = rasterize(V, F, R, C, intr)
    assert not r.mask.any()
    # A cube around the camera: only the faces in front (below) are drawn, none at depth < near.
    V, F = cube(1.0, (0.0, 0.0, 1.0))
    r = rasterize(V, F, R, C, intr, near=0.01)
    assert r.mask.all()
    np.testing.assert_allclose(r.depth[14:18, 14:18], 0.5, rtol=1e-6)
    assert r.depth.min() >= 0.01


def test_triangle_straddling_the_near_plane_keeps_its_front_part():
    intr = Intrinsics(48, 48, 24.0, (24.0, 24.0))
    R, C = looking_down(1.0)
    # A wall at x = 0.3 from z = -3 (in front) to z = 3 (behind the camera).
    V = np.array([[0.3, -1.0, -3.0], [0.3, 1.0, -3.0], [0.3, 0.0, 3.0]])
    F = np.array([[0, 1, 2]])
    r = rasterize(V, F, R, C, intr, near=0.05)
    assert r.mask.any()
    assert r.depth[r.mask].min() >= 0.05 * (1 - 1e-6)
    # Seen edge-on from the side it stays right of the centre column, never wraps to the left.
    assert not r.mask[:, :24].any()


# ---------------------------------------------------------------------------------------------
# Output contract, determinism, errors


def test_output_types_and_background_values():
    intr = Intrinsics(40, 30, 40.0, (20.0, 15.0))
    V, F = cube(0.5)
    R, C = extrinsics(Pose(0.3, 0.3, 0.3, 2.0))
    r = rasterize(V, F, R, C, intr)
    assert isinstance(r, Raster)
    assert r.mask.shape == (30, 40) and r.mask.dtype == bool
    assert r.depth.dtype == np.float32 and np.isinf(r.depth[~r.mask]).all()
    assert r.normals.shape == (30, 40, 3) and r.normals.dtype == np.float32
    assert r.face_index.dtype == np.int32 and (r.face_index[~r.mask] == -1).all()
    assert (r.face_index[r.mask] >= 0).all() and (r.face_index[r.mask] < 12).all()


def test_deterministic_and_independent_of_face_order():
    rng = np.random.default_rng(2)
    intr = Intrinsics(64, 64, 70.0, (32.0, 32.0))
    V, F, N = uv_sphere(12, 20, 0.5)
    R, C = extrinsics(random_pose(rng, 2.0))
    a = rasterize(V, F, R, C, intr, N)
    b = rasterize(V, F, R, C, intr, N)
    for name in ("mask", "depth", "normals", "face_index"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    perm = rng.permutation(len(F))
    c = rasterize(V, F[perm], R, C, intr)
    np.testing.assert_array_equal(c.mask, a.mask)
    np.testing.assert_array_equal(c.depth, a.depth)


def test_empty_and_degenerate_meshes():
    intr = Intrinsics(16, 12, 20.0, (8.0, 6.0))
    R, C = looking_down(2.0)
    r = rasterize(np.zeros((0, 3)), np.zeros((0, 3), int), R, C, intr)
    assert not r.mask.any() and r.mask.shape == (12, 16)
    V = np.array([[0, 0, 0], [1, 1, 0], [2, 2, 0], [0, 0, np.nan]], float)
    r = rasterize(V, np.array([[0, 1, 2], [0, 1, 3]]), R, C, intr)  # collinear, NaN
    assert not r.mask.any()


@pytest.mark.parametrize(
    ("vertices", "faces", "normals"),
    [
        (np.zeros((4, 2)), np.array([[0, 1, 2]]), None),
        (np.zeros((4, 3)), np.array([[0, 1, 4]]), None),
        (np.zeros((4, 3)), np.array([[0.0, 1.0, 2.0]]), None),
        (np.zeros((4, 3)), np.array([[0, 1, 2]]), np.zeros((3, 3))),
    ],
)
def test_malformed_input_raises(vertices, faces, normals):
    R, C = looking_down(2.0)
    with pytest.raises(RasterError):
        rasterize(vertices, faces, R, C, Intrinsics(8, 8, 8.0, (4.0, 4.0)), normals)


# ---------------------------------------------------------------------------------------------
# mask_bbox, is_truncated


def test_mask_bbox_exact():
    m = np.zeros((10, 12), bool)
    assert mask_bbox(m) is None
    m[3, 4] = True
    assert mask_bbox(m) == [4.0, 3.0, 5.0, 4.0]
    m[7, 9] = True
    m[5, 2] = True
    assert mask_bbox(m) == [2.0, 3.0, 10.0, 8.0]
    m[:] = True
    assert mask_bbox(m) == [0.0, 0.0, 12.0, 10.0]


def test_is_truncated_exact():
    m = np.zeros((10, 12), bool)
    assert not is_truncated(m)
    m[1:9, 1:11] = True
    assert not is_truncated(m)
    for sl in ((0, 5), (9, 5), (5, 0), (5, 11)):
        t = m.copy()
        t[sl] = True
        assert is_truncated(t)


def test_bbox_of_a_render_matches_the_projected_box():
    intr = Intrinsics(60, 50, 50.0, (30.0, 25.0))
    R, C = looking_down(4.0)
    V, F = quad([[-1.2, -0.8, 0], [1.2, -0.8, 0], [1.2, 0.8, 0], [-1.2, 0.8, 0]])
    r = rasterize(V, F, R, C, intr)
    # x in [-15, 15] px and y in [-10, 10] px around (30, 25): centres 15.5 .. 44.5, 15.5 .. 34.5.
    assert mask_bbox(r.mask) == [15.0, 15.0, 45.0, 35.0]
    assert not is_truncated(r.mask)
    R, C = looking_down(1.5)
    assert is_truncated(rasterize(V, F, R, C, intr).mask)


def test_drawing_the_faces_in_chunks_gives_the_same_bits():
    """Big meshes are drawn a chunk of faces at a time (bounded memory): nothing may change."""
    rng = np.random.default_rng(9)
    V, F, N = uv_sphere(24, 40)
    soup = (rng.uniform(-0.6, 0.6, (30, 1, 3)) + rng.uniform(-0.3, 0.3, (30, 3, 3))).reshape(-1, 3)
    V = np.concatenate([V, soup])
    F = np.concatenate([F, len(N) + np.arange(90).reshape(30, 3)])
    normals = np.concatenate([N, rng.normal(size=(90, 3))])
    intr = Intrinsics(64, 48, 40.0, (31.0, 25.0))
    for distance in (2.0, 0.4):  # the second puts the camera among the triangles: near clipping
        R, C = extrinsics(random_pose(rng, distance))
        whole = rasterize(V, F, R, C, intr, vertex_normals=normals)
        assert whole.mask.any()
        for chunk in (1, 7, 100):
            part = rasterize(V, F, R, C, intr, vertex_normals=normals, chunk=chunk)
            for name in ("mask", "depth", "normals", "face_index", "face_normals"):
                assert np.array_equal(getattr(whole, name), getattr(part, name)), (distance, chunk, name)
