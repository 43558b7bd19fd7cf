"""The pure parts of KCF: bins, folds, AUC, keep-set selection, report ticks (no torch)."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from dst3d_addon.core.keep import KeepSet, filter_records, select_kept
from dst3d_addon.kcf.bins import angles_to_bins, bin_width, bins_to_angles, pose_errors, soft_targets
from dst3d_addon.kcf.folds import FoldError, assign_folds
from dst3d_addon.kcf.items import Item
from dst3d_addon.kcf.metrics import accuracy_at, roc_auc
from dst3d_addon.kcf.report import nice_ticks


def test_bins_decode_at_centres_within_half_a_bin():
    rng = np.random.default_rng(0)
    poses = np.stack(
        [
            rng.uniform(-4, 8, 500),
            rng.uniform(-math.pi / 2, math.pi / 2, 500),
            rng.uniform(-math.pi, math.pi, 500),
        ],
        1,
    )
    bins = angles_to_bins(poses)
    assert bins.min() >= 0 and bins.max() <= 40
    decoded = bins_to_angles(bins)
    diff = np.abs(np.angle(np.exp(1j * (decoded - poses))))
    assert diff.max() <= bin_width() / 2 + 1e-9
    # Elevation 0 and theta 0 sit at the centre of the middle bin, as in 3D-DST.
    assert angles_to_bins([[0.0, 0.0, 0.0]]).tolist() == [[0, 20, 20]]
    assert bins_to_angles([[0, 20, 20]])[0, 1:] == pytest.approx([0.0, 0.0])


def test_pose_errors_are_geodesic():
    a = np.array([[0.3, 0.2, 0.1]])
    assert pose_errors(a, a)[0] == pytest.approx(0.0, abs=1e-7)
    turned = a + np.array([[math.pi, 0.0, 0.0]])
    # Turning the azimuth by pi at elevation e rotates by pi about the vertical axis.
    assert pose_errors(a, turned)[0] == pytest.approx(math.pi, abs=1e-6)
    assert pose_errors([[0, 0, 0]], [[0, 0, 0.5]])[0] == pytest.approx(0.5)


def test_soft_targets_are_distributions_peaked_on_the_label():
    assert np.array_equal(soft_targets(41, 0.0), np.eye(41))
    s = soft_targets(41, 2.0)
    assert np.allclose(s.sum(axis=1), 1.0)
    assert np.argmax(s[5]) == 5 and s[0, 40] == pytest.approx(s[0, 1])  # circular


def _items(models: int, views: int, k: int) -> list[Item]:
    return [
        Item(f"images/c/m{m}/{v:06d}_{j}.png", f"c/m{m}/{v:06d}", j, "c", f"m{m}", 0.0, 0.0, 0.0)
        for m in range(models)
        for v in range(views)
        for j in range(k)
    ]


@pytest.mark.parametrize("group_by", ["view", "model"])
def test_group_by_keeps_groups_in_one_fold(group_by):
    items = _items(models=7, views=6, k=3)
    folds = assign_folds([it.group(group_by) for it in items], 5, seed=1)
    by_group: dict[str, set[int]] = {}
    for it, f in zip(items, folds, strict=True):
        by_group.setdefault(it.group(group_by), set()).add(f)
    assert all(len(fs) == 1 for fs in by_group.values())
    assert set(folds) == set(range(5))
    # The split does not depend on the order the images come in.
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    again = dict(zip(shuffled, assign_folds([it.group(group_by) for it in shuffled], 5, seed=1), strict=True))
    assert [again[it] for it in items] == folds
    assert assign_folds([it.group(group_by) for it in items], 5, seed=2) != folds or group_by == "model"


def test_image_folds_are_balanced_and_too_few_groups_refused():
    items = _items(models=1, views=23, k=1)
    folds = assign_folds([it.group("image") for it in items], 5, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 5, 5, 5]
    with pytest.raises(FoldError, match=r"^folds 5: only 1 group"):
        assign_folds([it.group("model") for it in items], 5, seed=0)


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 6, 40).astype(float)
    pos = rng.random(40) < 0.3
    pairs = list(itertools.product(scores[pos], scores[~pos]))
    brute = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(scores, pos) == pytest.approx(brute)
    assert roc_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert accuracy_at([0.1, 0.5, 1.0], math.pi / 6) == pytest.approx(2 / 3)


def test_select_kept_by_fraction_per_class_and_by_score():
    entries = [
        {"file": f"f{i}", "id": f"c{i % 2}/m/{i:06d}", "class": f"c{i % 2}", "score": float(i)}
        for i in range(10)
    ]
    kept = select_kept(entries, keep_fraction=0.6)
    # 3 of the 5 lowest per class: c0 has 0,2,4; c1 has 1,3,5.
    assert [e["file"] for e in kept] == ["f0", "f1", "f2", "f3", "f4", "f5"]
    overall = select_kept(entries, keep_fraction=0.3, per_class=False)
    assert [e["file"] for e in overall] == ["f0", "f1", "f2"]
    assert [e["file"] for e in select_kept(entries, max_score=2.5)] == ["f0", "f1", "f2"]
    with pytest.raises(ValueError):
        select_kept(entries)


def test_keep_set_filters_annotations_and_generations():
    keep = KeepSet("generated", frozenset(), frozenset({"a/m/000001"}), frozenset({("a/m/000001", 1)}))
    gens = [{"id": "a/m/000001", "k": 0}, {"id": "a/m/000001", "k": 1}, {"id": "a/m/000002", "k": 0}]
    assert filter_records(gens, keep) == [gens[1]]
    anns = [{"id": "a/m/000001", "files": {}}, {"id": "a/m/000002", "files": {}}]
    assert filter_records(anns, keep) == [anns[0]]
    assert filter_records(anns, None) == anns


def test_nice_ticks_cover_the_range():
    ticks = nice_ticks(0.13, 7.9, 5)
    assert ticks[0] >= 0.13 and ticks[-1] <= 7.9 and 3 <= len(ticks) <= 8
    assert all(round(t / (ticks[1] - ticks[0]), 6) % 1 == 0 for t in ticks)
