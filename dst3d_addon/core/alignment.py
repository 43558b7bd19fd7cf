"""From a CAD file's coordinates to the object frame (pose-convention.md): axis change, alignment, normalisation.

The object frame is right-handed, +Z up, the object's front faces -Y, centred at the origin and
scaled so that the longest side of its axis-aligned bounding box is 1. A model gets there in four
steps, each a matrix, composed as

    to_object = N · O · A · C

- C, the importer's axis change (and unit scale): file coordinates -> the importer's scene frame
  (Blender's frame, +Z up). For Y-up formats (OBJ, glTF, FBX by default) it is
  `axis_matrix(forward="Z", up="Y")`: the file's +Y becomes +Z and the file's +Z becomes -Y.
- A = axis_matrix(forward, up): `forward` and `up` name where the model's front and top point in
  the scene frame, i.e. after the importer's own axis change. The defaults ("-Y", "Z") mean the
  model already faces -Y with +Z up, and A is the identity.
- O = offset_rotation(azimuth_offset, elevation_offset): 3D-DST's per-model pose offset. After A,
  the model's real front is seen from the view (a = azimuth_offset, e = elevation_offset) of
  pose-convention.md; O turns the model so that this view becomes the front view (a = 0, e = 0).
- N = normalisation(bbox_min, bbox_max) of the rotated vertices (the box is taken in the object
  frame, after A and O): scale to a longest side of 1, centre the box at the origin.
"""

from __future__ import annotations

import numpy as np

from .camera import rot_x, rot_z
from .errors import Dst3dError

#: The six axis names accepted for `forward` and `up`.
AXES = {
    "X": (1.0, 0.0, 0.0),
    "-X": (-1.0, 0.0, 0.0),
    "Y": (0.0, 1.0, 0.0),
    "-Y": (0.0, -1.0, 0.0),
    "Z": (0.0, 0.0, 1.0),
    "-Z": (0.0, 0.0, -1.0),
}


def parse_axis(name: str, option: str = "axis") -> np.ndarray:
    """The unit vector of an axis name: X, Y, Z, -X, -Y, -Z (case-insensitive, '+X' and 'NEGATIVE_X' too)."""
    key = str(name).strip().upper().replace("NEGATIVE_", "-")
    key = key[1:] if key.startswith("+") else key
    if key not in AXES:
        raise Dst3dError(f"{option} {name!r} is not an axis: use one of X, Y, Z, -X, -Y, -Z")
    return np.array(AXES[key])


def axis_matrix(forward: str = "-Y", up: str = "Z") -> np.ndarray:
    """The rotation taking a model whose front points along `forward` and top along `up` to -Y and +Z.

    Its rows are (up × forward, -forward, up), so forward -> -Y, up -> +Z and up × forward -> +X.
    Raises Dst3dError when the two axes are not perpendicular.
    """
    f = parse_axis(forward, "forward")
    u = parse_axis(up, "up")
    if abs(float(f @ u)) > 0.5:
        raise Dst3dError(f"forward {forward!r} and up {up!r} must be perpendicular axes")
    return np.array([np.cross(u, f), -f, u])


def offset_rotation(azimuth_offset: float = 0.0, elevation_offset: float = 0.0) -> np.ndarray:
    """O = Rx(elevation_offset) · Rz(-azimuth_offset) (radians).

    It takes the camera direction of the view (a = azimuth_offset, e = elevation_offset) to the
    front view's direction -Y, keeping +Z up when elevation_offset = 0: a model whose front is seen
    from that view ends up facing -Y. For a camera at pose (a, e) relative to the aligned model,
    the same camera sits at (a + azimuth_offset, e) relative to the unaligned one when
    elevation_offset = 0 (exactly 3D-DST's azimuth offset; see catalog.py for its elevation).
    """
    return rot_x(elevation_offset) @ rot_z(-azimuth_offset)


def alignment_rotation(
    forward: str = "-Y", up: str = "Z", azimuth_offset: float = 0.0, elevation_offset: float = 0.0
) -> np.ndarray:
    """O · A: the whole alignment rotation, from the importer's scene frame to the object frame."""
    return offset_rotation(azimuth_offset, elevation_offset) @ axis_matrix(forward, up)


def normalisation(bbox_min: np.ndarray, bbox_max: np.ndarray) -> np.ndarray:
    """N (4x4): scale so the box's longest side is 1 and move its centre to the origin.

    Raises ValueError for a box with a non-finite corner or no extent.
    """
    lo = np.asarray(bbox_min, dtype=np.float64).reshape(3)
    hi = np.asarray(bbox_max, dtype=np.float64).reshape(3)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"bounding box has non-finite corners {lo.tolist()}, {hi.tolist()}")
    extent = float(np.max(hi - lo))
    if not extent > 0.0 or not np.isfinite(1.0 / extent):
        raise ValueError(f"bounding box has no extent ({lo.tolist()} to {hi.tolist()})")
    scale = 1.0 / extent
    N = np.eye(4) * scale
    N[3, 3] = 1.0
    N[:3, 3] = -scale * (lo + hi) / 2.0
    return N


def homogeneous(M: np.ndarray) -> np.ndarray:
    """A 3x3 matrix as a 4x4 transform (a 4x4 is returned as a float copy)."""
    M = np.asarray(M, dtype=np.float64)
    if M.shape == (4, 4):
        return M.copy()
    out = np.eye(4)
    out[:3, :3] = M
    return out


def transform_points(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 or 4x4 transform to (N, 3) points."""
    M4 = homogeneous(M)
    P = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return P @ M4[:3, :3].T + M4[:3, 3]


def compose_to_object(
    scene_points: np.ndarray,
    import_matrix: np.ndarray | None = None,
    forward: str = "-Y",
    up: str = "Z",
    azimuth_offset: float = 0.0,
    elevation_offset: float = 0.0,
) -> np.ndarray:
    """to_object = N · O · A · C (4x4): file coordinates -> object frame.

    `scene_points` are the model's vertices in the importer's scene frame (after C), used for the
    bounding box; `import_matrix` is C (file -> scene frame, identity when None). Raises ValueError
    when the rotated vertices have no extent or are not finite.
    """
    R = alignment_rotation(forward, up, azimuth_offset, elevation_offset)
    pts = transform_points(R, scene_points)
    if len(pts) == 0:
        raise ValueError("no vertices")
    N = normalisation(pts.min(axis=0), pts.max(axis=0))
    C = np.eye(4) if import_matrix is None else homogeneous(import_matrix)
    return N @ homogeneous(R) @ C
