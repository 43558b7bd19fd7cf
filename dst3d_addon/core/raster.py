"""A numpy rasteriser: mask, depth, normals and face ids of a triangle mesh under pose-convention.md's projection.

Why not Blender's GL engines: the same bytes on every machine (resume compares files), no GL
context on headless nodes, and speed. The algorithm is a vectorised scanline fill:

- vertices go to the camera frame once, with plain elementwise arithmetic (no BLAS), so a vertex
  shared by several triangles has bit-identical coordinates in each of them;
- triangles crossing the near plane (depth <= `near`) are clipped against it, triangles wholly
  behind it are dropped;
- each triangle covers, on every pixel row j whose centre y = j + 0.5 lies in [v_top, v_bottom),
  the pixels whose centre x = i + 0.5 lies in [x_left, x_right). The crossings x are computed from
  each edge's endpoints in a canonical order, so two triangles sharing an edge get the same number
  and split the row there: no holes, no pixel drawn twice (the classic top-left fill rule);
- both windings are drawn (CAD meshes are not always consistently oriented);
- the nearest triangle wins per pixel through one `np.minimum.at` on a 64-bit key
  (float32 depth bits, then the triangle number, so ties go to the lowest face index);
- depth is the exact ray-plane intersection with the face's plane, which is the same as
  interpolating 1/z linearly in screen space (perspective-correct), clamped to the range of the
  triangle's own corner depths so ill-conditioned slivers cannot produce outliers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import Intrinsics

#: Default near plane (object units along the view axis); geometry closer than this is clipped.
DEFAULT_NEAR = 1e-3

_NO_HIT = np.iinfo(np.int64).max
#: Faces drawn at a time: about 60 MB of working memory at 512x512, whatever the mesh size.
FACE_CHUNK = 1 << 17


class RasterError(ValueError):
    """The mesh or camera handed to the rasteriser is malformed (wrong shapes, bad indices)."""


@dataclass
class Raster:
    """Per-pixel render passes of one view (H x W), all in the camera frame of pose-convention.md.

    `depth` is -z_c (object units, +inf on background); `normals` are unit normals turned towards
    the camera (interpolated vertex normals when given, else the faces' own: then the very same
    array as `face_normals`); `face_normals` are always the flat geometric normals (what edge
    detection should use); `face_index` is the original face number (-1 on background).
    """

    mask: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    face_index: np.ndarray
    face_normals: np.ndarray
    intrinsics: Intrinsics

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return self.mask.shape


def _empty(intrinsics: Intrinsics) -> Raster:
    H, W = intrinsics.height, intrinsics.width
    normals = np.zeros((H, W, 3), np.float32)
    return Raster(
        mask=np.zeros((H, W), bool),
        depth=np.full((H, W), np.inf, np.float32),
        normals=normals,
        face_index=np.full((H, W), -1, np.int32),
        face_normals=normals,
        intrinsics=intrinsics,
    )


Vec = tuple[np.ndarray, np.ndarray, np.ndarray]


def _rotate(x: np.ndarray, y: np.ndarray, z: np.ndarray, R: np.ndarray) -> Vec:
    """R @ (x, y, z), written out so the result never depends on a BLAS kernel."""
    return (
        x * R[0, 0] + y * R[0, 1] + z * R[0, 2],
        x * R[1, 0] + y * R[1, 1] + z * R[1, 2],
        x * R[2, 0] + y * R[2, 1] + z * R[2, 2],
    )


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _dot(a: Vec, b: Vec) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _take(a: Vec, index: np.ndarray) -> Vec:
    return (a[0][index], a[1][index], a[2][index])


def _clip_near(tri: np.ndarray, face: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip camera-frame triangles (T, 3, 3) with at least one corner behind depth = near.

    A triangle with one corner in front becomes one triangle, with two corners in front two,
    with none it is dropped. The new corner on an edge is interpolated from its front corner
    towards its back corner, so two triangles sharing that edge create the same point, bit for bit.
    """
    inside = -tri[:, :, 2] > near
    count = inside.sum(axis=1)
    pieces, faces = [np.zeros((0, 3, 3))], [face[:0]]
    for n_in in (1, 2):
        sel = count == n_in
        if not sel.any():
            continue
        t, ins = tri[sel], inside[sel]
        # Roll each triangle (keeping its winding) so that the odd corner comes first.
        first = np.argmax(ins if n_in == 1 else ~ins, axis=1)
        order = (first[:, None] + np.arange(3)) % 3
        t = np.take_along_axis(t, order[:, :, None], axis=1)
        a, b, c = t[:, 0], t[:, 1], t[:, 2]

        def cut(front: np.ndarray, back: np.ndarray) -> np.ndarray:
            zf, zb = -front[:, 2], -back[:, 2]
            s = ((near - zf) / (zb - zf))[:, None]
            p = front + (back - front) * s
            p[:, 2] = -near
            return p

        if n_in == 1:  # a in front: (a, a->b, a->c)
            pieces.append(np.stack([a, cut(a, b), cut(a, c)], axis=1))
            faces.append(face[sel])
        else:  # a behind, b and c in front: polygon b, c, c->a, b->a
            ca, ba = cut(c, a), cut(b, a)
            pieces.append(np.stack([b, c, ca], axis=1))
            pieces.append(np.stack([b, ca, ba], axis=1))
            faces.extend([face[sel], face[sel]])
    return np.concatenate(pieces), np.concatenate(faces)


