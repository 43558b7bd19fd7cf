"""Generation from the panel, in this process (the bpy module), with the tiny pipeline on the CPU.

Background mode runs no timers, so each job is driven step by step with `generate_session.tick`,
exactly what the operators' timers call. Checked: the preview lands in an Image that is the
camera's background image, with progress 1..n; cancel and a killed worker leave the previous image
and the next preview works; release ends the worker; torch never enters this process; export
writes a dataset the loaders read and the batch script finds complete (same code, same dataset);
buttons that cannot work say why; unregister ends the worker.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import bpy
import cv2
import numpy as np
import pytest

from dst3d_addon.blender import generate_session, registration
from dst3d_addon.blender.control_preview import image_array
from dst3d_addon.blender.generate_session import SESSION, tick
from dst3d_addon.blender.operators_generate import export_problem, preview_problem
from dst3d_addon.blender.preferences import ADDON_PACKAGE, get_preferences
from dst3d_addon.blender.preview_job import PREVIEW_IMAGE_NAME, PreviewJob
from dst3d_addon.core.generation_plan import load_generations
from dst3d_addon.core.records import load_annotations
from dst3d_addon.generation.client import WorkerConfig
from tests.batch_script import SAMPLE, run_batch

# All slow as one: the tests run in order through one scene and one worker (the release and cancel
# tests use the worker and the image the preview test made).
pytestmark = pytest.mark.slow

HEAVY = ("torch", "diffusers", "transformers", "accelerate")
_BEFORE: set[str] = set()


@pytest.fixture(autouse=True)
def _modules_at_start():
    """What was imported when the test began (other test files of the same run may import torch
    themselves; what counts is that nothing this test does in Blender's process imports it — the
    install test checks the same in a fresh process)."""
    _BEFORE.clear()
    _BEFORE.update(sys.modules)


def _heavy_imported() -> list[str]:
    return sorted(m for m in set(sys.modules) - _BEFORE if m.split(".")[0] in HEAVY)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    """The worker's environment (it inherits this process'): a private tiny cache, offline, 1 thread."""
    base = tmp_path_factory.mktemp("gen-env")
    values = {
        "DST3D_CACHE": str(base / "dst3d-cache"),
        "HF_HOME": str(base / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield dict(os.environ)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _configure(prefs: bpy.types.AddonPreferences) -> None:
    prefs.worker_runtime = "EXISTING"
    prefs.python_path = sys.executable
    prefs.model_preset = "tiny"
    prefs.device = "cpu"
    prefs.precision = "auto"


@pytest.fixture(scope="module", autouse=True)
def registered(env):
    registration.register()
    addon = bpy.context.preferences.addons.new()  # as enabling the extension does
    addon.module = ADDON_PACKAGE
    _configure(get_preferences(bpy.context))
    yield
    registration.unregister()
    bpy.context.preferences.addons.remove(addon)


@pytest.fixture(scope="module")
def scene() -> bpy.types.Scene:
    """The sample model, the panel's camera, 64x64 control images, 3 DDIM steps."""
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.dst3d.import_sample() == {"FINISHED"}
    assert bpy.ops.dst3d.add_camera() == {"FINISHED"}
    scene = bpy.context.scene
    s = scene.dst3d
    s.resolution_x, s.resolution_y = 64, 64
    s.override_preset, s.steps = True, 3
    return scene


def drive(limit: float = 180.0, until=None) -> tuple[str, bool]:
    """Tick the session's job (as the timer would) until it ends, or until `until(job)` holds."""
    deadline = time.monotonic() + limit
    while True:
        job = SESSION.job
        if until is not None and job is not None and until(job):
            return "", False
        ended, line, failed = tick(bpy.context)
        if ended:
            return line, failed
        assert time.monotonic() < deadline, f"job did not end: {job.status if job else None}"
        time.sleep(0.02)


def preview_pixels() -> np.ndarray:
    return image_array(bpy.data.images[PREVIEW_IMAGE_NAME])


def test_buttons_that_cannot_work_say_why() -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    assert preview_problem(bpy.context) == ("Select a mesh object (or import a model) first", None)
    assert not bpy.ops.dst3d.generate_preview.poll()
    assert export_problem(bpy.context)[0] == "Select the models to export (mesh objects)"
    bpy.ops.dst3d.import_sample()
    assert preview_problem(bpy.context) == ("The scene has no camera", "dst3d.add_camera")
    bpy.ops.dst3d.add_camera()
    prefs = get_preferences(bpy.context)
    prefs.worker_runtime = "MANAGED"  # not set up (in the test's user data files folder)
    problem, fix = preview_problem(bpy.context)
    assert "not set up yet" in problem and fix == "dst3d.setup_runtime"
    assert not bpy.ops.dst3d.generate_preview.poll()
    _configure(prefs)
    assert preview_problem(bpy.context) is None and bpy.ops.dst3d.generate_preview.poll()
    assert export_problem(bpy.context) == ("Choose a Dataset Folder", None)
    assert not bpy.ops.dst3d.release_worker.poll()  # no worker yet
    assert not bpy.ops.dst3d.cancel_generation.poll()


