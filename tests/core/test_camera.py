"""core.camera against shared/spec/pose-convention.md: formulas, projections, inverse, OpenCV form."""

import math

import numpy as np
import pytest

from dst3d_addon.core import camera as cam

RNG = np.random.default_rng(7)


def random_poses(n: int) -> list[cam.Pose]:
    return [
        cam.Pose(
            float(RNG.uniform(-math.pi, math.pi)),
            float(RNG.uniform(-math.pi / 2 + 1e-3, math.pi / 2 - 1e-3)),
            float(RNG.uniform(-math.pi, math.pi)),
            float(RNG.uniform(0.5, 10.0)),
        )
        for _ in range(n)
    ]


def test_camera_centre_matches_spec_axes():
    # a = 0: camera on -Y (sees the front); a = pi/2: camera on +X; e = pi/2: straight above.
    np.testing.assert_allclose(cam.camera_centre(0.0, 0.0, 2.0), [0, -2, 0], atol=1e-12)
    np.testing.assert_allclose(cam.camera_centre(math.pi / 2, 0.0, 2.0), [2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(cam.camera_centre(0.3, math.pi / 2, 2.0), [0, 0, 2], atol=1e-12)


def test_rotation_closed_form_and_centre_on_axis():
    for p in random_poses(50):
        a, e = p.azimuth, p.elevation
        expected = np.array(
            [
                [math.cos(a), math.sin(a), 0],
                [-math.sin(a) * math.sin(e), math.cos(a) * math.sin(e), math.cos(e)],
                [math.sin(a) * math.cos(e), -math.cos(a) * math.cos(e), math.sin(e)],
            ]
        )
        R = cam.rotation_no_roll(a, e)
        np.testing.assert_allclose(R, expected, atol=1e-12)
        np.testing.assert_allclose(R @ cam.camera_centre(a, e, p.distance), [0, 0, p.distance], atol=1e-9)
        Rt = cam.rotation(a, e, p.theta)
        np.testing.assert_allclose(Rt @ Rt.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(Rt) == pytest.approx(1.0)


def test_front_view_sees_front_and_up_is_up():
    intr = cam.Intrinsics.from_lens(512, 512)
    pose = cam.Pose(0.0, 0.0, 0.0, 3.0)
    pts = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0, 0.5], [0, -0.5, 0]])
    uv, depth = cam.project_pose(pts, pose, intr)
    np.testing.assert_allclose(uv[0], [256, 256])
    assert uv[1, 0] > 256  # +X is to the right seen from the front
    assert uv[2, 1] < 256  # +Z is up on screen (v grows downwards)
    assert depth[3] < depth[0]  # the front (-Y) is nearer


def test_theta_turns_counter_clockwise():
    intr = cam.Intrinsics.from_lens(512, 512)
    pt = np.array([[0.5, 0, 0]])  # to the right of the centre at theta = 0
    uv, _ = cam.project_pose(pt, cam.Pose(0.0, 0.0, math.pi / 2, 3.0), intr)
    # Turned 90 deg counter-clockwise on screen, the point is straight above the centre.
    assert uv[0, 0] == pytest.approx(256, abs=1e-9)
    assert uv[0, 1] < 256


def test_projection_equals_pascal_rotate_after_projecting():
    intr = cam.Intrinsics(640, 480, 700.0, (330.0, 250.0))
    pts = RNG.uniform(-0.5, 0.5, size=(30, 3))
    for p in random_poses(40):
        uv, _ = cam.project_pose(pts, p, intr)
        R0 = cam.rotation_no_roll(p.azimuth, p.elevation)
        pc0 = (pts - cam.camera_centre(p.azimuth, p.elevation, p.distance)) @ R0.T
        x = intr.viewport * pc0[:, 0] / -pc0[:, 2]
        y = intr.viewport * pc0[:, 1] / -pc0[:, 2]
        c, s = math.cos(p.theta), math.sin(p.theta)
        u = intr.principal[0] + c * x - s * y
        v = intr.principal[1] - (s * x + c * y)
        np.testing.assert_allclose(uv, np.stack([u, v], 1), atol=1e-8)


def test_opencv_form_matches_projection():
    intr = cam.Intrinsics.from_lens(512, 384)
    pts = RNG.uniform(-0.5, 0.5, size=(25, 3))
    for p in random_poses(40):
        R, C = cam.extrinsics(p)
        uv, _ = cam.project(pts, R, C, intr)
        R_cv, t_cv = cam.opencv_extrinsics(R, C)
        h = (intr.K @ (pts @ R_cv.T + t_cv).T).T
        uv_cv = h[:, :2] / h[:, 2:]
        np.testing.assert_allclose(uv_cv + 0.5, uv, atol=1e-8)  # OpenCV: pixel centres on integers


def test_blender_matrix_world_columns_are_camera_axes():
    for p in random_poses(20):
        R, C = cam.extrinsics(p)
        M = cam.blender_matrix_world(R, C)
        np.testing.assert_allclose(M[:3, 3], C)
        # The camera looks down its -Z axis, at the origin.
        np.testing.assert_allclose(-M[:3, 2] * p.distance, -C, atol=1e-9)


def test_inverse_round_trip_full_ranges():
    for p in random_poses(500):
        R, C = cam.extrinsics(p)
        q = cam.pose_from_extrinsics(R, C)
        assert q.azimuth == pytest.approx(cam.wrap_angle(p.azimuth), abs=1e-9)
        assert q.elevation == pytest.approx(p.elevation, abs=1e-9)
        assert q.theta == pytest.approx(cam.wrap_angle(p.theta), abs=1e-9)
        assert q.distance == pytest.approx(p.distance)
        M = cam.blender_matrix_world(R, C)
        M[:3, :3] *= 2.5  # a scaled camera object still gives the same pose
        r = cam.pose_from_matrix_world(M)
        assert (r.azimuth, r.elevation, r.theta) == pytest.approx((q.azimuth, q.elevation, q.theta), abs=1e-9)


@pytest.mark.parametrize("elevation", [math.pi / 2, -math.pi / 2])
def test_inverse_at_poles_puts_roll_in_theta(elevation):
    p = cam.Pose(0.7, elevation, 0.2, 3.0)
    R, C = cam.extrinsics(p)
    q = cam.pose_from_extrinsics(R, C)
    assert q.azimuth == 0.0
    np.testing.assert_allclose(cam.rotation(q.azimuth, q.elevation, q.theta), R, atol=1e-9)


def test_intrinsics_from_lens_is_3ddst_camera():
    intr = cam.Intrinsics.from_lens(512, 512)
    assert intr.viewport == pytest.approx(560.0)
    assert intr.blender_lens() == pytest.approx(35.0)
    np.testing.assert_allclose(intr.K, [[560, 0, 255.5], [0, 560, 255.5], [0, 0, 1]])


def test_camera_record_fields():
    intr = cam.Intrinsics.from_lens(320, 240)
    rec = cam.camera_record(cam.Pose(0.1, 0.2, 0.3, 2.0), intr)
    assert rec["focal"] == 1.0 and rec["width"] == 320 and rec["height"] == 240
    assert rec["principal"] == [160.0, 120.0]
    assert np.asarray(rec["R"]).shape == (3, 3) and len(rec["C"]) == 3
