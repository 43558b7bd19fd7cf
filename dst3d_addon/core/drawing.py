"""Drawing on pictures of a dataset (OpenCV + numpy): text, title bars, a view's pose axes and mask
outline on a tile of its image, and the azimuth x elevation heat map of a set of poses.

The KCF report (kcf/report.py), the contact sheet and viewpoint pictures (sheet.py) and the eval
stage's confusion picture draw with these, so the axes and the heat map mean the same everywhere.
Colours are BGR, as OpenCV writes them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .camera import Intrinsics, project
from .errors import DatasetError

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, DARK = (255, 255, 255), (150, 150, 150), (30, 30, 30)
GREEN, RED, YELLOW = (90, 200, 90), (70, 70, 230), (0, 220, 255)
AXIS_COLOURS = ((60, 60, 255), (60, 220, 60), (255, 140, 40))  # X, Y, Z in BGR
AXIS_LENGTH = 0.45  # object units (the longest side is 1)
#: The mask outline on a tile.
OUTLINE = (0, 200, 255)


def text(
    img: np.ndarray, line: str, org: tuple[int, int], scale: float = 0.5, colour=WHITE, thick: int = 1
) -> None:
    """Write one line of text with its baseline's left end at `org`."""
    cv2.putText(img, line, org, FONT, scale, colour, thick, cv2.LINE_AA)


def title_bar(line: str, width: int, height: int = 30, scale: float = 0.6) -> np.ndarray:
    """A dark strip `width` wide with one line of text."""
    img = np.full((height, width, 3), DARK, np.uint8)
    text(img, line, (10, height - 9), scale, WHITE)
    return img


def stack(parts: list[np.ndarray]) -> np.ndarray:
    """Parts one under another, each padded on the right with black to the widest."""
    width = max(p.shape[1] for p in parts)
    return np.vstack([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in parts])


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about `count` of them)."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def read_colour(path: str | os.PathLike) -> np.ndarray:
    """An image file as BGR uint8; DatasetError naming the file when it cannot be read."""
    raw = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if raw is None:
        raise DatasetError(f"{path}: cannot read the image")
    return raw


def square(image: np.ndarray) -> np.ndarray:
    """Pad an HxWx3 image with black to a centred square, so resizing keeps the object's shape."""
    h, w = image.shape[:2]
    if h == w:
        return image
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(image, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0)


@dataclass(frozen=True)
class Tile:
    """An image squared (black bars) and resized to tile x tile, and how its pixels map onto it."""

    image: np.ndarray
    width: int  # the source image's size
    height: int

    @classmethod
    def of(cls, raw: np.ndarray, tile: int) -> Tile:
        """`raw` (H x W x 3) padded to a centred square and resized to tile x tile."""
        h, w = raw.shape[:2]
        side = max(h, w)
        interp = cv2.INTER_AREA if side > tile else cv2.INTER_LINEAR
        return cls(cv2.resize(square(raw), (tile, tile), interpolation=interp), w, h)

    def to_tile(self, uv: np.ndarray) -> np.ndarray:
        """Source-image pixel coordinates (N, 2) to tile coordinates."""
        side = max(self.width, self.height)
        offset = np.array([(side - self.width) / 2, (side - self.height) / 2])
        return (np.asarray(uv, dtype=np.float64) + offset) * (self.image.shape[1] / side)


def _intrinsics(camera: dict) -> Intrinsics:
    return Intrinsics(
        int(camera["width"]), int(camera["height"]), float(camera["viewport"]), tuple(camera["principal"])
    )


def draw_axes(tile: Tile, record: dict) -> None:
    """Draw the record's pose as the object frame's axes (X red, Y green, Z blue; front = -Y) on `tile`.

    The axes are projected with the record's camera (K's focal length and principal point, R and
    C), scaled to the image when a generated image has another size than the render.
    """
    cam = record["camera"]
    intr = _intrinsics(cam)
    pts = np.vstack([np.zeros(3), np.eye(3) * AXIS_LENGTH])
    uv, depth = project(pts, np.asarray(cam["R"], float), np.asarray(cam["C"], float), intr)
    uv = tile.to_tile(uv * np.array([tile.width / intr.width, tile.height / intr.height]))
    if not np.all(depth > 0):
        return
    o = tuple(int(np.rint(v)) for v in uv[0])
    # Draw the axis pointing away from the camera first, so nearer axes stay on top.
    for i in sorted(range(3), key=lambda i: -depth[i + 1]):
        end = tuple(int(np.rint(v)) for v in uv[i + 1])
        cv2.arrowedLine(tile.image, o, end, AXIS_COLOURS[i], 2, cv2.LINE_AA, tipLength=0.2)


