"""The pose convention of PASCAL3D+ (docs/pose-convention.md), in one place.

Every pose dst3d samples, renders, stores or reads goes through these functions. Angles are in
radians, lengths in object units, pixels are continuous with the origin at the image's top-left
corner (a pixel's centre is at i + 0.5). The object frame is Blender's world frame: +Z up, the
object's front faces -Y. The camera frame is Blender's: +X right, +Y up, looking down -Z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: 3D-DST's camera: a 35 mm lens on a 32 mm wide sensor (so M·f = 560 px at 512 px wide).
DEFAULT_LENS_MM = 35.0
DEFAULT_SENSOR_MM = 32.0

#: cos(elevation) below this counts as looking straight up or down (azimuth undefined).
_POLE_EPS = 1e-9


@dataclass(frozen=True)
class Pose:
    """A viewpoint: azimuth, elevation, in-plane rotation theta (radians) and distance."""

    azimuth: float
    elevation: float
    theta: float
    distance: float

    def as_dict(self) -> dict[str, float]:
        """The `pose` object of an annotation record."""
        return {
            "azimuth": float(self.azimuth),
            "elevation": float(self.elevation),
            "theta": float(self.theta),
            "distance": float(self.distance),
        }


@dataclass(frozen=True)
class Intrinsics:
    """Image size, focal length in pixels (`viewport` = M·f) and the principal point."""

    width: int
    height: int
    viewport: float
    principal: tuple[float, float]

    @classmethod
    def from_lens(
        cls,
        width: int,
        height: int,
        lens_mm: float = DEFAULT_LENS_MM,
        sensor_mm: float = DEFAULT_SENSOR_MM,
    ) -> Intrinsics:
        """A Blender camera with a horizontal sensor fit and no shift."""
        return cls(int(width), int(height), lens_mm / sensor_mm * width, (width / 2.0, height / 2.0))

    @property
    def K(self) -> np.ndarray:
        """The OpenCV camera matrix (pixel centres on integers)."""
        px, py = self.principal
        return np.array([[self.viewport, 0.0, px - 0.5], [0.0, self.viewport, py - 0.5], [0.0, 0.0, 1.0]])

    def blender_lens(self, sensor_mm: float = DEFAULT_SENSOR_MM) -> float:
        """The lens (mm) that gives this focal length on a horizontally fitted sensor."""
        return self.viewport * sensor_mm / self.width

    def as_record(self) -> dict:
        """The intrinsic part of an annotation record's `camera` object."""
        return {
            "focal": 1.0,
            "viewport": float(self.viewport),
            "principal": [float(self.principal[0]), float(self.principal[1])],
            "width": self.width,
            "height": self.height,
            "K": self.K.tolist(),
        }


def rot_z(phi: float) -> np.ndarray:
    """Rotation by phi about +Z."""
    c, s = math.cos(phi), math.sin(phi)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(phi: float) -> np.ndarray:
    """Rotation by phi about +X."""
    c, s = math.cos(phi), math.sin(phi)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def camera_centre(azimuth: float, elevation: float, distance: float) -> np.ndarray:
    """C: the camera centre in the object frame."""
    ce = math.cos(elevation)
    return distance * np.array([ce * math.sin(azimuth), -ce * math.cos(azimuth), math.sin(elevation)])


def rotation_no_roll(azimuth: float, elevation: float) -> np.ndarray:
    """R = Rx(e - pi/2) Rz(-a): world to camera without the in-plane rotation."""
    return rot_x(elevation - math.pi / 2) @ rot_z(-azimuth)


def rotation(azimuth: float, elevation: float, theta: float) -> np.ndarray:
    """R_theta = Rz(theta) R: world to camera."""
    return rot_z(theta) @ rotation_no_roll(azimuth, elevation)


