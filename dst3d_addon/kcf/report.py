"""The KCF report (one PNG, OpenCV + numpy): what people look at before they trust a filter.

From top to bottom: the score histogram with the cut (kept bins green, dropped red), the worst
and the best images with their labelled pose drawn as the object frame's axes (X red, Y green,
Z blue; the object's front faces -Y), and the azimuth x elevation distribution of the kept set.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..core.camera import Intrinsics, project
from ..core.errors import DatasetError
from ..core.files import write_png
from ..core.keep import KEEP, read_records
from ..core.records import load_annotations
from .images import square
from .results import load_kcf

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, DARK = (255, 255, 255), (150, 150, 150), (30, 30, 30)
GREEN, RED, YELLOW = (90, 200, 90), (70, 70, 230), (0, 220, 255)
AXIS_COLOURS = ((60, 60, 255), (60, 220, 60), (255, 140, 40))  # X, Y, Z in BGR
AXIS_LENGTH = 0.45  # object units (the longest side is 1)


def _text(
    img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5, colour=WHITE, thick: int = 1
) -> None:
    cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about `count` of them)."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def histogram_panel(
    scores: np.ndarray, cut: float | None, width: int, height: int = 300, bins: int = 50
) -> np.ndarray:
    """The score histogram with the cut line."""
    img = np.full((height, width, 3), DARK, np.uint8)
    left, right, top, bottom = 70, 20, 36, 44
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(scores, bins=bins, range=(lo, hi))
    pw, ph = width - left - right, height - top - bottom
    peak = max(1, int(counts.max()))

    def x_of(v: float) -> int:
        return int(np.rint(left + (v - lo) / (hi - lo) * pw))

    for c, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
        if c == 0:
            continue
        colour = GREEN if cut is None or (a + b) / 2 <= cut else RED
        y = int(np.rint(top + ph - c / peak * ph))
        cv2.rectangle(img, (x_of(a) + 1, y), (max(x_of(a) + 1, x_of(b) - 1), top + ph), colour, -1)
    cv2.line(img, (left, top + ph), (left + pw, top + ph), GREY, 1)
    cv2.line(img, (left, top), (left, top + ph), GREY, 1)
    for t in nice_ticks(lo, hi, 6):
        x = x_of(t)
        cv2.line(img, (x, top + ph), (x, top + ph + 5), GREY, 1)
        _text(img, f"{t:g}", (x - 12, top + ph + 20), 0.45, GREY)
    for t in nice_ticks(0, peak, 4):
        y = int(np.rint(top + ph - t / peak * ph))
        cv2.line(img, (left - 5, y), (left, y), GREY, 1)
        _text(img, f"{int(t)}", (left - 45, y + 5), 0.45, GREY)
    _text(img, "held-out loss (score)", (left + pw // 2 - 80, height - 6), 0.5, WHITE)
    _text(img, "images", (6, top - 12), 0.5, WHITE)
    if cut is not None and math.isfinite(cut):
        x = x_of(min(max(cut, lo), hi))
        cv2.line(img, (x, top - 6), (x, top + ph), YELLOW, 2)
        kept = int(np.sum(scores <= cut))
        label = f"cut {cut:.3g}: keep {kept}/{len(scores)} ({100 * kept / len(scores):.0f}%)"
        tx = min(x + 6, width - 9 * len(label) - 10)
        _text(img, label, (max(left + 4, tx), top + 4), 0.55, YELLOW, 1)
    return img


def axes_tile(image_path: Path, record: dict, tile: int) -> np.ndarray:
    """The image, squared and resized to tile x tile, with the labelled pose's axes drawn on it."""
    raw = cv2.imread(os.fspath(image_path), cv2.IMREAD_COLOR)
    if raw is None:
        raise DatasetError(f"{image_path}: cannot read the image")
    h, w = raw.shape[:2]
    side = max(h, w)
    scale = tile / side
    img = cv2.resize(
        square(raw), (tile, tile), interpolation=cv2.INTER_AREA if side > tile else cv2.INTER_LINEAR
    )
    cam = record["camera"]
    intr = Intrinsics(int(cam["width"]), int(cam["height"]), float(cam["viewport"]), tuple(cam["principal"]))
    pts = np.vstack([np.zeros(3), np.eye(3) * AXIS_LENGTH])
    uv, depth = project(pts, np.asarray(cam["R"], float), np.asarray(cam["C"], float), intr)
    uv = uv * np.array([w / intr.width, h / intr.height])  # a generated image may have another size
    uv = (uv + np.array([(side - w) / 2, (side - h) / 2])) * scale
    if np.all(depth > 0):
        o = tuple(int(np.rint(v)) for v in uv[0])
        # Draw the axis pointing away from the camera first, so nearer axes stay on top.
        for i in sorted(range(3), key=lambda i: -depth[i + 1]):
            end = tuple(int(np.rint(v)) for v in uv[i + 1])
            cv2.arrowedLine(img, o, end, AXIS_COLOURS[i], 2, cv2.LINE_AA, tipLength=0.2)
    return img


