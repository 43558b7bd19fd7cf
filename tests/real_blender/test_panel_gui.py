"""The panel in a real Blender window: the artist's whole path, under Xvfb, with real key events.

Blender starts with dst3d loaded as a legacy add-on from a fresh user scripts folder, and
`gui_driver.py` (inside Blender) walks the path through the panel's operators and timers. This
test starts Xvfb and Blender, presses the keys the driver asks for with `xdotool` (Ctrl+Tab to the
DST3D tab, arrow keys to scrub, Esc to cancel a preview), then checks the driver's report, the
screenshots and the exported dataset. Skipped, with the reason, where Xvfb, xdotool or a usable
Blender binary is missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dst3d_addon.core.generation_plan import load_generations
from dst3d_addon.core.records import load_annotations
from tests.batch_script import SAMPLE
from tests.real_blender.blender_binary import require_binary

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("gui_driver.py")
WORKER_PYTHON = os.environ.get("DST3D_TEST_WORKER_PYTHON") or sys.executable
SIZE = (1600, 1000)
#: What goes into a legacy add-on's folder (what the extension zip holds, without the wheel).
ADDON_FILES = ("__init__.py", "blender_manifest.toml", "dst3d_addon", "assets")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"no {name} on PATH (apt-get install xvfb xdotool; .ci/run installs them)")
    return path


def _start_xvfb(xvfb: str) -> tuple[subprocess.Popen, str]:
    """An Xvfb server on a free display (it prints the number it chose)."""
    read, write = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", f"{SIZE[0]}x{SIZE[1]}x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    return server, f":{number}"


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict:
    """Run the whole path once; returns the driver's report, with the work folder."""
    blender = require_binary()
    xvfb, xdotool = _tool("Xvfb"), _tool("xdotool")
    work = tmp_path_factory.mktemp("gui")
    scripts = work / "scripts"
    addon = scripts / "addons" / "dst3d"
    addon.mkdir(parents=True)
    for name in ADDON_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, addon / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, addon / name)
    import trimesh

    model = work / "airliner.obj"  # Debian's Blender 3.4 cannot import glTF: the sample as OBJ
    trimesh.load(SAMPLE, force="mesh").export(model)
    (work / "settings.json").write_text(
        json.dumps(
            {
                "model": str(model),
                "python": WORKER_PYTHON,
                "size": 64,
                "preview_steps": 20,
                "cancel_steps": 500,
            }
        )
    )
    server, display = _start_xvfb(xvfb)
    env = {
        **os.environ,
        "DISPLAY": display,
        "BLENDER_USER_SCRIPTS": str(scripts),
        "BLENDER_USER_CONFIG": str(work / "config"),
        "BLENDER_USER_DATAFILES": str(work / "datafiles"),
        "TMPDIR": str(work),
        "DST3D_CACHE": str(work / "dst3d-cache"),
        "HF_HOME": str(work / "hf-home"),
        "HF_HUB_OFFLINE": "1",
    }
    log = (work / "blender.log").open("wb")
    proc = subprocess.Popen(
        [
            blender,
            "--factory-startup",
            "-noaudio",
            "-p",
            "0",
            "0",
            str(SIZE[0]),
            str(SIZE[1]),
            "-P",
            str(DRIVER),
            "--",
            str(work),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    keys_env = {**os.environ, "DISPLAY": display}
    answered = 0
    deadline = time.monotonic() + 900
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            request = work / f"request-{answered + 1}.json"
            if request.exists():
                asked = json.loads(request.read_text())
                x, y = asked["at"]
                subprocess.run([xdotool, "mousemove", str(x), str(y)], env=keys_env, check=True)
                if asked.get("click"):
                    subprocess.run([xdotool, "click", "1"], env=keys_env, check=True)
                if asked.get("drag_to"):
                    x2, y2 = asked["drag_to"]
                    xdo = [xdotool, "mousedown", "1", "sleep", "0.3"]
                    for i in range(1, 6):  # in steps, as a hand moves
                        xdo += [
                            "mousemove",
                            str(x + (x2 - x) * i // 5),
                            str(y + (y2 - y) * i // 5),
                            "sleep",
                            "0.2",
                        ]
                    subprocess.run([*xdo, "mouseup", "1"], env=keys_env, check=True)
                if asked.get("wheel"):
                    wheel = [xdotool, "click", "--repeat", str(asked["wheel"]), "--delay", "30", "5"]
                    subprocess.run(wheel, env=keys_env, check=True)
                for key in asked["keys"]:
                    subprocess.run([xdotool, "key", key], env=keys_env, check=True)
                answered += 1
                (work / f"done-{answered}").touch()
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        server.terminate()
        server.wait()
        log.close()
    report_path = work / "report.json"
    assert report_path.exists(), (work / "blender.log").read_text()[-3000:]
    report = json.loads(report_path.read_text())
    report["work"] = str(work)
    report["exit"] = proc.returncode
    print(
        json.dumps(
            {k: report.get(k) for k in ("idle_gaps", "preview_gaps", "spent_preview", "spent")}, indent=1
        )
    )
    assert report.get("ok"), report.get("error") or report["steps"]
    return report


def test_the_whole_path_runs(session):
    assert session["enabled"] and session["dst3d_tab"]
    assert session["sidebar_width"][1] > session["sidebar_width"][0] + 100  # dragged wider
    assert session["steps"][-1] == "done"
    assert session["import"] == ["FINISHED"] and session["model"] == "airliner"
    assert session["add_camera"] == ["FINISHED"] and session["sample_poses"] == ["FINISHED"]


def test_scrubbing_moves_the_readout(session):
    scrub = session["scrub"]
    assert scrub["frames"][1] == scrub["frames"][0] + 2
    azimuth = math.remainder(scrub["readout"][0] - scrub["keyed"][0], 2 * math.pi)
    assert azimuth == pytest.approx(0, abs=1e-5)
    assert scrub["readout"][1:] == pytest.approx(scrub["keyed"][1:], abs=1e-5)


def test_editing_the_azimuth_moves_the_camera(session):
    edit = session["edit"]
    assert edit["moved"]
    assert edit["camera_pose"][0] == pytest.approx(edit["asked"], abs=1e-5)


def test_preview_through_the_modal_operator(session):
    assert session["preview_op"] == ["RUNNING_MODAL"]
    assert not session["preview"]["failed"], session["preview"]["line"]
    assert session["preview"]["line"].startswith("Preview 64x64, 20 steps")
    assert any(s.startswith("Step ") for s in session["preview_statuses"])
    assert session["background"] == ["DST3D Preview"]


def test_preview_shows_in_the_camera_view(session):
    shot = cv2.imread(
        str(Path(session["work"]) / "screens" / next(s for s in session["screens"] if "in-camera" in s))
    )
    x0, y0, x1, y1 = (int(v) for v in session["camera_frame"]["box"])
    inside = shot[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
    assert inside.size and inside.std() > 20, "the camera frame does not show the noisy preview"


def test_escape_cancels_and_keeps_the_previous_image(session):
    assert session["cancel_op"] == ["RUNNING_MODAL"]
    assert session["cancel"]["line"].startswith("Preview cancelled at step")
    assert session["preview_restored"]


def test_release_ends_the_worker(session):
    assert session["release_op"] == ["FINISHED"]
    assert session["released"]["pid"] and not session["released"]["alive"]


def test_export_from_the_panel_validates(session):
    assert session["export_op"] == ["RUNNING_MODAL"]
    assert not session["export"]["failed"], session["export"]["line"]
    out = Path(session["work"]) / "export"
    records = load_annotations(out)
    assert len(records) == 2
    images = load_generations(out)
    assert len(images) == 2 and all((out / g["file"]).is_file() for g in images)


def test_screenshots_of_every_stage(session):
    screens = Path(session["work"]) / "screens"
    names = sorted(p.name for p in screens.glob("*.png"))
    assert names == sorted(session["screens"]) and len(names) >= 10
    for name in names:
        image = cv2.imread(str(screens / name))
        assert image.shape[:2] == (SIZE[1], SIZE[0]) and np.ptp(image) > 0


def test_the_ui_stays_responsive_while_the_worker_runs(session):
    # A 0.05 s timer while the worker generates, the viewport looking through the camera. Most gaps
    # are the timer's own; the long ones are Blender redrawing the camera view and the sidebar,
    # which with software OpenGL on a busy machine take seconds (the README gives the figures).
    # dst3d's own work on the main thread, its timer ticks and panel drawing, must stay small.
    gaps = session["preview_gaps"]
    assert gaps["calls"] > 20
    assert gaps["median_s"] < 0.1, gaps
    assert gaps["max_s"] < 10, gaps  # a stall of the main thread, not a redraw
    spent = session["spent_preview"]
    assert spent["tick"]["max_s"] < 0.1, spent
    assert all(v["max_s"] < 0.1 for k, v in spent.items() if k.startswith("draw ")), spent
