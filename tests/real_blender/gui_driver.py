"""Drives dst3d's panel in a real Blender window (under Xvfb) along an artist's whole path.

    blender --factory-startup -noaudio -P tests/real_blender/gui_driver.py -- WORK_FOLDER

Run by test_panel_gui.py, which copies the add-on into a user scripts folder, starts Xvfb and
Blender, and answers this script's requests for real input events (`xdotool`): the script writes
`WORK/request-N.json` ({"keys": [...], "at": [x, y]}: move the pointer there, press the keys) and
waits for `WORK/done-N`. Everything else goes through Blender's own operators, invoked in the
window's context as the panel's buttons invoke them, and timers: import, camera, sample poses,
scrub (arrow keys), edit the azimuth, render the control image, Generate Preview through the modal
operator (a 0.05 s probe timer measures the gaps while the worker runs), cancel one with Esc,
release the worker, export a small dataset. Screenshots go to WORK/screens; `WORK/report.json`
holds what the test checks. Blender quits at the end (or on an error, with the traceback in the
report).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import addon_utils
import bpy

WORK = Path(sys.argv[sys.argv.index("--") + 1])
SETTINGS = json.loads((WORK / "settings.json").read_text())
SCREENS = WORK / "screens"
SCREENS.mkdir(exist_ok=True)
PROBE_S = 0.05

report: dict = {"steps": [], "screens": [], "blender": bpy.app.version_string}


def save_report() -> None:
    tmp = WORK / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(WORK / "report.json")


# ------------------------------------------------------------------------------------ the window


def window() -> bpy.types.Window:
    return bpy.context.window_manager.windows[0]


def view3d() -> tuple[bpy.types.Area, bpy.types.Region, bpy.types.Region]:
    """The 3D viewport area, its main region and its sidebar region."""
    area = next(a for a in window().screen.areas if a.type == "VIEW_3D")
    main = next(r for r in area.regions if r.type == "WINDOW")
    ui = next(r for r in area.regions if r.type == "UI")
    return area, main, ui


def override() -> dict:
    """The context of a click in the 3D viewport's sidebar (where the panel's buttons are)."""
    area, _main, ui = view3d()
    return {"window": window(), "screen": window().screen, "area": area, "region": ui}


def run_op(op: Callable, *args, **kwargs) -> list[str]:
    with bpy.context.temp_override(**override()):
        return sorted(op(*args, **kwargs))


def screen_point(region: bpy.types.Region, fx: float, fy: float) -> list[int]:
    """X11 coordinates of the point at fractions (fx, fy) of a region (fy from the top)."""
    x = region.x + int(fx * region.width)
    y = window().height - (region.y + int((1 - fy) * region.height))
    return [x, y]


_REQUESTS = iter(range(1, 10**6))


def request(
    keys: list[str], at: list[int], click: bool = False, drag_to: list[int] | None = None, wheel: int = 0
) -> Callable[[], bool]:
    """Ask the test for real X events (xdotool): move the pointer to `at`, then click, drag the left
    button to `drag_to`, turn the wheel down `wheel` notches, press `keys`; returns 'done yet?'."""
    number = next(_REQUESTS)
    path = WORK / f"request-{number}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": keys, "at": at, "click": click, "drag_to": drag_to, "wheel": wheel}))
    tmp.replace(path)
    done = WORK / f"done-{number}"
    return done.exists


def screenshot(name: str) -> None:
    path = SCREENS / f"{len(report['screens']) + 1:02d}-{name}.png"
    with bpy.context.temp_override(window=window()):
        bpy.ops.screen.screenshot(filepath=str(path))
    report["screens"].append(path.name)
    PROBE.cut()


# ----------------------------------------------------------------------- instruments (test only)


class Probe:
    """A 0.05 s timer: when it really runs shows how long Blender's main thread was busy.

    The driver's own screenshots (a full redraw and a PNG) are left out: `screenshot` ends the
    current segment, and gaps are measured within segments.
    """

    def __init__(self) -> None:
        self.segments: list[list[tuple[float, str]]] = []
        self.recording = False
        self.statuses: list[str] = []

    def __call__(self) -> float:
        if self.recording:
            job = addon().generate_session.SESSION.job
            status = job.status if job is not None else ""
            self.segments[-1].append((time.perf_counter(), status))
            if job is not None and (not self.statuses or self.statuses[-1] != job.status):
                self.statuses.append(job.status)
        return PROBE_S

    def start(self) -> None:
        self.segments, self.statuses, self.recording = [[]], [], True

    def cut(self) -> None:
        """Leave out the time until the next call (the driver is busy with something of its own)."""
        if self.recording:
            self.segments.append([])

    def stop(self) -> dict:
        self.recording = False
        gaps = [(b[0] - a[0], b[1]) for segment in self.segments for a, b in itertools.pairwise(segment)]
        if not gaps:
            return {"calls": 0}
        values = sorted(g for g, _ in gaps)
        worst = max(gaps)
        return {
            "calls": sum(len(s) for s in self.segments),
            "median_s": round(statistics.median(values), 3),
            "p90_s": round(values[int(0.9 * (len(values) - 1))], 3),
            "p99_s": round(values[int(0.99 * (len(values) - 1))], 3),
            "max_s": round(worst[0], 3),
            "max_during": worst[1],
            "over_0.2_s": sum(1 for g in values if g > 0.2),
            "seconds": round(sum(values), 1),
        }


PROBE = Probe()
#: Seconds spent in the add-on's own code on the main thread, by what ran (instrumented below).
SPENT: dict[str, list[float]] = {}


def timed(name: str, function: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT.setdefault(name, []).append(time.perf_counter() - t0)

    return wrapper


def timed_draw(name: str, draw: Callable) -> Callable:
    """A panel's draw, timed (Blender passes a method its arguments by its declared parameters)."""

    def wrapper(self, context):
        t0 = time.perf_counter()
        try:
            return draw(self, context)
        finally:
            SPENT.setdefault(name, []).append(time.perf_counter() - t0)

    return wrapper


