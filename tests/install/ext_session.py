"""Install the built extension into a fresh Blender user folder and use it; prints one JSON report.

    python tests/install/ext_session.py ZIP USER_FOLDER

Run in its own process by test_install.py (an installed extension leaves state behind). Every
check is recorded in the report; the test asserts on it. Blender runs in background mode, so no
timers or modal operators run: the runtime job and the preview are driven step by step, as the
operators' timers would.
"""

import importlib
import json
import os
import sys
import time
import traceback

ZIP, USER = sys.argv[1], sys.argv[2]
os.environ["BLENDER_USER_RESOURCES"] = USER

import bpy  # noqa: E402  (after BLENDER_USER_RESOURCES)

addon_utils = importlib.import_module("addon_utils")  # on the path once bpy is imported

report: dict = {"steps": []}
MODULE = "bl_ext.user_default.dst3d"


def step(name: str) -> None:
    report["steps"].append(name)


def operators() -> list[str]:
    return sorted(name for name in dir(bpy.ops.dst3d))


try:
    t0 = time.monotonic()
    step("install")
    report["install"] = sorted(
        bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default", enable_on_install=True)
    )
    report["install_s"] = time.monotonic() - t0
    report["enabled"] = MODULE in bpy.context.preferences.addons
    report["warnings"] = {k: list(v) for k, v in addon_utils._extensions_warnings_get().items()}
    report["operators"] = operators()
    report["panels"] = sorted(n for n in dir(bpy.types) if n.startswith("DST3D_PT_"))
    report["torch_loaded"] = "torch" in sys.modules
    ext = sys.modules[MODULE]
    report["module_file"] = ext.__file__
    site = os.path.join(USER, "extensions", ".local", "lib", "python3.11", "site-packages")
    report["cv2_wheel_installed"] = os.path.isdir(os.path.join(site, "cv2"))

    step("import sample")
    bpy.ops.wm.read_homefile(use_empty=True)  # keeps the preferences (and the extension)
    report["import_sample"] = sorted(bpy.ops.dst3d.import_sample())
    obj = bpy.context.active_object
    report["model"] = {"name": obj.name, "class": obj.dst3d.class_name, "synset": obj.dst3d.synset}

    step("import cad (file browser operator)")
    sample = os.path.join(os.path.dirname(ext.__file__), "assets", "sample", "airliner.glb")
    report["import_cad"] = sorted(
        bpy.ops.dst3d.import_cad(filepath=sample, class_name="plane", forward="-Y", up="Z")
    )
    report["models_in_scene"] = sorted(o.name for o in bpy.context.scene.objects if o.type == "MESH")

    step("sample poses")
    scene = bpy.context.scene
    scene.dst3d.views = 5
    scene.dst3d.seed = 7
    report["sample_poses"] = sorted(bpy.ops.dst3d.sample_poses())
    camera = scene.camera
    report["camera"] = camera.name
    report["frames"] = [scene.frame_start, scene.frame_end]
    camera_pose = importlib.import_module(MODULE + ".dst3d_addon.blender.camera_pose")
    poses = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        keyed, _seed = camera_pose.keyed_pose(camera, frame)
        live = [
            scene.dst3d.pose_azimuth,
            scene.dst3d.pose_elevation,
            scene.dst3d.pose_theta,
            scene.dst3d.pose_distance,
        ]
        poses.append({"keyed": [keyed.azimuth, keyed.elevation, keyed.theta, keyed.distance], "live": live})
    report["poses"] = poses

    step("set and read a pose")
    scene.frame_set(scene.frame_start)
    scene.dst3d.pose_elevation = 0.5
    scene.dst3d.pose_distance = 2.5
    scene.frame_set(scene.frame_start + 1)
    scene.frame_set(scene.frame_start)  # the edit was keyed: scrubbing keeps it
    report["pose_after_edit"] = [scene.dst3d.pose_elevation, scene.dst3d.pose_distance]

    step("render control")
    report["render_control"] = sorted(bpy.ops.dst3d.render_control())
    image = bpy.data.images["DST3D Control"]
    preview = importlib.import_module(MODULE + ".dst3d_addon.blender.control_preview")
    pixels = preview.image_array(image)
    report["control"] = {"size": list(image.size), "line_pixels": int((pixels[..., 0] == 255).sum())}
    report["control_packed"] = image.packed_file is not None

    step("preferences")
    prefs = bpy.context.preferences.addons[MODULE].preferences
    preferences = importlib.import_module(MODULE + ".dst3d_addon.blender.preferences")
    report["runtime_problem_managed"] = preferences.runtime_problem(bpy.context)
    prefs.worker_runtime = "EXISTING"
    # The worker needs torch: this Python, or the one CI names when this is a bpy-only environment.
    prefs.python_path = os.environ.get("DST3D_TEST_WORKER_PYTHON") or sys.executable
    report["runtime_problem_existing"] = preferences.runtime_problem(bpy.context)
    report["setup_poll_offline"] = bpy.ops.dst3d.setup_runtime.poll()

    step("check runtime job, driven step by step")
    runtime_ops = importlib.import_module(MODULE + ".dst3d_addon.blender.operators_runtime")
    job = runtime_ops.check_job(prefs)
    polls = 0
    while not job.poll():
        polls += 1
        time.sleep(0.05)
    report["check"] = {"state": job.state, "polls": polls, "status": runtime_ops.finish(job, prefs)}
    report["torch_loaded_after_check"] = "torch" in sys.modules

    step("generate preview, driven step by step")
    os.environ.update({"DST3D_CACHE": os.path.join(USER, "dst3d-cache"), "HF_HUB_OFFLINE": "1"})
    prefs.model_preset, prefs.device = "tiny", "cpu"
    scene.dst3d.resolution_x = scene.dst3d.resolution_y = 64
    scene.dst3d.override_preset, scene.dst3d.steps = True, 2
    session = importlib.import_module(MODULE + ".dst3d_addon.blender.generate_session")

    def drive() -> tuple[str, bool]:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ended, line, failed = session.tick(bpy.context)  # what the operator's timer runs
            if ended:
                return line, failed
            time.sleep(0.05)
        raise TimeoutError("the preview did not end")

    report["preview_op"] = sorted(bpy.ops.dst3d.generate_preview())
    job = session.SESSION.job
    line, failed = drive()
    preview_image = bpy.data.images.get("DST3D Preview")
    report["preview"] = {
        "line": line,
        "failed": failed,
        "steps_seen": job.steps_seen,
        "size": list(preview_image.size) if preview_image else None,
        "background": [b.image.name for b in scene.camera.data.background_images if b.image],
        "log": str(session.SESSION._client.log_path),
    }
    report["torch_loaded_after_preview"] = "torch" in sys.modules

    step("release the worker")
    pid = session.SESSION.worker_pid
    report["release_op"] = sorted(bpy.ops.dst3d.release_worker())
    try:
        os.kill(pid, 0)
        report["released_pid_gone"] = False
    except ProcessLookupError:
        report["released_pid_gone"] = True

    step("a worker running at disable")
    bpy.ops.dst3d.generate_preview()
    report["second_preview"] = drive()
    pid = session.SESSION.worker_pid

    step("disable and enable")
    addon_utils.disable(MODULE, default_set=True)
    try:
        os.kill(pid, 0)
        worker_gone = False
    except ProcessLookupError:
        worker_gone = True
    report["after_disable"] = {
        "enabled": MODULE in bpy.context.preferences.addons,
        "operators": operators(),
        "scene_has_settings": hasattr(bpy.types.Scene, "dst3d"),
        "worker_gone": worker_gone,
    }
    addon_utils.enable(MODULE, default_set=True)
    report["after_enable"] = {"enabled": MODULE in bpy.context.preferences.addons, "operators": operators()}
    report["ok"] = True
except Exception:
    report["ok"] = False
    report["error"] = traceback.format_exc()

print("DST3D_REPORT " + json.dumps(report), flush=True)
