"""The panel's operators in this process (the bpy module): sampled poses are the render stage's,
the live pose fields read and move the camera, the control image is the render stage's edge map."""

import math
from pathlib import Path

import bpy
import cv2
import numpy as np
import pytest

from dst3d_addon.blender import registration
from dst3d_addon.blender.camera_pose import keyed_pose, read_pose
from dst3d_addon.blender.control_preview import CONTROL_IMAGE_NAME, image_array
from dst3d_addon.blender.model import SAMPLE_MODEL, model_job, model_mesh, render_settings
from dst3d_addon.blender.properties import generation_settings
from dst3d_addon.core.generation_settings import SettingsError
from dst3d_addon.core.views import render_view, view_pose


@pytest.fixture(scope="module", autouse=True)
def registered():
    registration.register()
    yield
    registration.unregister()


@pytest.fixture()
def model() -> bpy.types.Object:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.dst3d.import_sample() == {"FINISHED"}
    return bpy.context.active_object


def test_buttons_that_cannot_work_are_disabled() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert not bpy.ops.dst3d.sample_poses.poll()
    assert not bpy.ops.dst3d.render_control.poll()
    assert bpy.ops.dst3d.import_sample.poll()


def test_sampled_poses_are_the_render_stages(model: bpy.types.Object) -> None:
    scene = bpy.context.scene
    model.location = (3.0, -2.0, 1.0)  # poses are relative to the object, wherever it stands
    model.rotation_euler = (0.0, 0.0, 0.8)
    s = scene.dst3d
    s.views, s.seed, s.sampling, s.theta_std, s.frame_start = 4, 11, "sphere", math.radians(10), 10
    assert bpy.ops.dst3d.sample_poses() == {"FINISHED"}
    camera = scene.camera
    settings, job = render_settings(scene), model_job(model)
    assert (job.class_name, job.model_id, job.synset) == ("airliner", "airliner", "n02690373")
    mesh = model_mesh(model, scene)
    assert (scene.frame_start, scene.frame_end) == (10, 13)
    for view in range(4):
        seed, expected = view_pose(settings, job, view, mesh)
        scene.frame_set(10 + view)
        keyed, keyed_seed = keyed_pose(camera, 10 + view)
        assert (keyed, keyed_seed) == (expected, seed)
        live, aim = read_pose(camera, model)
        assert aim < 1e-5
        assert math.remainder(live.azimuth - expected.azimuth, 2 * math.pi) == pytest.approx(0, abs=1e-5)
        assert (live.elevation, live.theta, live.distance) == pytest.approx(
            (expected.elevation, expected.theta, expected.distance), abs=1e-5
        )
        assert s.pose_distance == pytest.approx(expected.distance, abs=1e-5)


def test_pose_fields_move_the_camera_and_keys_stick(model: bpy.types.Object) -> None:
    scene = bpy.context.scene
    scene.dst3d.views = 3
    bpy.ops.dst3d.sample_poses()
    s = scene.dst3d
    scene.frame_set(2)
    s.pose_azimuth, s.pose_elevation, s.pose_theta, s.pose_distance = 1.0, -0.3, 0.2, 4.0
    scene.frame_set(3)
    scene.frame_set(2)
    pose, aim = read_pose(scene.camera, model)
    assert (pose.azimuth, pose.elevation, pose.theta, pose.distance) == pytest.approx(
        (1.0, -0.3, 0.2, 4.0), abs=1e-5
    )
    assert aim < 1e-5
    # a camera turned away is re-aimed by Aim at Model, keeping its distance
    scene.camera.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    assert read_pose(scene.camera, model)[1] > 0.1
    assert bpy.ops.dst3d.aim_camera() == {"FINISHED"}
    pose2, aim2 = read_pose(scene.camera, model)
    assert aim2 < 1e-5 and pose2.distance == pytest.approx(4.0, abs=1e-5)


def test_control_image_is_the_render_stages_edge_map(model: bpy.types.Object, tmp_path: Path) -> None:
    scene = bpy.context.scene
    s = scene.dst3d
    s.views, s.resolution_x, s.resolution_y = 2, 256, 192
    bpy.ops.dst3d.sample_poses()
    scene.frame_set(s.frame_start + 1)
    assert bpy.ops.dst3d.render_control() == {"FINISHED"}
    ours = image_array(bpy.data.images[CONTROL_IMAGE_NAME])[..., 0]
    record = render_view(tmp_path, render_settings(scene), model_job(model), 1, model_mesh(model, scene))
    theirs = cv2.imread(str(tmp_path / record["files"]["control"]), cv2.IMREAD_GRAYSCALE)
    assert ours.shape == theirs.shape == (192, 256)
    assert (theirs == 255).sum() > 100
    # the same view up to the float32 of Blender's camera matrix: a handful of pixels may differ
    assert (ours != theirs).mean() < 0.002


def test_realign_applies_the_edited_offsets(model: bpy.types.Object) -> None:
    before = model_mesh(model, bpy.context.scene).vertices
    model.dst3d.azimuth_offset = math.pi / 2
    model.dst3d.prompt = "A photo of a {class}"
    assert bpy.ops.dst3d.realign() == {"FINISHED"}
    obj = bpy.context.active_object
    after = model_mesh(obj, bpy.context.scene).vertices
    assert obj.name == "airliner" and obj.dst3d.prompt == "A photo of a {class}"
    assert len([o for o in bpy.context.scene.objects if o.type == "MESH"]) == 1
    # the model turned about +Z: its long axis (the fuselage, along Y) now lies along X
    assert np.ptp(before[:, 1]) > np.ptp(before[:, 0]) * 0.9
    assert np.ptp(after[:, 0]) == pytest.approx(np.ptp(before[:, 1]), rel=1e-5)


def test_generation_settings_from_the_panel(model: bpy.types.Object) -> None:
    scene = bpy.context.scene
    settings = generation_settings(scene, model, "tiny", None, "fp32")
    assert (settings.steps, settings.guidance, settings.pipeline) == (20, 9.0, "tiny")
    scene.dst3d.generation_preset, scene.dst3d.override_preset = "paper", True
    scene.dst3d.steps, scene.dst3d.generation_seed = 3, 5
    model.dst3d.prompt = "a {class} on a runway"
    settings = generation_settings(scene, model, "tiny", None, "auto")
    assert (settings.steps, settings.seed, settings.prompt) == (3, 5, "a {class} on a runway")
    model.dst3d.prompt = "a {klass}"
    with pytest.raises(SettingsError, match="klass"):
        generation_settings(scene, model, "tiny", None, "auto")


def test_sample_model_is_bundled() -> None:
    assert SAMPLE_MODEL.is_file()