def spent_summary() -> dict:
    return {
        name: {"calls": len(v), "total_s": round(sum(v), 3), "max_s": round(max(v), 4)}
        for name, v in SPENT.items()
        if v
    }


def viewport_draws(_self=None) -> None:
    SPENT.setdefault("viewport_draw_call", []).append(0.0)


class Addon:
    """The add-on's modules, imported by Blender as the legacy add-on `dst3d`."""

    def __init__(self) -> None:
        import importlib

        base = "dst3d.dst3d_addon.blender."
        for name in ("generate_session", "operators_generate", "camera_pose", "preview_job", "panels"):
            setattr(self, name, importlib.import_module(base + name))


_ADDON: Addon | None = None


def addon() -> Addon:
    global _ADDON
    if _ADDON is None:
        _ADDON = Addon()
    return _ADDON


def instrument() -> None:
    """Time the add-on's timer work and panel drawing (module attributes, looked up at call time)."""
    a = addon()
    a.operators_generate.tick = timed("tick", a.generate_session.tick)
    for cls in a.panels.classes:
        if not issubclass(cls, bpy.types.Panel):
            continue  # the UI lists draw their rows, not a panel
        cls.draw = timed_draw(f"draw {cls.bl_label}", cls.draw)
    bpy.types.SpaceView3D.draw_handler_add(viewport_draws, (), "WINDOW", "POST_PIXEL")


# ------------------------------------------------------------------------------- the artist's path


def wait(condition: Callable[[], bool], seconds: float, what: str) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds} s for {what}")
        yield


def pause(seconds: float) -> Iterator[None]:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield


def step(name: str) -> None:
    report["steps"].append(name)
    save_report()


