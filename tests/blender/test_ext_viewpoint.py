"""core/viewpoint.py: a camera's pose relative to a moved, turned, scaled object; Blender intrinsics."""

import math

import numpy as np
import pytest

from dst3d_addon.core.camera import Intrinsics, Pose, blender_matrix_world, extrinsics, project
from dst3d_addon.core.viewpoint import (
    aim_error,
    blender_intrinsics,
    camera_matrix,
    nearest_rotation,
    object_points,
    relative_extrinsics,
    relative_pose,
)


def _object_matrix(scale: float = 1.0) -> np.ndarray:
    c, s = math.cos(0.7), math.sin(0.7)
    T = np.eye(4)
    T[:3, :3] = (
        scale
        * np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        @ np.array([[1, 0, 0], [0, math.cos(0.3), -math.sin(0.3)], [0, math.sin(0.3), math.cos(0.3)]])
    )
    T[:3, 3] = (2.0, -1.0, 0.5)
    return T


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_pose_round_trips_through_a_moved_object(scale: float) -> None:
    rng = np.random.default_rng(3)
    T = _object_matrix(scale)
    for _ in range(50):
        pose = Pose(rng.uniform(-3, 3), rng.uniform(-1.4, 1.4), rng.uniform(-3, 3), rng.uniform(0.5, 5))
        M = camera_matrix(T, pose)
        assert np.allclose(M[:3, :3].T @ M[:3, :3], np.eye(3), atol=1e-12)  # unit scale camera
        back, aim = relative_pose(T, M)
        assert aim == pytest.approx(0.0, abs=1e-6)
        assert math.remainder(back.azimuth - pose.azimuth, 2 * math.pi) == pytest.approx(0, abs=1e-9)
        assert (back.elevation, back.theta, back.distance) == pytest.approx(
            (pose.elevation, math.remainder(pose.theta, 2 * math.pi), pose.distance), abs=1e-9
        )
        # world distance is the object distance times the object's scale
        assert np.linalg.norm(M[:3, 3] - T[:3, 3]) == pytest.approx(pose.distance * scale)


def test_relative_extrinsics_project_like_the_world_camera() -> None:
    T = _object_matrix(2.0)
    pose = Pose(0.4, 0.2, 0.1, 3.0)
    M = camera_matrix(T, pose)
    M[:3, 3] += M[:3, 0] * 0.3  # slide the camera sideways: it no longer looks at the origin
    R, C = relative_extrinsics(T, M)
    intr = Intrinsics.from_lens(64, 48)
    local = np.array([[0.1, 0.2, -0.1], [-0.3, 0.0, 0.2]])
    world = local @ T[:3, :3].T + T[:3, 3]
    uv_local, _ = project(local, R, C, intr)
    uv_world, _ = project(world, M[:3, :3].T, M[:3, 3], intr)
    assert np.allclose(uv_local, uv_world, atol=1e-9)
    assert np.allclose(object_points(T, world), local)
    assert aim_error(R, C) > math.radians(1)


def test_aim_error_and_nearest_rotation() -> None:
    R, C = extrinsics(Pose(0.3, 0.4, 0.0, 2.0))
    assert aim_error(R, C) == pytest.approx(0.0, abs=1e-9)
    turned = np.array(blender_matrix_world(R, C))
    assert aim_error(R, -C) == pytest.approx(math.pi)
    noisy = turned[:3, :3] * 3.0 + 1e-9
    assert np.allclose(nearest_rotation(noisy), turned[:3, :3], atol=1e-8)


def test_blender_intrinsics_inverts_the_rig() -> None:
    intr = blender_intrinsics(512, 384, 35.0, 32.0, 24.0, "HORIZONTAL")
    assert intr == Intrinsics.from_lens(512, 384)
    assert blender_intrinsics(384, 512, 35.0, 32.0, 24.0, "AUTO").viewport == pytest.approx(35 / 32 * 512)
    assert blender_intrinsics(384, 512, 35.0, 32.0, 24.0, "VERTICAL").viewport == pytest.approx(35 / 24 * 512)
    shifted = blender_intrinsics(400, 200, 35.0, 32.0, 24.0, "HORIZONTAL", shift_x=0.1, shift_y=-0.05)
    assert shifted.principal == pytest.approx((200 - 40, 100 - 20))
    with pytest.raises(ValueError, match="sensor_fit 'FIT'"):
        blender_intrinsics(10, 10, 35, 32, 24, "FIT")
