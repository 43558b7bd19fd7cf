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

from ..core.drawing import (
    DARK,
    GREEN,
    GREY,
    RED,
    WHITE,
    YELLOW,
    axes_tile,
    nice_ticks,
    stack,
    title_bar,
    viewpoint_panel,
)
from ..core.drawing import text as _text
from ..core.errors import DatasetError
from ..core.files import write_png
from ..core.keep import KEEP, read_records
from ..core.records import load_annotations
from .results import load_kcf

__all__ = ["axes_tile", "histogram_panel", "image_row", "nice_ticks", "viewpoint_panel", "write_report"]


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
        title_bar(
            f"KCF report: {root.name}  {len(entries)} images ({s.get('images', '?')}), {s.get('folds', '?')} folds, "
            f"{s.get('backbone', '')}, held-out accuracy {100 * acc.get('pi_6', float('nan')):.0f}% at pi/6",
            width,
            36,
            0.6,
        ),
        title_bar(rule, width, 24, 0.5),
        histogram_panel(scores, cut, width),
        title_bar(f"Worst {n}: highest scores (labels the other folds' models disagree with most)", width),
        image_row(root, ranked[:n], records, tile, cut, kept),
        title_bar(
            f"Best {n}: lowest scores  (axes of the labelled pose: X red, Y green, Z blue; front = -Y)", width
        ),
        image_row(root, ranked[::-1][:n], records, tile, cut, kept),
    ]
    kept_entries = [e for e in entries if e["file"] in kept]
    az = np.array([e["pose"][0] for e in kept_entries], dtype=float)
    el = np.array([e["pose"][1] for e in kept_entries], dtype=float)
    parts.append(viewpoint_panel(az, el, width, f"Viewpoints of the kept set: {len(kept_entries)} images"))
    canvas = stack(parts)
    path = Path(output)
    write_png(path, canvas)
    return path