def draw_outline(tile: Tile, mask: np.ndarray, colour=OUTLINE) -> None:
    """Draw the outline of a 0/255 mask (at the source image's size, or scaled to it) on `tile`."""
    scale = np.array([tile.width / mask.shape[1], tile.height / mask.shape[0]])
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # Contour points are pixel indices (centres at i + 0.5 in dst3d's coordinates); OpenCV draws at
    # whole numbers = centres, with 4 bits of sub-pixel precision.
    polylines = [
        np.rint((tile.to_tile((c.reshape(-1, 2) + 0.5) * scale) - 0.5) * 16).astype(np.int32)
        for c in contours
        if len(c)
    ]
    if polylines:
        cv2.polylines(tile.image, polylines, True, colour, 1, cv2.LINE_AA, shift=4)


def axes_tile(image_path: Path, record: dict, tile: int) -> np.ndarray:
    """The image, squared and resized to tile x tile, with the labelled pose's axes drawn on it."""
    t = Tile.of(read_colour(image_path), tile)
    draw_axes(t, record)
    return t.image


def heat(counts: np.ndarray, width: int, height: int, peak: float | None = None) -> np.ndarray:
    """A count matrix (rows top to bottom) as a viridis heat map of width x height; empty cells grey."""
    peak = max(1.0, float(counts.max()) if peak is None else peak)
    norm = np.clip(counts / peak * 255, 0, 255).astype(np.uint8)
    img = cv2.applyColorMap(
        cv2.resize(norm, (width, height), interpolation=cv2.INTER_NEAREST), cv2.COLORMAP_VIRIDIS
    )
    empty = cv2.resize((counts == 0).astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    img[empty > 0] = (45, 45, 45)
    return img


def colour_bar(img: np.ndarray, x: int, top: int, height: int, peak: float) -> None:
    """The heat map's scale at column x: 0 at the bottom, `peak` at the top."""
    bar = cv2.applyColorMap(
        np.linspace(255, 0, height).astype(np.uint8)[:, None].repeat(14, 1), cv2.COLORMAP_VIRIDIS
    )
    img[top : top + height, x : x + 14] = bar
    text(img, f"{int(peak)}", (x + 18, top + 10), 0.45, GREY)
    text(img, "0", (x + 18, top + height), 0.45, GREY)


def viewpoint_panel(azimuths: np.ndarray, elevations: np.ndarray, width: int, title: str) -> np.ndarray:
    """Azimuth (0..360 deg, 10 deg bins) x elevation (-90..90 deg, 10 deg bins) counts as a heat map."""
    counts, _, _ = np.histogram2d(
        np.degrees(np.mod(azimuths, 2 * math.pi)),
        np.degrees(elevations),
        bins=(36, 18),
        range=((0, 360), (-90, 90)),
    )
    left, top, bottom = 100, 34, 44
    cell_w = max(4, (width - left - 90) // 36)
    cell_h = cell_w // 2 + 6
    pw, ph = cell_w * 36, cell_h * 18
    img = np.full((top + ph + bottom, width, 3), DARK, np.uint8)
    peak = max(1.0, float(counts.max()))
    img[top : top + ph, left : left + pw] = heat(
        counts.T[::-1], pw, ph, peak
    )  # rows: elevation from +90 down
    text(img, title, (left, top - 12), 0.55, WHITE)
    for a in range(0, 361, 45):
        x = left + int(a / 360 * pw)
        cv2.line(img, (x, top + ph), (x, top + ph + 5), GREY, 1)
        text(img, f"{a}", (x - 10, top + ph + 20), 0.45, GREY)
    text(img, "azimuth (deg; 0 = front)", (left + pw // 2 - 90, top + ph + 38), 0.5, WHITE)
    for e in range(-90, 91, 30):
        y = top + int((90 - e) / 180 * ph)
        cv2.line(img, (left - 5, y), (left, y), GREY, 1)
        text(img, f"{e}", (left - 40, y + 5), 0.45, GREY)
    text(img, "elevation", (4, top + ph // 2 - 10), 0.45, WHITE)
    text(img, "(deg)", (4, top + ph // 2 + 30), 0.45, WHITE)
    colour_bar(img, left + pw + 16, top, ph, peak)
    return img
