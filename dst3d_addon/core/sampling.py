"""Camera pose sampling: 3D-DST's five strategies in our convention, sphere and grid sets.

3D-DST measures its azimuth from +X and uses a polar angle; here (pose-convention.md) the azimuth is
measured from -Y and the elevation from the horizon, so a = theirs + 90 deg and e = 90 deg - polar.
Every draw of a view comes from the view's own seed, in a fixed order (angles, theta, distance),
so a view's pose never depends on the other views.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .camera import Intrinsics, Pose
from .errors import SettingError, setting
from .framing import fit_distance
from .seeds import rng as make_rng

DEG = math.pi / 180.0

#: The strategies 3D-DST samples from, by their number there, plus ours.
STRATEGIES = {
    "1": "all azimuths, elevation ~ N(0, 30 deg) truncated to +-90 deg",
    "2": "front azimuths (a in [-105, 105] deg), elevation ~ N(0, 30 deg)",
    "3": "all azimuths, elevation ~ N(30, 20 deg) truncated to +-90 deg",
    "4": "front azimuths (a in [-105, 105] deg), elevation ~ N(30, 20 deg)",
    "5": "azimuth uniform, polar angle uniform (elevation uniform in [-90, 90] deg)",
    "sphere": "uniform over the sphere's area",
    "AxE": "a grid of A azimuths x E elevations, e.g. 8x3",
}

_GRID = re.compile(r"^(\d+)x(\d+)$")

#: 3D-DST's front azimuths, U[-195, 15] deg measured from +X, are U[-105, 105] deg from -Y.
_FRONT = (-195.0 * DEG + math.pi / 2, 15.0 * DEG + math.pi / 2)

#: Random distance (3D-DST): truncated normal, sd 0.5, in [D - 0.5, D + 1.5].
RANDOM_DISTANCE_SD = 0.5
RANDOM_DISTANCE_RANGE = (-0.5, 1.5)


@dataclass(frozen=True)
class Strategy:
    """A parsed `--sampling` value: a 3D-DST number, 'sphere', or a grid."""

    name: str
    grid: tuple[int, int] | None = None

    @property
    def grid_size(self) -> int | None:
        """Number of grid cells, or None for random strategies."""
        return None if self.grid is None else self.grid[0] * self.grid[1]


def parse_strategy(text: str) -> Strategy:
    """Parse `--sampling`; a ValueError names the accepted values."""
    value = str(text).strip()
    if value in STRATEGIES and value != "AxE":
        return Strategy(value)
    m = _GRID.match(value.lower())
    if m:
        a, e = int(m.group(1)), int(m.group(2))
        if a >= 1 and e >= 1:
            return Strategy(f"{a}x{e}", (a, e))
    raise SettingError(
        f"{setting('sampling')} {text!r}: unknown strategy; use 1, 2, 3, 4, 5, sphere, or a grid AxE such as 8x3"
    )


@dataclass(frozen=True)
class Distance:
    """How the camera distance is chosen: 'fixed' D, 'random' around D, or 'fit' fraction F."""

    mode: str
    value: float

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "random", "fit"):
            raise ValueError(f"unknown distance mode {self.mode!r}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"the {self.mode} distance value must be a positive number, got {self.value}")
        if self.mode == "random" and self.value + RANDOM_DISTANCE_RANGE[0] <= 0:
            raise SettingError(f"{setting('random_distance')} {self.value}: the mean must exceed 0.5")

    def as_dict(self) -> dict:
        """For dataset.json."""
        return {"mode": self.mode, "value": self.value}


@dataclass(frozen=True)
class SamplingSpec:
    """Everything that decides a view's pose, apart from its seed and index."""

    strategy: Strategy
    distance: Distance
    theta_std: float = 0.0  # radians

    def as_dict(self) -> dict:
        """For dataset.json."""
        return {
            "strategy": self.strategy.name,
            "theta_std_deg": self.theta_std / DEG,
            "distance": self.distance.as_dict(),
        }


def truncated_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    """A draw from N(mean, sd) restricted to [lo, hi], by rejection."""
    if sd <= 0:
        return min(max(mean, lo), hi)
    for _ in range(10_000):
        x = mean + sd * float(rng.standard_normal())
        if lo <= x <= hi:
            return x
    return min(max(mean, lo), hi)


def sample_angles(strategy: Strategy, rng: np.random.Generator, view_index: int) -> tuple[float, float]:
    """(azimuth, elevation) of one view."""
    half = math.pi / 2
    if strategy.grid is not None:
        n_az, n_el = strategy.grid
        cell = view_index % (n_az * n_el)
        i_el, i_az = divmod(cell, n_az)
        azimuth = 2 * math.pi * i_az / n_az
        elevation = -half + math.pi * (i_el + 0.5) / n_el
        return azimuth, elevation
    name = strategy.name
    if name == "sphere":
        return float(rng.uniform(0.0, 2 * math.pi)), math.asin(float(rng.uniform(-1.0, 1.0)))
    if name == "5":
        return float(rng.uniform(0.0, 2 * math.pi)), float(rng.uniform(-half, half))
    front = name in ("2", "4")
    azimuth = float(rng.uniform(*_FRONT)) if front else float(rng.uniform(0.0, 2 * math.pi))
    mean, sd = (0.0, 30.0 * DEG) if name in ("1", "2") else (30.0 * DEG, 20.0 * DEG)
    return azimuth, truncated_normal(rng, mean, sd, -half, half)


def sample_pose(
    spec: SamplingSpec,
    seed: int,
    view_index: int,
    points: np.ndarray | None = None,
    intrinsics: Intrinsics | None = None,
    distance_scale: float = 1.0,
) -> Pose:
    """The pose of one view. 'fit' needs the object's points and the intrinsics.

    `distance_scale` multiplies a fixed or random distance (a per-model framing correction, such
    as the distance column of 3D-DST's model list); 'fit' frames each model itself and ignores it.
    """
    rng = make_rng(seed)
    azimuth, elevation = sample_angles(spec.strategy, rng, view_index)
    theta = spec.theta_std * float(rng.standard_normal())
    mode, value = spec.distance.mode, spec.distance.value
    if mode == "fixed":
        distance = value
    elif mode == "random":
        lo, hi = RANDOM_DISTANCE_RANGE
        distance = truncated_normal(rng, value, RANDOM_DISTANCE_SD, value + lo, value + hi)
    else:
        if points is None or intrinsics is None:
            raise ValueError("distance mode 'fit' needs the object's points and the intrinsics")
        return Pose(
            azimuth, elevation, theta, fit_distance(points, azimuth, elevation, theta, intrinsics, value)
        )
    return Pose(azimuth, elevation, theta, distance * distance_scale)
