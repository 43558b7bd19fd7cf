"""Automatic framing: the camera distance at which the object fills a given share of the image."""

from __future__ import annotations

import numpy as np

from .camera import Intrinsics, rotation


def fit_distance(
    points: np.ndarray,
    azimuth: float,
    elevation: float,
    theta: float,
    intrinsics: Intrinsics,
    fill: float,
) -> float:
    """Distance at which every point lies in the centred square of side `fill` x the shorter side.

    The extreme point touches that square's border, so for fill <= 1 the object is never cut by
    the image border. Closed form: with q = R_theta X, a point projects inside the square of
    half-width s (in focal units) iff d >= q_z + max(|q_x|, |q_y|) / s.
    """
    if not fill > 0.0:
        raise ValueError(f"fill must be positive, got {fill}")
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        raise ValueError("no points to frame")
    q = pts @ rotation(azimuth, elevation, theta).T
    s = fill * min(intrinsics.width, intrinsics.height) / 2.0 / intrinsics.viewport
    # Every point then has a positive depth, max(|q_x|, |q_y|) / s, so the camera is never inside.
    return float(np.max(q[:, 2] + np.maximum(np.abs(q[:, 0]), np.abs(q[:, 1])) / s))
