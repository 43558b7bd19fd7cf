"""Did the estimators learn? Held-out accuracy against what chance gets, per fold and overall (pure).

KCF's scores mean something only when the estimators learned the pose: an estimator that ignores
the image can learn no more than the labels' distribution, scores every image by how rare its label
is, and a cut on such scores is a cut at random. So each fold's held-out accuracy at pi/6 is set
against *chance*: the held-out accuracy of the best constant guess for that fold's training labels,
which is what an estimator that learned only the labels' distribution predicts. It follows the
labels' spread: high for a dataset of a few viewpoints, low for views all around the sphere. (The
best guess for the held-out labels themselves is no fairer: on a fold of 10 images it is biased up
to 0.3-0.8 by the choice, and an estimator cannot see those labels.)

The run *learned* when the held-out accuracy of all its images beats their chance by the margin,
`MARGIN` or `SIGMAS` binomial standard deviations of chance over the images, whichever is larger,
and no fold does worse than its own chance. The standard deviations keep a blind estimator from
passing by luck on few images (2 sigma: about one run in 40); the floor asks that at least a tenth
of the images be placed where no blind guess puts them, below which the scores mostly rank how rare
a label is (measured: tools/bench_kcf_small.py, README).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.camera import rotation
from .metrics import THRESHOLDS

#: The accuracy the verdict uses (Acc@pi/6, 3D-DST's figure).
THRESHOLD = THRESHOLDS["pi_6"]
#: The smallest lead over chance that counts as learned (absolute accuracy).
MARGIN = 0.1
#: ... or this many standard deviations of chance's accuracy over the images, if larger.
SIGMAS = 2.0
#: Candidate guesses: the training labels (up to this many, evenly picked) and a 5-degree grid of
#: azimuth x elevation at the labels' mean theta.
MAX_LABEL_CANDIDATES = 4096
GRID_DEG = 5.0


def _rotations(poses: np.ndarray) -> np.ndarray:
    """(N, 9) flattened world-to-camera rotations of (N, 3) poses (azimuth, elevation, theta)."""
    return np.array([rotation(*p).ravel() for p in np.asarray(poses, dtype=np.float64).reshape(-1, 3)])


def _hits(candidates: np.ndarray, targets: np.ndarray, threshold: float) -> np.ndarray:
    """(C,) how many of `targets` lie within `threshold` of each candidate (both (N, 9) rotations)."""
    # angle(R1^T R2) < t  <=>  trace(R1^T R2) > 1 + 2 cos t, and the trace is the flattened dot product.
    bound = 1.0 + 2.0 * math.cos(threshold)
    return np.concatenate(
        [(candidates[i : i + 1024] @ targets.T > bound).sum(axis=1) for i in range(0, len(candidates), 1024)]
    )


def best_guess(labels: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The (9,) rotation of the constant guess right for the most `labels` ((N, 3) poses) at `threshold`.

    Searched among the labels and a 5-degree azimuth x elevation grid, so it is at worst a little
    short of the true best.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1, 3)
    pick = labels
    if len(labels) > MAX_LABEL_CANDIDATES:
        pick = labels[np.linspace(0, len(labels) - 1, MAX_LABEL_CANDIDATES).round().astype(int)]
    theta = float(np.angle(np.exp(1j * labels[:, 2]).mean())) if len(labels) else 0.0
    az = np.deg2rad(np.arange(0.0, 360.0, GRID_DEG))
    el = np.deg2rad(np.arange(-90.0, 90.0 + 1e-9, GRID_DEG))
    grid = np.array([(a, e, theta) for a in az for e in el])
    candidates = _rotations(np.vstack([pick, grid]))
    hits = _hits(candidates, _rotations(labels), threshold) if len(labels) else np.zeros(len(candidates))
    return candidates[int(np.argmax(hits))]


def chance_accuracy(held_out: np.ndarray, held_in: np.ndarray, threshold: float = THRESHOLD) -> float:
    """The accuracy on `held_out` of the best constant guess for `held_in` (both (N, 3) poses); NaN
    for no held-out labels."""
    held_out = np.asarray(held_out, dtype=np.float64).reshape(-1, 3)
    if not len(held_out):
        return float("nan")
    guess = best_guess(held_in if len(np.asarray(held_in).reshape(-1, 3)) else held_out, threshold)
    return float(_hits(guess[None], _rotations(held_out), threshold)[0]) / len(held_out)


def margin(chance: float, images: int) -> float:
    """How far above chance an accuracy over `images` images must be to count as learned."""
    if images <= 0 or math.isnan(chance):
        return MARGIN
    return max(MARGIN, SIGMAS * math.sqrt(chance * (1.0 - chance) / images))


@dataclass(frozen=True)
class Learning:
    """Held-out accuracy at pi/6 over some images (a fold, or the run), chance on them, the margin."""

    images: int
    accuracy: float
    chance: float

    @property
    def margin(self) -> float:
        return margin(self.chance, self.images)

    @property
    def beats_chance(self) -> bool:
        """Clearly above chance: by the margin."""
        return self.accuracy >= self.chance + self.margin

    def as_dict(self) -> dict:
        return {"chance": self.chance, "margin": self.margin}


@dataclass(frozen=True)
class RunLearning:
    """The verdict on a KCF run: each fold's figures and all images' together."""

    folds: dict[int, Learning]
    overall: Learning

    @property
    def weak_folds(self) -> list[int]:
        """The folds that did no better than their chance."""
        return [f for f, fl in self.folds.items() if not fl.accuracy > fl.chance]

    @property
    def learned(self) -> bool:
        return self.overall.beats_chance and not self.weak_folds

    def describe(self) -> str:
        """One line: the overall figures, and the folds no better than chance."""
        o = self.overall
        text = (
            f"held-out accuracy {100 * o.accuracy:.1f}% at pi/6 against chance {100 * o.chance:.1f}%, "
            f"where it must beat chance by {100 * o.margin:.0f} points"
        )
        weak = [f"fold {f} {100 * self.folds[f].accuracy:.0f}% (chance {100 * self.folds[f].chance:.0f}%)"
                for f in self.weak_folds]  # fmt: skip
        return text + (f"; no better than chance: {', '.join(weak)}" if weak else "")


def judge(folds: np.ndarray, errors: np.ndarray, labels: np.ndarray) -> RunLearning:
    """The verdict from every judged image's fold, held-out error (radians) and label ((N, 3) poses)."""
    folds = np.asarray(folds, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1, 3)
    per_fold: dict[int, Learning] = {}
    for f in sorted(set(folds.tolist())):
        held_out = folds == f
        per_fold[f] = fold_learning(errors[held_out], labels[held_out], labels[~held_out])
    n = len(errors)
    hits = sum(fl.accuracy * fl.images for fl in per_fold.values())
    chance = sum(fl.chance * fl.images for fl in per_fold.values())
    overall = Learning(n, hits / n if n else float("nan"), chance / n if n else float("nan"))
    return RunLearning(per_fold, overall)


def fold_learning(errors: np.ndarray, held_out: np.ndarray, held_in: np.ndarray) -> Learning:
    """One fold's figures from its held-out errors and labels and its training labels."""
    errors = np.asarray(errors, dtype=np.float64)
    accuracy = float(np.mean(errors < THRESHOLD)) if errors.size else float("nan")
    return Learning(int(errors.size), accuracy, chance_accuracy(held_out, held_in))


def judge_images(images: Sequence[Mapping]) -> RunLearning | None:
    """The verdict from kcf.json's images (fold, pose, error); None when they lack these."""
    folds, errors, labels = [], [], []
    for e in images:
        fold, pose, error = e.get("fold"), e.get("pose"), e.get("error")
        if not isinstance(fold, int) or not isinstance(error, (int, float)):
            return None
        if not isinstance(pose, (list, tuple)) or len(pose) != 3:
            return None
        try:
            labels.append([float(x) for x in pose])
        except (TypeError, ValueError):
            return None
        folds.append(fold)
        errors.append(float(error))
    if not np.isfinite(np.array(labels, dtype=np.float64)).all() or not np.isfinite(errors).all():
        return None
    return judge(np.array(folds), np.array(errors), np.array(labels)) if folds else None
