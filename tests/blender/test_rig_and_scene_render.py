"""Blender's camera against core.camera, and the Blender-rendered edge modes against our raster."""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import cv2
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from dst3d_addon.blender import rig
from dst3d_addon.blender.cad_import import import_cad
from dst3d_addon.blender.scene_render import SceneRenderer
from dst3d_addon.core.camera import Intrinsics, Pose, extrinsics, pose_from_matrix_world, project
from dst3d_addon.core.raster import rasterize

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "sample" / "airliner.glb"
RNG = np.random.default_rng(42)


def random_pose(distance: tuple[float, float] = (2.0, 6.0)) -> Pose:
    return Pose(
        float(RNG.uniform(-math.pi, math.pi)),
        float(RNG.uniform(-math.pi / 2 + 0.01, math.pi / 2 - 0.01)),
        float(RNG.uniform(-math.pi, math.pi)),
        float(RNG.uniform(*distance)),
    )


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def test_blender_camera_projects_like_camera_md(empty_scene):
    scene = empty_scene
    intr = Intrinsics.from_lens(512, 384)
    camera = rig.ensure_camera(scene)
    rig.set_intrinsics(scene, camera, intr)
    points = RNG.uniform(-0.5, 0.5, size=(20, 3))
    worst = 0.0
    for _ in range(200):
        pose = random_pose()
        rig.set_pose(camera, pose)
        bpy.context.view_layer.update()
        R, C = extrinsics(pose)
        uv, _ = project(points, R, C, intr)
        for p, (u, v) in zip(points, uv, strict=True):
            ndc = world_to_camera_view(scene, camera, Vector(p.tolist()))
            worst = max(worst, abs(ndc.x * intr.width - u), abs((1 - ndc.y) * intr.height - v))
        np.testing.assert_allclose(np.array(camera.matrix_world)[:3, 3], C, atol=1e-5)
    assert worst < 0.01


def test_pose_read_back_from_blender_camera(empty_scene):
    camera = rig.ensure_camera(empty_scene)
    for _ in range(50):
        pose = random_pose()
        rig.set_pose(camera, pose)
        back = pose_from_matrix_world(rig.matrix_world_array(camera))
        assert back.azimuth == pytest.approx(pose.azimuth, abs=1e-5)
        assert back.elevation == pytest.approx(pose.elevation, abs=1e-5)
        assert back.theta == pytest.approx(pose.theta, abs=1e-5)
        assert back.distance == pytest.approx(pose.distance, rel=1e-6)


@pytest.fixture
def airliner(empty_scene):
    return import_cad(str(SAMPLE))


def outline(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0


def test_shaded_render_matches_our_mask(airliner, empty_scene):
    intr = Intrinsics.from_lens(128, 96)
    renderer = SceneRenderer(empty_scene, [airliner.object], intr, "shaded", samples=2, denoise=False)
    try:
        for _ in range(3):
            pose = random_pose((1.6, 2.2))
            image = renderer.render(pose).astype(np.int16)
            assert image.shape == (96, 128, 3)
            background = np.median(np.concatenate([image[0], image[-1]]), axis=0)
            seen = np.abs(image - background).max(axis=2) > 6
            R, C = extrinsics(pose)
            mask = rasterize(airliner.vertices, airliner.faces, R, C, intr).mask
            assert mask.sum() > 100
            # Cycles' pixel filter blurs borders by about a pixel: compare with 1 px of slack.
            kernel = np.ones((3, 3), np.uint8)
            grown = cv2.dilate(mask.astype(np.uint8), kernel) > 0
            core = cv2.erode(mask.astype(np.uint8), kernel) > 0
            assert (seen & grown).sum() / seen.sum() >= 0.97
            assert (seen & core).sum() / core.sum() >= 0.9  # dark parts may be near the background
    finally:
        renderer.close()


def test_freestyle_lines_follow_the_outline(airliner, empty_scene):
    intr = Intrinsics.from_lens(160, 120)
    renderer = SceneRenderer(empty_scene, [airliner.object], intr, "freestyle")
    try:
        for _ in range(3):
            pose = random_pose((1.6, 2.2))
            lines = renderer.render(pose)
            assert lines.shape == (120, 160) and lines.dtype == np.uint8
            lit = lines > 64
            R, C = extrinsics(pose)
            mask = rasterize(airliner.vertices, airliner.faces, R, C, intr).mask
            edge = outline(mask)
            near_outline = cv2.dilate(edge.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            near_lines = cv2.dilate(lit.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            # Lines lie on the object (outline or interior creases), never on the background.
            on_object = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            assert lit[~on_object].sum() <= 0.01 * lit.sum()
            assert (lit & near_outline).sum() / lit.sum() > 0.6
            assert (edge & near_lines).sum() / edge.sum() > 0.9  # the silhouette is drawn
    finally:
        renderer.close()


def test_unknown_mode_refused(empty_scene):
    with pytest.raises(ValueError, match="freestyle"):
        SceneRenderer(empty_scene, [], Intrinsics.from_lens(32, 32), "pencil")
