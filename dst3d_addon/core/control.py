"""Control images for ControlNet (white lines on black, uint8) and the shaded render, from a Raster.

Two edge modes:

- `geometry_edges`: lines straight from the geometry, not from pixel intensities. A line pixel is
  where the silhouette meets the background, where neighbouring pixels' face normals differ by
  more than `crease_deg` (creases, convex or concave), or where the neighbour lies off this pixel's
  face plane by more than `gap_px` pixel footprints (one part occluding another). Each is drawn on
  one pixel of the pair (the object side, or the nearer side), so lines are about 1 px wide, like
  Canny's. Smooth tessellated surfaces stay clean because neighbouring facets differ by small
  angles and stay on each other's planes.
- `canny`: 3D-DST's recipe, `cv2.Canny(render, 100, 200)` on the shaded render.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .raster import Raster

#: Camera-frame directions towards the lights (+Z points back at the viewer): key from the upper
#: left, fill from the right and slightly below.
KEY_LIGHT = (-0.45, 0.55, 0.70)
FILL_LIGHT = (0.65, -0.20, 0.50)


class ControlError(ValueError):
    """A bad threshold, or an image of the wrong shape or type, given to a control-image function."""


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    length = math.sqrt(sum(c * c for c in v))
    return np.array([c / length for c in v], dtype=np.float32)


def mask_image(mask: np.ndarray) -> np.ndarray:
    """The mask as an 8-bit image: 255 on the object, 0 elsewhere."""
    return np.where(np.asarray(mask, dtype=bool), np.uint8(255), np.uint8(0))


def geometry_image(raster: Raster) -> np.ndarray:
    """Face normals as colours, (H, W, 3) uint8: channels (x, y, z) = 255 (n + 1) / 2 in the camera
    frame (RGB order: reverse it for cv2.imwrite), black background.

    Every silhouette is a step to black and a crease of angle phi a colour step of at least
    255 sin(phi / 2) summed over the channels (66 levels at 30 deg). It shows what
    `geometry_edges` sees; an occlusion between parallel faces is no step here, only in depth.
    """
    n = raster.face_normals
    rgb = np.rint((n + np.float32(1.0)) * np.float32(127.5))
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    rgb[~raster.mask] = 0
    return rgb


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The mask's bounding box grown by `margin` pixels (clipped to the image); None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    H, W = mask.shape
    return (
        slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, H)),
        slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, W)),
    )


def _pair_edges(
    mask: np.ndarray,
    depth: np.ndarray,
    normals: list[np.ndarray],
    points: list[np.ndarray],
    tolerance: np.ndarray,
    cos_crease: float,
    axis: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Line pixels from the pairs (p, q) of neighbours along one axis: (marks on p, marks on q).

    `normals` and `points` are lists of three (H, W) planes (x, y, z).
    """
    H, W = mask.shape
    a = (slice(None), slice(0, W - 1)) if axis == 1 else (slice(0, H - 1), slice(None))
    b = (slice(None), slice(1, W)) if axis == 1 else (slice(1, H), slice(None))
    ma, mb = mask[a], mask[b]
    na = [c[a] for c in normals]
    nb = [c[b] for c in normals]
    dp = [c[b] - c[a] for c in points]
    crease = _dot3(na, nb) < cos_crease
    off_plane = np.maximum(np.abs(_dot3(na, dp)), np.abs(_dot3(nb, dp)))
    gap = off_plane > np.minimum(tolerance[a], tolerance[b])
    inner = ma & mb & (crease | gap)
    a_nearer = depth[a] <= depth[b]
    mark_a = (ma & ~mb) | (inner & a_nearer)
    mark_b = (mb & ~ma) | (inner & ~a_nearer)
    return mark_a, mark_b