def path() -> Iterator[None]:
    scene = bpy.context.scene
    a = addon()
    session = a.generate_session.SESSION
    area, main, ui = view3d()
    area.spaces.active.show_region_ui = True
    # The artist's layout: an Image Editor where the Outliner was, for the control image and the
    # preview (without one, dst3d opens a new window, which without a window manager covers this one).
    outliner = next(a for a in window().screen.areas if a.type == "OUTLINER")
    outliner.type = "IMAGE_EDITOR"
    area, main, ui = view3d()
    yield from pause(1.0)
    step("start")
    screenshot("start")

    step("sidebar tab")
    # The artist clicks the DST3D tab at the sidebar's right edge, below Item, Tool and View. Blender
    # 3.4 does not say where a tab is: click down the tab column until DST3D's panels draw.
    drawn = SPENT.setdefault("draw Object", [])
    x = ui.x + ui.width - 8
    top = window().height - (ui.y + ui.height)
    for offset in range(110, 400, 12):
        count = len(drawn)
        yield from wait(request([], [x, top + offset], click=True), 30, "a click on the tabs")
        try:
            yield from wait(lambda count=count: len(drawn) > count, 3.0, "a redraw")
        except TimeoutError:
            continue
        report["tab_click"] = [x, top + offset]
        break
    report["dst3d_tab"] = len(drawn) > 0
    # Drag the sidebar's left edge: wider, so that its labels read in full.
    width = ui.width
    edge = screen_point(ui, 0.0, 0.5)
    # (the edge to grab is the panels' border, a few pixels inside the region)
    yield from wait(request([], [edge[0] + 7, edge[1]], drag_to=[edge[0] - 163, edge[1]]), 30, "a drag")
    area, main, ui = view3d()
    yield from wait(lambda: view3d()[2].width > width + 100, 10, "a wider sidebar")
    report["sidebar_width"] = [width, view3d()[2].width]
    area, main, ui = view3d()
    yield from pause(0.5)
    screenshot("dst3d-tab")

    step("delete the default cube")
    # The factory scene's cube (selected) would hide the model: Delete over the viewport.
    yield from wait(request(["Delete"], screen_point(main, 0.5, 0.5)), 30, "Delete")
    yield from wait(lambda: "Cube" not in scene.objects, 10, "the cube to go")

    step("import")
    report["import"] = run_op(
        bpy.ops.dst3d.import_cad, filepath=SETTINGS["model"], class_name="airliner", synset="n02690373"
    )
    obj = bpy.context.view_layer.objects.active
    report["model"] = obj.name if obj else None
    yield from pause(0.5)

    step("add camera")
    report["add_camera"] = run_op(bpy.ops.dst3d.add_camera)
    step("sample poses")
    scene.dst3d.views = 5
    report["sample_poses"] = run_op(bpy.ops.dst3d.sample_poses)
    camera = scene.camera
    yield from pause(0.5)
    screenshot("sampled")

    step("scrub")
    start = scene.frame_current
    for _ in range(2):
        yield from wait(request(["Right"], screen_point(main, 0.5, 0.5)), 30, "Right")
        yield from pause(0.3)
    keyed, _seed = a.camera_pose.keyed_pose(camera, scene.frame_current)
    readout = [
        scene.dst3d.pose_azimuth,
        scene.dst3d.pose_elevation,
        scene.dst3d.pose_theta,
        scene.dst3d.pose_distance,
    ]
    report["scrub"] = {
        "frames": [start, scene.frame_current],
        "keyed": [keyed.azimuth, keyed.elevation, keyed.theta, keyed.distance],
        "readout": readout,
    }
    screenshot("scrubbed")

    step("edit azimuth")
    before = [list(row) for row in camera.matrix_world]
    scene.dst3d.pose_azimuth = readout[0] + 0.5  # what typing into the Azimuth field does
    pose, _aim = a.camera_pose.read_pose(camera, obj)
    report["edit"] = {
        "asked": readout[0] + 0.5,
        "camera_pose": [pose.azimuth, pose.elevation, pose.theta, pose.distance],
        "moved": before != [list(row) for row in camera.matrix_world],
    }
    yield from pause(0.3)

    step("render control")
    scene.dst3d.resolution_x = scene.dst3d.resolution_y = SETTINGS["size"]
    report["render_control"] = run_op(bpy.ops.dst3d.render_control)
    report["windows_after_control"] = len(bpy.context.window_manager.windows)
    yield from pause(0.5)
    screenshot("control")

    step("idle probe")
    yield from pause(2.0)
    PROBE.start()
    yield from pause(5.0)
    report["idle_gaps"] = PROBE.stop()

    step("camera view")
    # Numpad 0 over the viewport: the artist looks through the camera, where the preview will show.
    yield from wait(request(["KP_0"], screen_point(main, 0.5, 0.5)), 30, "Numpad 0")
    yield from wait(lambda: main.data.view_perspective == "CAMERA", 10, "the camera view")
    report["camera_view"] = main.data.view_perspective
    yield from pause(2.0)

    step("preview")
    # Scroll the sidebar down to the Generate panel (the wheel over the sidebar).
    yield from wait(request([], screen_point(ui, 0.5, 0.5), wheel=30), 30, "the wheel")
    yield from pause(1.0)
    scene.dst3d.override_preset = True
    scene.dst3d.steps = SETTINGS["preview_steps"]
    SPENT.pop("tick", None)
    PROBE.start()
    t0 = time.perf_counter()
    report["preview_op"] = run_op(bpy.ops.dst3d.generate_preview, "INVOKE_DEFAULT")
    report["preview_invoke_s"] = round(time.perf_counter() - t0, 3)
    shown = False
    deadline = time.monotonic() + 300
    while session.job is not None and not session.job.done:
        if not shown and session.job.status.startswith("Step"):
            shown = True
            screenshot("preview-progress")
        if time.monotonic() > deadline:
            raise TimeoutError("the preview did not end")
        yield
    report["preview_gaps"] = PROBE.stop()
    report["preview_statuses"] = PROBE.statuses
    yield from pause(0.5)
    report["preview"] = {"line": session.last_message, "failed": session.last_failed}
    report["background"] = [b.image.name for b in camera.data.background_images if b.image]
    report["spent_preview"] = spent_summary()
    yield from pause(1.0)
    screenshot("preview-in-camera")
    report["camera_frame"] = camera_frame(scene, camera, main)

    step("cancel with Esc")
    preview_before = list(bpy.data.images[a.preview_job.PREVIEW_IMAGE_NAME].pixels[:64])
    scene.dst3d.steps = SETTINGS["cancel_steps"]
    report["cancel_op"] = run_op(bpy.ops.dst3d.generate_preview, "INVOKE_DEFAULT")
    yield from wait(lambda: session.job is None or session.job.status.startswith("Step 2"), 300, "step 2")
    screenshot("before-esc")
    escape = request(["Escape"], screen_point(main, 0.5, 0.5))
    yield from wait(escape, 30, "Escape")
    yield from wait(lambda: session.job is None or session.job.done, 60, "the cancelled preview to end")
    yield from pause(0.5)
    report["cancel"] = {"line": session.last_message, "failed": session.last_failed}
    report["preview_restored"] = (
        list(bpy.data.images[a.preview_job.PREVIEW_IMAGE_NAME].pixels[:64]) == preview_before
    )
    screenshot("cancelled")

    step("release")
    pid = session.worker_pid
    report["release_op"] = run_op(bpy.ops.dst3d.release_worker)
    yield from pause(0.5)
    report["released"] = {"pid": pid, "alive": _alive(pid)}

    step("export")
    for o in scene.objects:
        o.select_set(o == obj)
    scene.dst3d.export_dir = str(WORK / "export")
    scene.dst3d.views = 2
    scene.dst3d.images_per_view = 1
    scene.dst3d.steps = 2
    report["export_op"] = run_op(bpy.ops.dst3d.export_dataset, "INVOKE_DEFAULT")
    yield from pause(0.2)
    screenshot("export-running")
    yield from wait(lambda: session.job is None or session.job.done, 300, "the export")
    yield from pause(0.5)
    report["export"] = {"line": session.last_message, "failed": session.last_failed}
    screenshot("exported")
    report["spent"] = spent_summary()
    step("done")


