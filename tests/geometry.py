"""Geometry checks shared by the tests: the CAD file's own vertices in the object frame, and an
independent rasterisation of projected triangles to compare with a rendered mask."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
import trimesh


def cad_mesh(record: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(vertices in the object frame, faces) of a record's CAD file, loaded with trimesh and mapped
    with the record's `cad.to_object` (dataset-format.md)."""
    raw = trimesh.load(record["cad"]["path"], force="mesh")
    to_object = np.asarray(record["cad"]["to_object"], dtype=np.float64)
    return raw.vertices @ to_object[:3, :3].T + to_object[:3, 3], np.asarray(raw.faces)


def silhouette(uv: np.ndarray, faces: np.ndarray, width: int, height: int, factor: int = 16) -> np.ndarray:
    """An independent rasterisation of projected triangles: OpenCV's fillConvexPoly at `factor` times the
    resolution, read at each pixel's centre (OpenCV also fills the pixels its edges touch, so at
    full resolution it would be about half a pixel too fat). `uv` is in dst3d's pixels (a pixel's
    centre at i + 0.5)."""
    canvas = np.zeros((height * factor, width * factor), np.uint8)
    shift = 4
    # In the fine grid, fine pixel k covers [k, k + 1) / factor; OpenCV puts its centre on k.
    pts = np.round((uv[faces] * factor - 0.5) * (1 << shift)).astype(np.int32)
    for tri in pts:  # one call per triangle: fillPoly over many polygons fills even-odd
        cv2.fillConvexPoly(canvas, tri, 255, lineType=cv2.LINE_8, shift=shift)
    centre = factor // 2
    return canvas[centre::factor, centre::factor] > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks."""
    return float((a & b).sum() / max(1, (a | b).sum()))