def extrinsics(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(R_theta, C) of a pose."""
    return (
        rotation(pose.azimuth, pose.elevation, pose.theta),
        camera_centre(pose.azimuth, pose.elevation, pose.distance),
    )


def to_camera(points: np.ndarray, R: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Object-frame points (N, 3) to camera-frame points (N, 3)."""
    return (np.asarray(points, dtype=np.float64) - C) @ R.T


def project(
    points: np.ndarray, R: np.ndarray, C: np.ndarray, intrinsics: Intrinsics
) -> tuple[np.ndarray, np.ndarray]:
    """Project object-frame points: returns (uv (N, 2) in pixels, depth (N,) along the view axis).

    depth = -z_c is positive in front of the camera; points behind it get meaningless uv.
    """
    pc = to_camera(points, R, C)
    depth = -pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = intrinsics.viewport * pc[:, 0] / depth
        y = intrinsics.viewport * pc[:, 1] / depth
    px, py = intrinsics.principal
    return np.stack([px + x, py - y], axis=1), depth


def project_pose(points: np.ndarray, pose: Pose, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """`project` for a pose."""
    R, C = extrinsics(pose)
    return project(points, R, C, intrinsics)


def opencv_extrinsics(R: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R_cv, t_cv) so that x ~ K (R_cv X + t_cv) in OpenCV's camera frame (looking down +z, y down):
    what `cv2.projectPoints(X, R_cv, t_cv, K, None)` takes. `R` itself looks down -z; passing it to
    OpenCV mirrors the image."""
    R_cv = np.diag([1.0, -1.0, -1.0]) @ R
    return R_cv, -R_cv @ C


def blender_matrix_world(R: np.ndarray, C: np.ndarray) -> np.ndarray:
    """The 4x4 `matrix_world` of a Blender camera rendering this view."""
    M = np.eye(4)
    M[:3, :3] = R.T
    M[:3, 3] = C
    return M


def wrap_angle(phi: float) -> float:
    """phi wrapped to (-pi, pi]."""
    w = math.remainder(phi, 2 * math.pi)
    return math.pi if w == -math.pi else w


def pose_from_extrinsics(R: np.ndarray, C: np.ndarray) -> Pose:
    """The inverse: (R_theta, C) of a camera looking at the object origin to a pose.

    The elevation and azimuth come from R's third row (the direction from the origin to the
    camera); at the poles the azimuth is set to 0 and the whole roll goes into theta.
    """
    R = np.asarray(R, dtype=np.float64)
    r3 = R[2]
    elevation = math.asin(max(-1.0, min(1.0, float(r3[2]))))
    if math.hypot(r3[0], r3[1]) < _POLE_EPS:
        azimuth = 0.0
    else:
        azimuth = math.atan2(r3[0], -r3[1])
    r1 = np.array([math.cos(azimuth), math.sin(azimuth), 0.0])
    theta = math.atan2(float(R[1] @ r1), float(R[0] @ r1))
    return Pose(wrap_angle(azimuth), elevation, wrap_angle(theta), float(np.linalg.norm(C)))


def pose_from_matrix_world(matrix_world: np.ndarray) -> Pose:
    """The inverse for a Blender camera's `matrix_world` (scale is removed first)."""
    M = np.asarray(matrix_world, dtype=np.float64)
    axes = M[:3, :3] / np.linalg.norm(M[:3, :3], axis=0)
    return pose_from_extrinsics(axes.T, M[:3, 3])


def camera_record(pose: Pose, intrinsics: Intrinsics) -> dict:
    """The `camera` object of an annotation record (dataset-format.md): intrinsics, `R` and `C` in
    this module's convention, and the same extrinsics in OpenCV's form as `R_cv` and `t_cv`.

    The camera looks at the object origin, so `t_cv = -R_cv C` is (0, 0, distance) exactly; it is
    written so rather than computed, whose first two entries are rounding noise (1e-16) that differs
    between numpy builds and would make the same view's record bytes differ."""
    R, C = extrinsics(pose)
    R_cv, _ = opencv_extrinsics(R, C)
    t_cv = np.array([0.0, 0.0, float(pose.distance)])
    record = intrinsics.as_record()
    record["R"] = R.tolist()
    record["C"] = C.tolist()
    record["R_cv"] = R_cv.tolist()
    record["t_cv"] = t_cv.tolist()
    return record
