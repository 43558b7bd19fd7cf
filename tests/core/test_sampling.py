"""Pose samplers, seeds and framing."""

import math

import numpy as np
import pytest

from dst3d_addon.core import camera as cam
from dst3d_addon.core import sampling as smp
from dst3d_addon.core.framing import fit_distance
from dst3d_addon.core.seeds import derive_seed, view_seed

DEG = math.pi / 180


def draw(strategy: str, n: int = 4000, **kw) -> np.ndarray:
    spec = smp.SamplingSpec(smp.parse_strategy(strategy), smp.Distance("fixed", 3.0), **kw)
    poses = [smp.sample_pose(spec, view_seed(1, "c", "m", i), i) for i in range(n)]
    return np.array([[p.azimuth, p.elevation, p.theta, p.distance] for p in poses])


def test_seeds_are_stable_distinct_and_json_safe():
    assert view_seed(0, "n02690373", "a", 3) == view_seed(0, "n02690373", "a", 3)
    seeds = {view_seed(0, "cls", "model", i) for i in range(1000)}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**53 for s in seeds)
    assert view_seed(0, "cls", "model", 1) != view_seed(1, "cls", "model", 1)
    assert view_seed(0, "cls", "a", 1) != view_seed(0, "cls", "b", 1)
    # The label separator keeps ("ab", "c") and ("a", "bc") apart.
    assert derive_seed("ab", "c") != derive_seed("a", "bc")


def test_strategy_1_all_azimuths_elevation_normal_0_30():
    s = draw("1")
    az = np.mod(s[:, 0], 2 * math.pi)
    assert az.min() < 0.05 and az.max() > 2 * math.pi - 0.05
    assert abs(np.mean(s[:, 1])) < 2 * DEG
    assert np.std(s[:, 1]) == pytest.approx(30 * DEG, rel=0.08)
    assert np.all(np.abs(s[:, 1]) <= math.pi / 2)


def test_strategies_2_and_4_front_azimuths():
    for name in ("2", "4"):
        s = draw(name, 2000)
        assert s[:, 0].min() >= -105 * DEG - 1e-12 and s[:, 0].max() <= 105 * DEG + 1e-12
        assert s[:, 0].min() < -100 * DEG and s[:, 0].max() > 100 * DEG


def test_strategy_3_elevation_normal_30_20():
    s = draw("3")
    assert np.mean(s[:, 1]) == pytest.approx(30 * DEG, abs=2 * DEG)
    assert np.std(s[:, 1]) == pytest.approx(20 * DEG, rel=0.1)


def test_strategy_5_and_sphere():
    s5 = draw("5")
    assert np.abs(s5[:, 1]).max() <= math.pi / 2
    # Uniform polar angle: elevation uniform, so |e| > 60 deg a third of the time.
    assert np.mean(np.abs(s5[:, 1]) > 60 * DEG) == pytest.approx(1 / 3, abs=0.04)
    sph = draw("sphere")
    # Uniform over area: sin(e) uniform, so |e| > 60 deg only 1 - sin(60) = 13% of the time.
    assert np.mean(np.abs(sph[:, 1]) > 60 * DEG) == pytest.approx(1 - math.sin(60 * DEG), abs=0.03)


def test_grid():
    s = draw("8x3", 24)
    assert len({round(a, 9) for a in np.mod(s[:, 0], 2 * math.pi)}) == 8
    np.testing.assert_allclose(sorted(set(np.round(s[:, 1] / DEG, 6))), [-60, 0, 60])
    assert smp.parse_strategy("8X3").grid == (8, 3)


@pytest.mark.parametrize("bad", ["0", "6", "x", "0x3", "3x", "", "axe"])
def test_unknown_strategy_is_refused_with_the_choices(bad):
    with pytest.raises(ValueError, match="sphere"):
        smp.parse_strategy(bad)


def test_theta_std_and_default_zero():
    assert np.all(draw("1", 100)[:, 2] == 0)
    s = draw("1", 3000, theta_std=10 * DEG)
    assert np.std(s[:, 2]) == pytest.approx(10 * DEG, rel=0.1)


def test_random_distance_is_truncated_normal():
    spec = smp.SamplingSpec(smp.parse_strategy("1"), smp.Distance("random", 4.0))
    d = np.array([smp.sample_pose(spec, view_seed(2, "c", "m", i), i).distance for i in range(3000)])
    assert d.min() >= 3.5 and d.max() <= 5.5
    assert d.min() < 3.55 and d.max() > 5.0


@pytest.mark.parametrize("mode,value", [("fixed", 0.0), ("fit", -1.0), ("random", 0.4), ("zoom", 1.0)])
def test_bad_distance_refused(mode, value):
    with pytest.raises(ValueError):
        smp.Distance(mode, value)


def test_fit_distance_fills_the_requested_fraction():
    rng = np.random.default_rng(3)
    pts = rng.uniform(-0.5, 0.5, size=(400, 3)) * [1.0, 0.4, 0.7]
    for w, h in [(512, 512), (640, 360), (300, 500)]:
        intr = cam.Intrinsics.from_lens(w, h)
        for _ in range(20):
            a, e, t = rng.uniform(-3, 3), rng.uniform(-1.5, 1.5), rng.uniform(-3, 3)
            d = fit_distance(pts, a, e, t, intr, 0.8)
            uv, depth = cam.project_pose(pts, cam.Pose(a, e, t, d), intr)
            assert np.all(depth > 0)
            half = np.max(np.abs(uv - np.array(intr.principal)))
            assert half == pytest.approx(0.8 * min(w, h) / 2, rel=1e-9)


def test_sampling_is_independent_of_order():
    spec = smp.SamplingSpec(smp.parse_strategy("sphere"), smp.Distance("random", 3.0), theta_std=0.2)
    forward = [smp.sample_pose(spec, view_seed(5, "c", "m", i), i) for i in range(10)]
    backward = [smp.sample_pose(spec, view_seed(5, "c", "m", i), i) for i in reversed(range(10))]
    assert forward == list(reversed(backward))


def test_distance_scale_applies_to_fixed_and_random_but_not_fit():
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, size=(50, 3))
    intr = cam.Intrinsics.from_lens(128, 128)
    for mode, value in [("fixed", 2.0), ("random", 3.0), ("fit", 0.7)]:
        spec = smp.SamplingSpec(smp.parse_strategy("1"), smp.Distance(mode, value))
        plain = smp.sample_pose(spec, 9, 0, points=pts, intrinsics=intr)
        scaled = smp.sample_pose(spec, 9, 0, points=pts, intrinsics=intr, distance_scale=1.5)
        factor = 1.0 if mode == "fit" else 1.5
        assert scaled.distance == pytest.approx(plain.distance * factor)