def image_row(
    out: Path, entries: list[dict], records: dict, tile: int, cut: float | None, kept: set[str]
) -> np.ndarray:
    """One row of tiles with a caption under each: score, pose error, kept or dropped."""
    caption = 38
    row = np.full((tile + caption, max(1, len(entries)) * tile, 3), DARK, np.uint8)
    for j, e in enumerate(entries):
        x = j * tile
        record = records.get(e["id"])
        if record is not None:
            row[:tile, x : x + tile] = axes_tile(out / e["file"], record, tile)
        ok = e["file"] in kept
        cv2.rectangle(row, (x, 0), (x + tile - 1, tile - 1), GREEN if ok else RED, 2)
        _text(row, f"score {e['score']:.2f}", (x + 4, tile + 15), 0.45, WHITE)
        _text(
            row, f"err {math.degrees(e.get('error', float('nan'))):.0f} deg", (x + 4, tile + 32), 0.45, GREY
        )
    return row


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
    norm = (counts.T[::-1] / peak * 255).astype(np.uint8)  # rows: elevation from +90 down
    heat = cv2.applyColorMap(
        cv2.resize(norm, (pw, ph), interpolation=cv2.INTER_NEAREST), cv2.COLORMAP_VIRIDIS
    )
    heat[
        cv2.resize((counts.T[::-1] == 0).astype(np.uint8), (pw, ph), interpolation=cv2.INTER_NEAREST) > 0
    ] = (
        45,
        45,
        45,
    )
    img[top : top + ph, left : left + pw] = heat
    _text(img, title, (left, top - 12), 0.55, WHITE)
    for a in range(0, 361, 45):
        x = left + int(a / 360 * pw)
        cv2.line(img, (x, top + ph), (x, top + ph + 5), GREY, 1)
        _text(img, f"{a}", (x - 10, top + ph + 20), 0.45, GREY)
    _text(img, "azimuth (deg; 0 = front)", (left + pw // 2 - 90, top + ph + 38), 0.5, WHITE)
    for e in range(-90, 91, 30):
        y = top + int((90 - e) / 180 * ph)
        cv2.line(img, (left - 5, y), (left, y), GREY, 1)
        _text(img, f"{e}", (left - 40, y + 5), 0.45, GREY)
    _text(img, "elevation", (4, top + ph // 2 - 10), 0.45, WHITE)
    _text(img, "(deg)", (4, top + ph // 2 + 30), 0.45, WHITE)
    # The colour scale.
    bar = cv2.applyColorMap(
        np.linspace(255, 0, ph).astype(np.uint8)[:, None].repeat(14, 1), cv2.COLORMAP_VIRIDIS
    )
    img[top : top + ph, left + pw + 16 : left + pw + 30] = bar
    _text(img, f"{int(peak)}", (left + pw + 34, top + 10), 0.45, GREY)
    _text(img, "0", (left + pw + 34, top + ph), 0.45, GREY)
    return img


def _title(text: str, width: int, height: int = 30, scale: float = 0.6) -> np.ndarray:
    img = np.full((height, width, 3), DARK, np.uint8)
    _text(img, text, (10, height - 9), scale, WHITE)
    return img


def write_report(out: str | os.PathLike, output: str | os.PathLike, count: int = 8, tile: int = 160) -> Path:
    """Draw the report of dataset `out` (kcf.json, and keep.jsonl when filtered) into the PNG `output`."""
    root = Path(out)
    kcf = load_kcf(root)
    entries = kcf["images"]
    if not entries:
        raise DatasetError(f"{root / 'kcf.json'}: no scored images")
    records = {r["id"]: r for r in load_annotations(root, as_numpy=False, respect_keep=False)}
    keep_path = root / KEEP
    if keep_path.is_file():
        kept = {str(r.get("file")) for r in read_records(keep_path)}
        cut = max((float(e["score"]) for e in entries if e["file"] in kept), default=None)
        rule = "kept set of keep.jsonl"
    else:
        kept = {e["file"] for e in entries}
        cut = None
        rule = "not filtered yet (all images shown as kept)"
    scores = np.array([float(e["score"]) for e in entries])
    ranked = sorted(entries, key=lambda e: (-float(e["score"]), e["file"]))
    n = min(count, len(ranked))
    width = max(n * tile, 900)
    s = kcf.get("settings", {})
    acc = kcf.get("accuracy", {})
    parts = [
        _title(
            f"KCF report: {root.name}  {len(entries)} images ({s.get('images', '?')}), {s.get('folds', '?')} folds, "
            f"{s.get('backbone', '')}, held-out accuracy {100 * acc.get('pi_6', float('nan')):.0f}% at pi/6",
            width,
            36,
            0.6,
        ),
        _title(rule, width, 24, 0.5),
        histogram_panel(scores, cut, width),
        _title(f"Worst {n}: highest scores (labels the other folds' models disagree with most)", width),
        image_row(root, ranked[:n], records, tile, cut, kept),
        _title(
            f"Best {n}: lowest scores  (axes of the labelled pose: X red, Y green, Z blue; front = -Y)", width
        ),
        image_row(root, ranked[::-1][:n], records, tile, cut, kept),
    ]
    kept_entries = [e for e in entries if e["file"] in kept]
    az = np.array([e["pose"][0] for e in kept_entries], dtype=float)
    el = np.array([e["pose"][1] for e in kept_entries], dtype=float)
    parts.append(viewpoint_panel(az, el, width, f"Viewpoints of the kept set: {len(kept_entries)} images"))
    canvas = np.vstack([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in parts])
    path = Path(output)
    write_png(path, canvas)
    return path