def _dot3(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Dot product of two vectors stored as planes, elementwise (no BLAS: the same bits everywhere)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def geometry_edges(raster: Raster, crease_deg: float = 30.0, gap_px: float = 2.0) -> np.ndarray:
    """Silhouettes, creases (> `crease_deg`) and occlusion boundaries as 0/255 uint8 lines.

    `gap_px` is the smallest out-of-plane step counted as an occlusion, in pixel footprints at
    that depth (depth / focal length in pixels), so the test does not depend on the object's scale.
    """
    if not 0.0 < crease_deg < 180.0:
        raise ControlError(f"crease_deg must lie in (0, 180), got {crease_deg}")
    if not gap_px > 0.0:
        raise ControlError(f"gap_px must be positive, got {gap_px}")
    edges = np.zeros(raster.mask.shape, np.uint8)
    # Work on the object's box plus a one-pixel margin (where silhouette pairs end).
    box = _box(raster.mask, 1)
    if box is None:
        return edges
    (r0, r1), (c0, c1) = (box[0].start, box[0].stop), (box[1].start, box[1].stop)
    mask = raster.mask[box]
    intr = raster.intrinsics
    M = np.float32(intr.viewport)
    px, py = intr.principal
    depth = np.where(mask, raster.depth[box], np.float32(0.0)).astype(np.float32)
    x = ((np.arange(c0, c1, dtype=np.float32) + np.float32(0.5 - px)) / M)[None, :]
    y = ((np.float32(py - 0.5) - np.arange(r0, r1, dtype=np.float32)) / M)[:, None]
    points = [depth * x, depth * y, -depth]
    normals = [np.ascontiguousarray(raster.face_normals[(*box, i)]) for i in range(3)]
    tolerance = depth * np.float32(gap_px / intr.viewport)
    cos_crease = math.cos(math.radians(crease_deg))
    out = np.zeros(mask.shape, bool)
    for axis in (0, 1):
        mark_a, mark_b = _pair_edges(mask, depth, normals, points, tolerance, cos_crease, axis)
        if axis == 1:
            out[:, :-1] |= mark_a
            out[:, 1:] |= mark_b
        else:
            out[:-1] |= mark_a
            out[1:] |= mark_b
    edges[box] = mask_image(out)
    return edges


def shaded_image(
    raster: Raster,
    albedo: float = 0.85,
    ambient: float = 0.3,
    key: float = 0.6,
    fill: float = 0.25,
    background: int = 0,
    smooth: bool = True,
) -> np.ndarray:
    """A grey Lambert render (H, W, 3) uint8: a key and a fill light fixed to the camera.

    The ambient term keeps every object pixel well above a black background (at least
    albedo x ambient x 255 = 65 with the defaults, a Sobel step of 260 > Canny's 200), so the
    silhouette is always found; the defaults peak just under white, so lit faces keep contrast.
    `smooth` uses the raster's (possibly interpolated) normals, else its flat face normals.
    """
    normals = raster.normals if smooth else raster.face_normals
    H, W = raster.mask.shape
    level = np.full((H, W), np.uint8(background), np.uint8)
    box = _box(raster.mask, 0)
    if box is None:
        return np.repeat(level[:, :, None], 3, axis=2)
    n = [normals[(*box, i)] for i in range(3)]
    lk, lf = _unit(KEY_LIGHT), _unit(FILL_LIGHT)
    shade = np.float32(ambient)
    shade = shade + np.float32(key) * np.maximum(_dot3(n, list(lk)), np.float32(0.0))
    shade = shade + np.float32(fill) * np.maximum(_dot3(n, list(lf)), np.float32(0.0))
    grey = np.clip(np.rint(np.float32(albedo * 255.0) * shade), 0, 255).astype(np.uint8)
    inside = raster.mask[box]
    level[box][inside] = grey[inside]
    return np.repeat(level[:, :, None], 3, axis=2)


def canny(image: np.ndarray, low: float = 100, high: float = 200) -> np.ndarray:
    """cv2.Canny with 3D-DST's thresholds: 0/255 uint8 edges of a gray or 3-channel uint8 image.

    Like 3D-DST, a colour image is not converted to gray first: OpenCV's Canny takes, per pixel,
    the channel with the strongest gradient (for a grey render this is the same as gray).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3))):
        raise ControlError(f"canny needs a uint8 gray or 3-channel image, got {img.dtype} {img.shape}")
    return cv2.Canny(np.ascontiguousarray(img), float(low), float(high))
