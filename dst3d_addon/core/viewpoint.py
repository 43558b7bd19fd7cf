"""A free camera seen from an object anywhere in the world: its pose, extrinsics and intrinsics.

The panel works on models the artist may have moved, turned or scaled, so poses are measured in
the object's own frame (its local coordinates are pose-convention.md's object frame after import), not in
world coordinates. Lengths are in object units, as in the annotations. Pure numpy, no bpy.
"""

from __future__ import annotations

import math

import numpy as np

from .camera import Intrinsics, Pose, blender_matrix_world, extrinsics, pose_from_extrinsics

#: Blender's camera sensor fits.
SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation closest to a 3x3 matrix (removes scale and shear; polar decomposition)."""
    U, _s, Vt = np.linalg.svd(np.asarray(M, dtype=np.float64))
    R = U @ Vt
    if np.linalg.det(R) < 0:
        U[:, -1] *= -1
        R = U @ Vt
    return R


def relative_extrinsics(
    object_matrix: np.ndarray, camera_matrix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(R_theta, C) of a camera (world matrix) in the frame of an object (world matrix).

    C is in object units (the object's scale divides world lengths); R is world->camera of
    pose-convention.md, made orthonormal. The camera need not look at the object's origin.
    """
    T = np.asarray(object_matrix, dtype=np.float64)
    local = np.linalg.solve(T, np.asarray(camera_matrix, dtype=np.float64))
    return nearest_rotation(local[:3, :3]).T, local[:3, 3].copy()


def aim_error(R: np.ndarray, C: np.ndarray) -> float:
    """Angle (radians) between the camera's view axis and the direction to the object's origin."""
    if not np.any(C):
        return math.pi
    # The view axis is -Z of the camera (row 3 of R, negated); the origin lies along -C.
    # atan2 of sine and cosine stays exact near 0, where acos loses half the digits.
    r3 = np.asarray(R, dtype=np.float64)[2]
    return math.atan2(float(np.linalg.norm(np.cross(r3, C))), float(np.dot(r3, C)))


def relative_pose(object_matrix: np.ndarray, camera_matrix: np.ndarray) -> tuple[Pose, float]:
    """The camera's pose relative to the object (pose-convention.md's inverse) and its aim error (radians).

    The angles come from the camera's orientation and the distance from its position; they
    describe the camera exactly when the aim error is 0 (it looks at the object's origin).
    """
    R, C = relative_extrinsics(object_matrix, camera_matrix)
    return pose_from_extrinsics(R, C), aim_error(R, C)


def camera_matrix(object_matrix: np.ndarray, pose: Pose) -> np.ndarray:
    """The world matrix of a camera at `pose` relative to the object (unit scale, looks at its origin)."""
    T = np.asarray(object_matrix, dtype=np.float64)
    world = T @ blender_matrix_world(*extrinsics(pose))
    world[:3, :3] = nearest_rotation(world[:3, :3])
    world[3] = (0.0, 0.0, 0.0, 1.0)
    return world


def object_points(object_matrix: np.ndarray, world_points: np.ndarray) -> np.ndarray:
    """World points (N, 3) in the object's frame."""
    T = np.linalg.inv(np.asarray(object_matrix, dtype=np.float64))
    P = np.asarray(world_points, dtype=np.float64).reshape(-1, 3)
    return P @ T[:3, :3].T + T[:3, 3]


def blender_intrinsics(
    width: int,
    height: int,
    lens_mm: float,
    sensor_width_mm: float,
    sensor_height_mm: float,
    sensor_fit: str = "AUTO",
    shift_x: float = 0.0,
    shift_y: float = 0.0,
) -> Intrinsics:
    """The intrinsics of a perspective Blender camera rendering width x height (square pixels).

    AUTO fits the sensor width to the larger image side, HORIZONTAL to the width, VERTICAL the
    sensor height to the height. Shifts are in units of the larger side (rig.set_intrinsics' inverse).
    """
    if sensor_fit not in SENSOR_FITS:
        raise ValueError(f"sensor_fit {sensor_fit!r}: use one of {', '.join(SENSOR_FITS)}")
    if width <= 0 or height <= 0 or lens_mm <= 0:
        raise ValueError(f"camera {width}x{height} px, lens {lens_mm} mm: all must be positive")
    if sensor_fit == "VERTICAL":
        viewport = lens_mm / sensor_height_mm * height
    elif sensor_fit == "HORIZONTAL":
        viewport = lens_mm / sensor_width_mm * width
    else:
        viewport = lens_mm / sensor_width_mm * max(width, height)
    size = max(width, height)
    principal = (width / 2.0 - shift_x * size, height / 2.0 + shift_y * size)
    return Intrinsics(int(width), int(height), float(viewport), principal)