def camera_frame(scene, camera, region) -> dict:
    """Where the camera frame lies in the viewport region (for the test to crop the screenshot)."""
    from bpy_extras.view3d_utils import location_3d_to_region_2d

    space = next(a for a in window().screen.areas if a.type == "VIEW_3D").spaces.active
    corners = camera.data.view_frame(scene=scene)
    points = [location_3d_to_region_2d(region, space.region_3d, camera.matrix_world @ c) for c in corners]
    xs = [region.x + p.x for p in points if p is not None]
    ys = [window().height - (region.y + p.y) for p in points if p is not None]
    return {"box": [min(xs), min(ys), max(xs), max(ys)] if xs else None}


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] not in ("Z", "X")


# ------------------------------------------------------------------------------------------ run

_PATH: Iterator[None] | None = None


def drive() -> float | None:
    global _PATH
    try:
        if _PATH is None:
            _PATH = path()
        next(_PATH)
    except StopIteration:
        report["ok"] = True
        return finish()
    except Exception:
        report["ok"] = False
        report["error"] = traceback.format_exc()
        return finish()
    return PROBE_S


def finish() -> None:
    save_report()
    bpy.ops.wm.quit_blender()
    return None


def main() -> None:
    bpy.context.preferences.view.show_splash = False  # before Blender would open it
    module = addon_utils.enable("dst3d", default_set=True)
    report["enabled"] = module is not None
    prefs = bpy.context.preferences.addons["dst3d"].preferences
    prefs.worker_runtime = "EXISTING"
    prefs.python_path = SETTINGS["python"]
    prefs.model_preset = "tiny"
    prefs.device = "cpu"
    instrument()
    bpy.app.timers.register(PROBE, first_interval=PROBE_S, persistent=True)
    bpy.app.timers.register(drive, first_interval=1.0)


main()
