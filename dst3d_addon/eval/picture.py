"""The eval's confusion picture (OpenCV + numpy): per class, how often each labelled azimuth was
predicted as each azimuth. The diagonal is right; the band half a turn off is the front/back
confusion that pose estimators make most; a picture with its mass on the diagonal and Acc@pi/6 far
below 100% says the elevation or theta is wrong instead."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..core.drawing import DARK, GREY, WHITE, colour_bar, heat, stack, text, title_bar
from ..core.files import write_png

#: Azimuth bins a side (15 degrees each).
BINS = 24
PANEL = 320
#: The picture is at least this wide, so its title fits.
MIN_WIDTH = 760
_LEFT, _TOP, _BOTTOM, _RIGHT = 52, 60, 46, 50


def confusion(true_az: np.ndarray, pred_az: np.ndarray, bins: int = BINS) -> np.ndarray:
    """(bins, bins) counts: row = predicted azimuth bin, column = labelled azimuth bin, from 0."""
    t = np.floor(np.mod(true_az, 2 * math.pi) / (2 * math.pi) * bins).astype(int) % bins
    p = np.floor(np.mod(pred_az, 2 * math.pi) / (2 * math.pi) * bins).astype(int) % bins
    counts = np.zeros((bins, bins), dtype=np.int64)
    np.add.at(counts, (p, t), 1)
    return counts


def panel(title: str, lines: tuple[str, str], counts: np.ndarray) -> np.ndarray:
    """One class's confusion as a heat map, predicted azimuth up, labelled azimuth to the right."""
    side = PANEL - _LEFT - _RIGHT
    img = np.full((_TOP + side + _BOTTOM, PANEL, 3), DARK, np.uint8)
    peak = max(1.0, float(counts.max()))
    img[_TOP : _TOP + side, _LEFT : _LEFT + side] = heat(counts[::-1], side, side, peak)  # 0 at the bottom
    cv2.line(img, (_LEFT, _TOP + side), (_LEFT + side, _TOP), GREY, 1, cv2.LINE_AA)  # right
    text(img, title, (6, 16), 0.5, WHITE)
    text(img, lines[0], (6, 34), 0.4, GREY)
    text(img, lines[1], (6, 50), 0.4, GREY)
    for a in range(0, 361, 90):
        x = _LEFT + round(a / 360 * side)
        y = _TOP + side - round(a / 360 * side)
        text(img, f"{a}", (x - 10, _TOP + side + 16), 0.4, GREY)
        text(img, f"{a}", (_LEFT - 30, y + 4), 0.4, GREY)
    text(img, "labelled azimuth (deg)", (_LEFT + 10, _TOP + side + 36), 0.42, WHITE)
    colour_bar(img, _LEFT + side + 6, _TOP, side, peak)
    return img


def draw_confusion(results: dict, output: str | os.PathLike, columns: int = 4) -> Path:
    """Draw results.json's azimuth confusion (every class, then all of them) into the PNG `output`."""
    images = results["images"]
    names = sorted({e["class"] for e in images})
    groups = [(name, [e for e in images if e["class"] == name], results["classes"][name]) for name in names]
    if len(names) > 1:
        groups.append(("all classes", images, results["overall"]))
    panels = []
    for name, entries, m in groups:
        true_az = np.array([e["pose"][0] for e in entries], dtype=float)
        pred_az = np.array([e["pred"][0] for e in entries], dtype=float)
        acc = m["accuracy"]
        lines = (
            f"{m['images']} objects, median error {m['median_error_deg']:.1f} deg",
            f"Acc@pi/6 {100 * acc['pi_6']:.1f}%, Acc@pi/18 {100 * acc['pi_18']:.1f}%",
        )
        panels.append(panel(name, lines, confusion(true_az, pred_az)))
    columns = min(columns, len(panels))
    rows = []
    for i in range(0, len(panels), columns):
        row = panels[i : i + columns]
        row += [np.full_like(panels[0], DARK)] * (columns - len(row))
        rows.append(np.hstack(row))
    s = results.get("settings", {})
    train, test = s.get("train", {}), s.get("test", {})
    width = max(MIN_WIDTH, rows[0].shape[1])
    header = [
        title_bar(
            "Azimuth confusion: up the predicted azimuth, along the labelled one (diagonal = right)", width
        ),
        title_bar(
            f"trained on {Path(train.get('path', '?')).name}, tested on {Path(test.get('path', '?')).name}",
            width,
            24,
            0.45,
        ),
    ]
    path = Path(output)
    write_png(path, stack([*header, *rows]))
    return path
