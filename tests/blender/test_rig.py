"""blender/rig.py and core/camera.py against Blender's own camera (pose-convention.md, "Blender")."""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from dst3d_addon.blender import rig
from dst3d_addon.core.camera import Intrinsics, Pose, extrinsics, pose_from_matrix_world, project


@pytest.fixture
def scene() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def random_pose(rng: np.random.Generator) -> Pose:
    """A pose over the full angle ranges, theta never 0, the camera outside the unit cube."""
    theta = rng.uniform(0.05, math.pi) * rng.choice([-1.0, 1.0])
    return Pose(
        float(rng.uniform(-math.pi, math.pi)),
        float(rng.uniform(-math.pi / 2, math.pi / 2)),
        float(theta),
        float(rng.uniform(1.5, 8.0)),
    )


def blender_pixels(scene: bpy.types.Scene, camera: bpy.types.Object, points: np.ndarray) -> np.ndarray:
    """Blender's projection of world points, in pose-convention.md's pixels (u = x W, v = (1 - y) H)."""
    width, height = scene.render.resolution_x, scene.render.resolution_y
    out = []
    for p in points:
        ndc = world_to_camera_view(scene, camera, Vector(p.tolist()))
        out.append((ndc.x * width, (1.0 - ndc.y) * height))
    return np.array(out)


@pytest.mark.parametrize(
    "intrinsics",
    [
        Intrinsics.from_lens(512, 384),
        Intrinsics.from_lens(384, 512),  # portrait: the sensor is still fitted to the width
        Intrinsics(512, 384, 560.0, (300.0, 170.0)),  # a shifted principal point
    ],
    ids=["landscape", "portrait", "shifted"],
)
def test_blender_projects_like_camera_md(scene, intrinsics):
    rng = np.random.default_rng(7)
    camera = rig.ensure_camera(scene)
    rig.set_intrinsics(scene, camera, intrinsics)
    assert scene.camera == camera
    worst = 0.0
    inside = 0
    for _ in range(200):
        pose = random_pose(rng)
        rig.set_pose(camera, pose)
        points = rng.uniform(-0.5, 0.5, size=(8, 3))
        R, C = extrinsics(pose)
        ours, depth = project(points, R, C, intrinsics)
        assert (depth > 0).all()
        theirs = blender_pixels(scene, camera, points)
        worst = max(worst, float(np.abs(ours - theirs).max()))
        inside += int(((ours >= 0) & (ours <= [intrinsics.width, intrinsics.height])).all(axis=1).sum())
    assert worst < 0.01
    assert inside > 800  # most points land in the image, so the comparison covers it


def test_blender_and_camera_md_disagree_on_a_wrong_pose(scene):
    """The check above can fail: a camera off by 0.01 rad of roll is caught."""
    intrinsics = Intrinsics.from_lens(512, 384)
    camera = rig.ensure_camera(scene)
    rig.set_intrinsics(scene, camera, intrinsics)
    pose = Pose(0.4, 0.3, 0.5, 3.0)
    rig.set_pose(camera, Pose(pose.azimuth, pose.elevation, pose.theta + 0.01, pose.distance))
    points = np.array([[0.5, 0.5, 0.5], [-0.5, 0.2, -0.4]])
    ours, _ = project(points, *extrinsics(pose), intrinsics)
    assert np.abs(ours - blender_pixels(scene, camera, points)).max() > 0.5


def test_matrix_world_gives_back_the_pose(scene):
    rng = np.random.default_rng(11)
    camera = rig.ensure_camera(scene)
    for _ in range(200):
        pose = random_pose(rng)
        if abs(pose.elevation) > math.pi / 2 - 1e-3:
            continue  # at the poles the azimuth is undefined (pose-convention.md); tested below
        rig.set_pose(camera, pose)
        back = pose_from_matrix_world(np.array(camera.matrix_world))
        assert back.azimuth == pytest.approx(pose.azimuth, abs=1e-5)
        assert back.elevation == pytest.approx(pose.elevation, abs=1e-5)
        assert back.theta == pytest.approx(pose.theta, abs=1e-5)
        assert back.distance == pytest.approx(pose.distance, rel=1e-6)
        assert np.allclose(rig.matrix_world_array(camera), np.array(camera.matrix_world))


def test_matrix_world_at_the_pole_gives_the_same_camera(scene):
    camera = rig.ensure_camera(scene)
    pose = Pose(1.0, math.pi / 2, 0.3, 2.5)
    rig.set_pose(camera, pose)
    back = pose_from_matrix_world(rig.matrix_world_array(camera))
    assert back.azimuth == 0.0
    R, C = extrinsics(pose)
    R2, C2 = extrinsics(back)
    np.testing.assert_allclose(R2, R, atol=1e-5)
    np.testing.assert_allclose(C2, C, atol=1e-5)
