"""The built extension: build the linux-x64 zip with tools/build_extension.py, validate it with
Blender's validator, install it into a fresh user folder, enable it, run its operators, disable and
enable it again (in a subprocess: an installed extension leaves state in the process)."""

import importlib.util
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "build_extension.py"
SESSION = Path(__file__).with_name("ext_session.py")
PLATFORM = "linux-x64"
OPERATORS = {
    "import_cad",
    "import_sample",
    "realign",
    "add_camera",
    "aim_camera",
    "sample_poses",
    "render_control",
    "setup_runtime",
    "check_runtime",
    "cancel_runtime_job",
    "generate_preview",
    "export_dataset",
    "dataset_pictures",
    "prompt_add",
    "prompt_remove",
    "roll_prompt",
    "write_prompts",
    "cancel_generation",
    "release_worker",
}
PANELS = {
    "DST3D_PT_object",
    "DST3D_PT_camera_pose",
    "DST3D_PT_control",
    "DST3D_PT_generate",
    "DST3D_PT_export",
}


def _tool():
    spec = importlib.util.spec_from_file_location("build_extension", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Every test that uses built_zip (about 4 s to build) or session (about 23 s: a fresh Blender
# installs the zip) is marked slow; the others run in the fast subset.
@pytest.fixture(scope="module")
def built_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(TOOL), "--platforms", PLATFORM, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    zips = [Path(line) for line in done.stdout.split()]
    assert [z.name for z in zips] == ["dst3d-0.1.0-linux_x64.zip"]
    return zips[0]


@pytest.fixture(scope="module")
def session(built_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    user = tmp_path_factory.mktemp("blender-user")
    done = subprocess.run(
        [sys.executable, str(SESSION), str(built_zip), str(user)], capture_output=True, text=True, timeout=600
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("DST3D_REPORT ")]
    assert lines, f"no report (exit {done.returncode}): {done.stderr[-3000:]}"
    report = json.loads(lines[-1].removeprefix("DST3D_REPORT "))
    assert report["ok"], report.get("error")
    return report


@pytest.mark.slow
def test_zip_holds_the_package_and_only_its_platform_wheel(built_zip: Path) -> None:
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "dst3d_addon/blender/registration.py" in names and "assets/sample/airliner.glb" in names
    wheels = [n for n in names if n.endswith(".whl")]
    assert len(wheels) == 1 and "manylinux" in wheels[0] and "opencv_python_headless-4.10.0.84" in wheels[0]
    assert not [n for n in names if n.startswith(("tests/", "tools/", ".git", ".venv")) or "__pycache__" in n]


@pytest.mark.slow
def test_blender_validator_accepts_the_zip_and_the_source(built_zip: Path) -> None:
    tool = _tool()
    assert "success" in tool.validate(built_zip).lower()
    with pytest.raises(tool.BuildError, match="blender_ext validate failed"):
        tool.validate(built_zip.parent)  # a folder with no manifest


def test_build_tool_refuses_an_unknown_platform(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), "--platforms", "linux-arm64", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "build_extension.py: --platforms linux-arm64: the manifest declares only "
        "windows-x64, linux-x64, macos-arm64, macos-x64"
    ]


def test_wheel_platforms_map_to_blender_platforms() -> None:
    tool = _tool()
    assert tool.wheel_platforms("x-1-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") == [
        "linux-x64"
    ]
    assert tool.wheel_platforms("x-1-cp37-abi3-macosx_10_9_universal2.whl") == ["macos-x64", "macos-arm64"]
    assert tool.wheel_platforms("x-1-cp37-abi3-win_amd64.whl") == ["windows-x64"]
    with pytest.raises(tool.BuildError, match="unknown wheel platform tag"):
        tool.wheel_platforms("x-1-cp37-abi3-solaris_sparc.whl")


@pytest.mark.slow
def test_install_enables_cleanly_without_torch(session: dict) -> None:
    assert session["install"] == ["FINISHED"] and session["enabled"]
    assert session["warnings"] == {}
    assert set(session["operators"]) == OPERATORS
    assert set(session["panels"]) == PANELS
    assert session["cv2_wheel_installed"]
    assert "/extensions/user_default/dst3d/" in session["module_file"]
    assert session["torch_loaded"] is False and session["torch_loaded_after_check"] is False


@pytest.mark.slow
def test_import_operators_add_models(session: dict) -> None:
    assert session["import_sample"] == ["FINISHED"] and session["import_cad"] == ["FINISHED"]
    assert session["model"] == {"name": "airliner", "class": "airliner", "synset": "n02690373"}
    assert session["models_in_scene"] == ["airliner", "airliner.001"]  # the second import kept the first


@pytest.mark.slow
def test_sampled_poses_are_keyed_one_per_frame(session: dict) -> None:
    assert session["sample_poses"] == ["FINISHED"] and session["camera"] == "DST3D View"
    assert session["frames"] == [1, 5]
    for view in session["poses"]:
        keyed, live = view["keyed"], view["live"]
        assert math.remainder(keyed[0] - live[0], 2 * math.pi) == pytest.approx(0, abs=1e-5)
        assert live[1:] == pytest.approx(keyed[1:], abs=1e-5)
    assert len({round(v["keyed"][0], 6) for v in session["poses"]}) == 5


@pytest.mark.slow
def test_pose_edit_moves_the_camera_and_sticks(session: dict) -> None:
    assert session["pose_after_edit"] == pytest.approx([0.5, 2.5], abs=1e-5)


@pytest.mark.slow
def test_control_image_lands_in_an_image(session: dict) -> None:
    assert session["render_control"] == ["FINISHED"]
    assert session["control"]["size"] == [512, 512]
    assert 200 < session["control"]["line_pixels"] < 20000
    assert session["control_packed"]


@pytest.mark.slow
def test_runtime_preferences_and_check_job(session: dict) -> None:
    assert "not set up yet" in session["runtime_problem_managed"]
    assert session["runtime_problem_existing"] is None
    assert session["setup_poll_offline"] is False  # Blender's online access is off in background mode
    check = session["check"]
    assert check["state"] == "done" and check["polls"] > 0
    assert check["status"].startswith("Ready: torch ")


@pytest.mark.slow
def test_preview_through_the_installed_extension_and_release(session: dict) -> None:
    assert session["preview_op"] == ["FINISHED"]
    preview = session["preview"]
    assert not preview["failed"] and preview["line"].startswith("Preview 64x64, 2 steps, seed 0 in ")
    assert preview["steps_seen"] == [1, 2]
    assert preview["size"] == [64, 64] and preview["background"] == ["DST3D Preview"]
    # the worker's log is in the extension's user folder, never next to its code
    assert preview["log"].endswith("/extensions/.user/user_default/dst3d/generation-worker.log")
    assert session["torch_loaded_after_preview"] is False
    assert session["release_op"] == ["FINISHED"] and session["released_pid_gone"]
    line, failed = session["second_preview"]
    assert not failed, line


@pytest.mark.slow
def test_disable_and_enable_again(session: dict) -> None:
    off = session["after_disable"]
    assert off == {"enabled": False, "operators": [], "scene_has_settings": False, "worker_gone": True}
    on = session["after_enable"]
    assert on["enabled"] and set(on["operators"]) == OPERATORS


def test_legacy_bl_info_agrees_with_the_manifest() -> None:
    # Blender 3.4 to 4.1 read bl_info (a legacy add-on); 4.2+ the manifest. They must not disagree.
    import ast
    import tomllib

    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    tree = ast.parse((ROOT / "__init__.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "bl_info")
    bl_info = ast.literal_eval(node.value)
    assert bl_info["name"] == manifest["name"] and bl_info["description"] == manifest["tagline"]
    assert ".".join(map(str, bl_info["version"])) == manifest["version"]
    assert bl_info["blender"] == (3, 4, 0) and manifest["blender_version_min"] == "4.2.0"
