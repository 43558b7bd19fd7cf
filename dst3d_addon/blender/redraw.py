"""Ask Blender to redraw only what a job changed: the sidebar for a new status line, the camera
views and image editors for a new image.

A tagged 3D viewport redraws its whole scene. With software OpenGL (a machine or VM without a
GPU) one redraw of a 1600x1000 window took 0.5 to 1.5 s on 2 cores, so tagging every viewport on
every 0.2 s timer tick, as the jobs did, kept Blender's main thread busy redrawing and its timers
fired half a second apart. The sidebar alone is a small region; a viewport redraws only when it
looks through a camera (where the preview shows as the camera's background) and an Image Editor
only when it shows the changed image; and `Pacer` spaces those redraws by what they cost.
"""

from __future__ import annotations

import bpy


def sidebars(context: bpy.types.Context) -> None:
    """Redraw the 3D viewports' sidebars (the DST3D panel) and the Preferences (its add-on page)."""
    for area in _areas(context):
        if area.type == "VIEW_3D":
            for region in area.regions:
                if region.type == "UI":
                    region.tag_redraw()
        elif area.type == "PREFERENCES":
            area.tag_redraw()


def images(context: bpy.types.Context, image: bpy.types.Image | None) -> None:
    """Redraw what may show `image`: 3D viewports looking through a camera, Image Editors showing
    it (with None, every 3D viewport and Image Editor)."""
    for area in _areas(context):
        space = area.spaces.active
        if area.type == "IMAGE_EDITOR" and (image is None or space.image == image):
            area.tag_redraw()
        elif area.type == "VIEW_3D" and (image is None or space.region_3d.view_perspective == "CAMERA"):
            for region in area.regions:
                if region.type == "WINDOW":
                    region.tag_redraw()


def _areas(context: bpy.types.Context) -> list[bpy.types.Area]:
    wm = getattr(context, "window_manager", None)
    if wm is None:
        return []
    return [area for window in wm.windows for area in window.screen.areas]


class Pacer:
    """When a job's news (a status line, a step preview) may be shown: at most as often as Blender
    can draw it.

    Each redraw keeps Blender's main thread busy: a few milliseconds on a GPU, 0.5 to 3 s with
    software OpenGL (a machine without a GPU, 2 busy cores), where even the sidebar redraws the
    viewport beneath it (region overlap). The timer tick after a redraw comes late by about that
    cost; the next news is shown only once Blender has been free for as long again, so that the
    job's redraws take at most half of its time. On a GPU every step shows; the end always shows.
    """

    #: Lateness below this is the timer's own jitter, not a redraw.
    JITTER_S = 0.02

    def __init__(self) -> None:
        self._last_tick: float | None = None
        self._interval = float("inf")  # the timer's own interval: the shortest gap between ticks
        self._shown_tick: float | None = None
        self._free_from = float("-inf")

    def ready(self, now: float) -> bool:
        """Call on every tick (with its time): True when news may be shown now."""
        if self._last_tick is not None:
            gap = now - self._last_tick
            self._interval = min(self._interval, gap)
            late = gap - self._interval
            if self._shown_tick == self._last_tick and late > self.JITTER_S:  # the redraw took `late`
                self._free_from = now + late
        self._last_tick = now
        return now >= self._free_from

    def shown(self, now: float) -> None:
        """News was shown (a redraw asked for) on the tick at `now`."""
        self._shown_tick = now
