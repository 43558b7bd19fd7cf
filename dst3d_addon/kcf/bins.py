"""Pose angles to 3D-DST's classification bins and back, and the geodesic error between poses.

3D-DST classifies each of azimuth, elevation and theta into 41 bins of width 2 pi / 41 over a full
turn (elevation uses only the middle bins). Its decoder put a bin's angle at the bin's edge for
elevation and theta; here every bin decodes to its centre, so a perfect classifier is off by at
most half a bin.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.camera import rotation

NUM_BINS = 41

#: The order of the three heads: each head's bins start at -offset (azimuth at 0, the others at -pi).
ANGLES = ("azimuth", "elevation", "theta")
_OFFSETS = np.array([0.0, math.pi, math.pi])


def bin_width(num_bins: int = NUM_BINS) -> float:
    """The width of one bin in radians."""
    return 2.0 * math.pi / num_bins


def angles_to_bins(angles: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """(N, 3) azimuth, elevation, theta in radians to (N, 3) bin indices in [0, num_bins).

    Azimuth bins cover [0, 2 pi) from 0; elevation and theta bins cover [-pi, pi) from -pi.
    Angles are wrapped first, so any finite angle has a bin.
    """
    a = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    shifted = np.mod(a + _OFFSETS, 2.0 * math.pi)
    bins = np.floor(shifted / bin_width(num_bins)).astype(np.int64)
    return np.clip(bins, 0, num_bins - 1)  # mod can return exactly 2 pi for tiny negatives


def bins_to_angles(bins: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """(N, 3) bin indices to the angles at the bins' centres: azimuth in [0, 2 pi), the others in [-pi, pi)."""
    b = np.asarray(bins, dtype=np.float64).reshape(-1, 3)
    return (b + 0.5) * bin_width(num_bins) - _OFFSETS


def geodesic_distance(R1: np.ndarray, R2: np.ndarray) -> float:
    """The angle of the rotation R1^T R2, in [0, pi]."""
    cos = (np.trace(np.asarray(R1).T @ np.asarray(R2)) - 1.0) / 2.0
    return float(math.acos(max(-1.0, min(1.0, cos))))


def pose_errors(predicted: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Geodesic distance (radians) between the rotations of (N, 3) predicted and labelled poses.

    The rotations are pose-convention.md's R_theta = Rz(theta) Rx(e - pi/2) Rz(-a), as in NeMo's pose_error.
    """
    p = np.asarray(predicted, dtype=np.float64).reshape(-1, 3)
    q = np.asarray(labelled, dtype=np.float64).reshape(-1, 3)
    if p.shape != q.shape:
        raise ValueError(f"pose arrays differ in shape: {p.shape} and {q.shape}")
    return np.array([geodesic_distance(rotation(*a), rotation(*b)) for a, b in zip(p, q, strict=True)])


def soft_targets(num_bins: int = NUM_BINS, sigma: float = 0.0) -> np.ndarray:
    """(num_bins, num_bins): row b is the target distribution of a label in bin b.

    sigma = 0 gives one-hot rows (3D-DST's cross entropy). sigma > 0 (in bins) spreads each label
    over its neighbours with a circular Gaussian, so a prediction one bin off costs little and a
    prediction half a turn off costs a lot: the held-out loss then ranks wrong labels, not bin noise.
    """
    if sigma <= 0:
        return np.eye(num_bins)
    idx = np.arange(num_bins)
    d = np.abs(idx[:, None] - idx[None, :])
    d = np.minimum(d, num_bins - d).astype(np.float64)
    w = np.exp(-0.5 * (d / sigma) ** 2)
    return w / w.sum(axis=1, keepdims=True)