def _min3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.minimum(np.minimum(a, b), c)


def _max3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(a, b), c)


def _ceil_index(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """ceil(x - 0.5) clipped to [lo, hi], as int64: the first pixel whose centre is >= x."""
    return np.clip(np.ceil(x - 0.5), lo, hi).astype(np.int64)


def _runs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For consecutive runs of the given lengths: (run number, offset in the run) per element."""
    run = np.repeat(np.arange(len(counts)), counts)
    start = np.cumsum(counts) - counts
    return run, np.arange(len(run)) - start[run]


def _scan(
    us: list[np.ndarray], vs: list[np.ndarray], W: int, H: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spans of screen triangles: (triangle, row, first column, length) per row (length may be 0)."""
    # Sort each triangle's corners by (v, u): a total order, so every edge is always walked from
    # the same end and two triangles sharing it compute the same crossings, bit for bit.
    (u0, u1, u2), (v0, v1, v2) = us, vs
    for a, b in ((0, 1), (1, 2), (0, 1)):
        ua, ub = (u0, u1, u2)[a], (u0, u1, u2)[b]
        va, vb = (v0, v1, v2)[a], (v0, v1, v2)[b]
        swap = (vb < va) | ((vb == va) & (ub < ua))
        lo_u, hi_u = np.where(swap, ub, ua), np.where(swap, ua, ub)
        lo_v, hi_v = np.where(swap, vb, va), np.where(swap, va, vb)
        if (a, b) == (0, 1):
            u0, u1, v0, v1 = lo_u, hi_u, lo_v, hi_v
        else:
            u1, u2, v1, v2 = lo_u, hi_u, lo_v, hi_v
    jt, jb = _ceil_index(v0, 0, H), _ceil_index(v2, 0, H)
    jm = _ceil_index(v1, -1, H + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_tb = (u2 - u0) / (v2 - v0)
        s_tm = (u1 - u0) / (v1 - v0)
        s_mb = (u2 - u1) / (v2 - v1)
    rows = jb - jt

    tri, j = _runs(rows)
    j += jt[tri]

    def per_row(a: np.ndarray) -> np.ndarray:
        return a[tri]

    y = j + 0.5
    upper = j < per_row(jm)
    # Each edge is walked from its (v, u)-smaller end. Rows below the middle corner use its lower
    # edge; such rows exist only if that edge is not horizontal, so the slopes used are finite.
    r_u0, r_v0 = per_row(u0), per_row(v0)
    x_long = r_u0 + (y - r_v0) * per_row(s_tb)
    with np.errstate(invalid="ignore"):
        x_upper = r_u0 + (y - r_v0) * per_row(s_tm)
        x_lower = per_row(u1) + (y - per_row(v1)) * per_row(s_mb)
    x_short = np.where(upper, x_upper, x_lower)
    i0 = _ceil_index(np.minimum(x_long, x_short), 0, W)
    i1 = _ceil_index(np.maximum(x_long, x_short), 0, W)
    return tri, j, i0, np.maximum(i1 - i0, 0)


def _fragments(
    F: np.ndarray,
    offset: int,
    cam: Vec,
    projected: tuple[np.ndarray, np.ndarray, np.ndarray],
    intrinsics: Intrinsics,
    near: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(pixel, z-buffer key) of every fragment of faces F (numbered from `offset`), or None."""
    uv_u, uv_v, dv = projected
    H, W = intrinsics.height, intrinsics.width
    M = intrinsics.viewport
    px, py = intrinsics.principal
    idx = [np.ascontiguousarray(F[:, c]) for c in range(3)]
    P = [_take(cam, i) for i in idx]  # corner positions in the camera frame
    n_raw = _cross(_sub(P[1], P[0]), _sub(P[2], P[0]))
    length = np.sqrt(_dot(n_raw, n_raw))
    k = _dot(n_raw, P[0])  # |n| x signed distance of the face plane from the camera centre
    front = [-p[2] > near for p in P]
    all_front = front[0] & front[1] & front[2]
    good = np.isfinite(length) & (length > 0) & np.isfinite(k) & (k != 0)
    good &= front[0] | front[1] | front[2]

    whole = np.flatnonzero(good & all_front)
    cut = np.flatnonzero(good & ~all_front)
    tri_face = whole
    us = [uv_u[i[whole]] for i in idx]
    vs = [uv_v[i[whole]] for i in idx]
    ds = [dv[i[whole]] for i in idx]
    if len(cut):
        corners = np.stack([np.stack(_take(p, cut), axis=1) for p in P], axis=1)
        tri, cut_face = _clip_near(corners, cut, near)
        dc = -tri[:, :, 2]
        tri_face = np.concatenate([whole, cut_face])
        for c in range(3):
            us[c] = np.concatenate([us[c], px + M * tri[:, c, 0] / dc[:, c]])
            vs[c] = np.concatenate([vs[c], py - M * tri[:, c, 1] / dc[:, c]])
            ds[c] = np.concatenate([ds[c], dc[:, c]])

    # Cull what cannot reach a pixel centre before the per-row work.
    vis = (_max3(*us) > 0) & (_min3(*us) < W) & (_max3(*vs) > 0) & (_min3(*vs) < H)
    if not vis.all():
        tri_face = tri_face[vis]
        us, vs, ds = ([a[vis] for a in arr] for arr in (us, vs, ds))

    s_tri, s_row, s_col, s_len = _scan(us, vs, W, H)
    if not s_len.any():
        return None

    # 1/depth on the face plane n.X = k along the ray X = depth * ((u-px)/M, -(v-py)/M, -1) is
    # affine in (u, v). Evaluated at both ends of each span and clamped there to the triangle's
    # own range of 1/depth (so a near-degenerate sliver cannot produce outliers), then stepped
    # linearly along the span.
    nx, ny, nz = _take(n_raw, tri_face)
    kf = k[tri_face] * M
    gu = nx / kf
    gv = -ny / kf
    g0 = (-nx * px + ny * py - nz * M) / kf
    t = s_tri
    lo, hi = (1.0 / _max3(*ds))[t], (1.0 / _min3(*ds))[t]
    first = gu[t] * (s_col + 0.5) + (gv[t] * (s_row + 0.5) + g0[t])
    last = first + gu[t] * (s_len - 1)
    first = np.minimum(np.maximum(first, lo), hi)
    last = np.minimum(np.maximum(last, lo), hi)
    step = np.where(s_len > 1, (last - first) / np.maximum(s_len - 1, 1), 0.0)

    # Fragments: element e of span s is pixel (pix0 - start)[s] + e; its 1/depth is
    # (first - step * start)[s] + step[s] * e.
    span = np.repeat(np.arange(len(s_len)), s_len)
    start = np.cumsum(s_len) - s_len
    e = np.arange(len(span))
    inv = (first - step * start)[span] + step[span] * e
    frag_tri = tri_face[s_tri[span]] + offset
    depth32 = (1.0 / inv).astype(np.float32)
    # Nearest first, then the lowest face number: one 64-bit key, one scatter-minimum.
    key = (depth32.view(np.int32).astype(np.int64) << 32) | frag_tri
    pix = (s_row * W + s_col - start)[span] + e
    return pix, key


def rasterize(
    vertices: np.ndarray,
    faces: np.ndarray,
    R: np.ndarray,
    C: np.ndarray,
    intrinsics: Intrinsics,
    vertex_normals: np.ndarray | None = None,
    near: float = DEFAULT_NEAR,
    chunk: int = FACE_CHUNK,
) -> Raster:
    """Render mask, depth, normals and face ids of an object-frame triangle mesh.

    R is R_theta (world -> camera) and C the camera centre, as in pose-convention.md. Faces with a
    non-finite or degenerate (zero-area) corner set are skipped; geometry nearer than `near` is
    clipped away. `vertex_normals` (object frame) are interpolated perspective-correctly; each is
    first turned to the side of its face's geometric normal, so inconsistent windings are harmless.
    Faces are drawn `chunk` at a time (the memory of a chunk, not of the mesh).
    """
    V = np.asarray(vertices, dtype=np.float64)
    F = np.asarray(faces)
    if V.ndim != 2 or V.shape[1] != 3:
        raise RasterError(f"vertices must have shape (N, 3), got {V.shape}")
    if F.size == 0:
        F = F.reshape(0, 3).astype(np.int64)
    if F.ndim != 2 or F.shape[1] != 3 or not np.issubdtype(F.dtype, np.integer):
        raise RasterError(f"faces must be an integer array of shape (M, 3), got {F.dtype} {F.shape}")
    if F.size and (F.min() < 0 or F.max() >= len(V)):
        raise RasterError(f"face indices must lie in [0, {len(V)}), got [{F.min()}, {F.max()}]")
    if vertex_normals is not None:
        vertex_normals = np.asarray(vertex_normals, dtype=np.float64)
        if vertex_normals.shape != V.shape:
            raise RasterError(f"vertex_normals must have shape {V.shape}, got {vertex_normals.shape}")
    R = np.asarray(R, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64).reshape(3)
    if not near > 0.0:
        raise RasterError(f"near must be positive, got {near}")
    H, W = intrinsics.height, intrinsics.width
    M = intrinsics.viewport
    px, py = intrinsics.principal
    if len(F) == 0:
        return _empty(intrinsics)

    # Camera frame and projection, once per vertex; corners are gathered from these, so a vertex
    # shared by several faces has the same bits in each of them.
    cam = _rotate(V[:, 0] - C[0], V[:, 1] - C[1], V[:, 2] - C[2], R)
    dv = -cam[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv_u = px + M * cam[0] / dv
        uv_v = py - M * cam[1] / dv
    # Faces in chunks: memory stays bounded whatever the mesh size, and as every face's fragments
    # depend on that face alone and the z-buffer keeps a minimum, the result is the same bits.
    zbuf = np.full(H * W, _NO_HIT, np.int64)
    for start in range(0, len(F), chunk):
        found = _fragments(F[start : start + chunk], start, cam, (uv_u, uv_v, dv), intrinsics, near)
        if found is not None:
            np.minimum.at(zbuf, *found)
    hit = np.flatnonzero(zbuf != _NO_HIT)
    if not len(hit):
        return _empty(intrinsics)
    won = zbuf[hit]
    face = won & 0xFFFFFFFF
    # The faces seen, numbered 0.. in `local`, for the per-face work below.
    ids = np.unique(face)
    local = np.searchsorted(ids, face)

    mask = np.zeros(H * W, bool)
    mask[hit] = True
    depth = np.full(H * W, np.inf, np.float32)
    depth[hit] = (won >> 32).astype(np.int32).view(np.float32)
    face_index = np.full(H * W, -1, np.int32)
    face_index[hit] = face
    # Geometric unit normals turned towards the camera: n . (0 - P0) > 0, i.e. k < 0. The seen
    # faces' planes again, computed as the chunks computed them (elementwise: the same bits).
    idx = [np.ascontiguousarray(F[ids, c]) for c in range(3)]
    P = [_take(cam, i) for i in idx]
    n_ids = _cross(_sub(P[1], P[0]), _sub(P[2], P[0]))
    k_ids = _dot(n_ids, P[0])
    scale = np.where(k_ids > 0, -1.0, 1.0) / np.sqrt(_dot(n_ids, n_ids))
    facing = (n_ids[0] * scale, n_ids[1] * scale, n_ids[2] * scale)
    face_normals = np.zeros((H * W, 3), np.float32)
    _scatter_rows(face_normals, hit, np.stack(facing, axis=1).astype(np.float32), local)

    if vertex_normals is None:
        normals = face_normals
    else:
        vn = _rotate(vertex_normals[:, 0], vertex_normals[:, 1], vertex_normals[:, 2], R)
        G = _normal_planes(P, n_ids, k_ids, facing, [_take(vn, i) for i in idx])
        normals = np.zeros((H * W, 3), np.float32)
        rows, ok = _interpolate_normals(hit, np.take(G, local, axis=1), intrinsics)
        if not ok.all():  # degenerate corner normals: the face's own normal instead
            rows[~ok] = face_normals[hit[~ok]]
        _scatter_rows(normals, hit, rows)

    return Raster(
        mask=mask.reshape(H, W),
        depth=depth.reshape(H, W),
        normals=normals.reshape(H, W, 3),
        face_index=face_index.reshape(H, W),
        face_normals=face_normals.reshape(H, W, 3),
        intrinsics=intrinsics,
    )


def _scatter_rows(
    out: np.ndarray, where: np.ndarray, rows: np.ndarray, pick: np.ndarray | None = None
) -> None:
    """out[where] = rows[pick] (or rows) for float32 (K, 3) arrays, moving each row as one 12-byte
    item (about twice as fast as numpy's row-wise fancy indexing)."""
    item = np.dtype((np.void, 12))
    src = np.ascontiguousarray(rows, dtype=np.float32).view(item).ravel()
    out.view(item).ravel()[where] = src if pick is None else src[pick]


def _normal_planes(P: list[Vec], n: Vec, k: np.ndarray, facing: Vec, vn: list[Vec]) -> np.ndarray:
    """Per face, the 3 x 3 matrix G (returned as 9 rows, (9, K)) with G r ~ the interpolated normal
    at the point of the face seen along the ray r.

    On the face plane n.X = k, the point on the ray r is X = k r / (n.r), and its barycentric
    weight for corner c is n.((P_c+1 - X) x (P_c+2 - X)) / |n|^2, which works out as
    (r . q_c) / ((n.r) |n|^2) with q_c = (n.(P_c+1 x P_c+2)) n - k (P_c+2 - P_c+1) x n.
    So sum_c weight_c N_c = G r (n.r)^-1 |n|^-2 with G = sum_c N_c q_c^T: linear in r, hence
    perspective-correct by construction. G is scaled by 1 / (|n|^2 k), which makes G r equal to
    the interpolated normal divided by the depth. Corner normals N_c are first flipped to the
    side of the face's camera-facing normal.
    """
    nn = _dot(n, n)
    G = [np.zeros_like(k) for _ in range(9)]
    for c in range(3):
        a, b = P[(c + 1) % 3], P[(c + 2) % 3]
        m = _cross(_sub(b, a), n)
        s = _dot(n, _cross(a, b))
        q = [s * n[i] - k * m[i] for i in range(3)]
        N = vn[c]
        flip = np.where(_dot(N, facing) < 0, -1.0, 1.0) / (nn * k)
        for i in range(3):
            Ni = N[i] * flip
            for j in range(3):
                G[3 * i + j] += Ni * q[j]
    return np.stack(G)


def _interpolate_normals(
    hit: np.ndarray, G: np.ndarray, intrinsics: Intrinsics
) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals G r at the pixel centres `hit` (flat indices), G given as (9, len(hit)),
    and where they are defined (G r does not vanish)."""
    M = intrinsics.viewport
    px, py = intrinsics.principal
    # Exact: hit < 2^53 and a non-integer quotient is at least 1 / width away from an integer.
    row = np.floor(hit / float(intrinsics.width))
    col = hit - row * intrinsics.width
    r0 = (col + (0.5 - px)) / M
    r1 = ((py - 0.5) - row) / M
    out = [G[3 * i] * r0 + G[3 * i + 1] * r1 - G[3 * i + 2] for i in range(3)]
    length = np.sqrt(_dot(out, out))
    ok = np.isfinite(length) & (length > 1e-12)
    inv = np.where(ok, 1.0 / np.where(ok, length, 1.0), 0.0)
    return np.stack([o * inv for o in out], axis=1).astype(np.float32), ok


def mask_bbox(mask: np.ndarray) -> list[float] | None:
    """Tight box [u0, v0, u1, v1] of a mask in continuous pixels (u1 = last column + 1); None if empty."""
    mask = np.asarray(mask, dtype=bool)
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def is_truncated(mask: np.ndarray) -> bool:
    """Whether the mask touches the image border (the object may be cut off)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return False
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