def test_preview_lands_in_the_camera_background(scene: bpy.types.Scene) -> None:
    assert bpy.ops.dst3d.generate_preview() == {"FINISHED"}  # started; its timer never runs here
    job = SESSION.job
    assert isinstance(job, PreviewJob)
    assert preview_problem(bpy.context)[0] == "Preview is running: wait, or cancel it"
    with pytest.raises(RuntimeError, match="Preview is running"):  # one job at a time
        bpy.ops.dst3d.generate_preview()
    line, failed = drive()
    assert not failed, line
    assert line.startswith("Preview 64x64, 3 steps, seed 0 in ")
    assert job.steps_seen == [1, 2, 3]
    image = bpy.data.images[PREVIEW_IMAGE_NAME]
    assert tuple(image.size) == (64, 64) and image.packed_file is not None
    pixels = image_array(image)
    generated = cv2.imread(job.item["output"], cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.array_equal(pixels[..., :3], generated)  # the worker's image, top row first
    camera = scene.camera.data
    assert camera.show_background_images
    assert [b.image for b in camera.background_images] == [image]
    assert SESSION.worker_pid is not None and bpy.ops.dst3d.release_worker.poll()
    assert _heavy_imported() == []


def test_cancel_stops_the_job_and_keeps_the_previous_image(scene: bpy.types.Scene) -> None:
    before = preview_pixels()
    scene.dst3d.steps = 300
    try:
        assert bpy.ops.dst3d.generate_preview() == {"FINISHED"}
        job = SESSION.job
        drive(until=lambda j: j.step >= 2)
        assert bpy.ops.dst3d.cancel_generation() == {"FINISHED"}
        line, failed = drive()
    finally:
        scene.dst3d.steps = 3
    assert failed and job.state == "cancelled" and line.startswith("Preview cancelled at step ")
    assert 2 <= job.step < 300
    assert np.array_equal(preview_pixels(), before)
    assert [b.image.name for b in scene.camera.data.background_images] == [PREVIEW_IMAGE_NAME]


def test_a_killed_worker_is_reported_and_the_next_preview_works(scene: bpy.types.Scene) -> None:
    before = preview_pixels()
    scene.dst3d.steps = 300
    try:
        bpy.ops.dst3d.generate_preview()
        drive(until=lambda j: j.step >= 1)
        pid = SESSION.worker_pid
        os.kill(pid, signal.SIGKILL)
        line, failed = drive()
    finally:
        scene.dst3d.steps = 3
    assert failed and f"the generation worker (pid {pid}) was killed by signal 9" in line
    assert "\n" not in line and SESSION.last_message == line
    assert np.array_equal(preview_pixels(), before)
    scene.dst3d.generation_seed = 1
    bpy.ops.dst3d.generate_preview()
    line, failed = drive()
    assert not failed and line.startswith("Preview 64x64, 3 steps, seed 1 ")
    assert SESSION.worker_pid not in (None, pid)
    assert not np.array_equal(preview_pixels(), before)  # another seed, another image


def test_release_ends_the_worker_process(scene: bpy.types.Scene) -> None:
    pid = SESSION.worker_pid
    assert pid is not None
    assert bpy.ops.dst3d.release_worker() == {"FINISHED"}
    assert SESSION.worker_pid is None and SESSION.last_message == f"Worker (pid {pid}) released"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not bpy.ops.dst3d.release_worker.poll()
    assert _heavy_imported() == []


def test_export_writes_the_batch_scripts_dataset(scene: bpy.types.Scene, env, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    s = scene.dst3d
    s.views, s.images_per_view, s.export_dir = 2, 1, str(out)
    model = bpy.data.objects["airliner"]
    model.select_set(True)
    assert export_problem(bpy.context) is None
    assert bpy.ops.dst3d.export_dataset() == {"FINISHED"}
    job = SESSION.job
    progress = []
    line, failed = drive(until=lambda j: progress.append(j.progress) and False)
    assert not failed, line
    assert line.startswith(f"Exported {out}: 2 views rendered (0 there already), 2 images generated")
    assert job.rendered == 2 and job.written == 2 and not job.skipped
    assert progress == sorted(progress)
    annotations = load_annotations(out)
    generations = load_generations(out)
    assert [a["id"] for a in annotations] == ["n02690373/airliner/000000", "n02690373/airliner/000001"]
    assert annotations[0]["cad"]["path"].endswith("airliner.glb")
    assert sorted(g["id"] for g in generations) == [a["id"] for a in annotations]
    for record in generations:
        assert cv2.imread(str(out / record["file"])).shape == (64, 64, 3)
    # The batch script finds the same dataset complete: same settings, same ids, same records.
    generate = run_batch(
        "generate", "--out", out, "--pipeline", "tiny", "--device", "cpu", "--steps", 3,
        "--seed", s.generation_seed, "--quiet", timeout=300, env=env,
    )  # fmt: skip
    assert generate.returncode == 0, generate.stderr
    assert "0 to generate, 2 already done" in generate.stderr
    render = run_batch(
        "render", "--cad", SAMPLE, "--class-name", "airliner", "--synset", "n02690373", "--views", 3,
        "--resolution", 64, "--out", out, "--quiet", timeout=300, env=env,
    )  # fmt: skip
    assert render.returncode == 0, render.stderr
    assert "1 to render, 2 already done" in render.stderr
    assert _heavy_imported() == []


def test_export_without_a_worker_renders_and_says_what_it_skipped(
    scene: bpy.types.Scene, tmp_path: Path
) -> None:
    prefs = get_preferences(bpy.context)
    prefs.worker_runtime = "MANAGED"
    try:
        scene.dst3d.views, scene.dst3d.export_dir = 2, str(tmp_path / "ds")
        bpy.data.objects["airliner"].select_set(True)
        assert bpy.ops.dst3d.export_dataset(wait=True) == {"FINISHED"}  # blocking, for scripts
        assert SESSION.job is None
        line, failed = SESSION.last_message, SESSION.last_failed
    finally:
        _configure(prefs)
    assert not failed and SESSION.last_skipped
    assert line.startswith(f"Rendered 2 views into {tmp_path / 'ds'}; generation skipped: ")
    assert len(load_annotations(tmp_path / "ds")) == 2
    assert not (tmp_path / "ds" / "generations.jsonl").exists()


def test_export_refusals_are_one_line(scene: bpy.types.Scene, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    scene.dst3d.export_dir = str(blocker / "ds")
    bpy.data.objects["airliner"].select_set(True)
    with pytest.raises(RuntimeError, match="a part of its path is a file"):  # the operator's ERROR report
        bpy.ops.dst3d.export_dataset()
    assert SESSION.job is None and SESSION.last_failed
    assert SESSION.last_message == (
        f"Dataset Folder {blocker / 'ds'}: cannot create the folder, a part of its path is a file"
    )
    bpy.ops.mesh.primitive_cube_add()
    bpy.data.objects["airliner"].select_set(True)
    scene.dst3d.export_dir = str(tmp_path / "ds2")
    with pytest.raises(RuntimeError, match="'Cube' was not imported from a CAD file"):
        bpy.ops.dst3d.export_dataset()
    assert not (tmp_path / "ds2").exists()
    bpy.data.objects.remove(bpy.data.objects["Cube"])


def test_unregister_ends_the_worker_and_register_again_works(scene: bpy.types.Scene) -> None:
    bpy.ops.dst3d.generate_preview()
    drive(until=lambda j: j.step >= 1)
    pid = SESSION.worker_pid
    assert pid is not None
    registration.unregister()
    try:
        assert not hasattr(bpy.types, "DST3D_OT_generate_preview")
        assert SESSION.job is None and SESSION.worker_pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        registration.register()
    _configure(get_preferences(bpy.context))
    assert bpy.ops.dst3d.generate_preview.poll()
    assert generate_session.user_folder().is_dir()


def test_session_makes_a_new_client_when_the_preferences_change(tmp_path: Path) -> None:
    session = generate_session.WorkerSession()
    first = WorkerConfig(python=sys.executable, env={}, log_path=tmp_path / "w.log")
    client = session.client(first)
    assert session.client(WorkerConfig(python=sys.executable, env={}, log_path=tmp_path / "w.log")) is client
    other = session.client(
        WorkerConfig(python=sys.executable, env={"HF_HOME": "x"}, log_path=tmp_path / "w.log")
    )
    assert other is not client and other.config.env == {"HF_HOME": "x"}
    session.shutdown()
