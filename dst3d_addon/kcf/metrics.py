"""Accuracy at an angle threshold and the area under the ROC curve (ties counted as one half)."""

from __future__ import annotations

import math

import numpy as np

THRESHOLDS = {"pi_6": math.pi / 6, "pi_18": math.pi / 18}


def accuracy_at(errors: np.ndarray, threshold: float) -> float:
    """The fraction of errors below `threshold` (NaN for no errors)."""
    e = np.asarray(errors, dtype=np.float64)
    return float(np.mean(e < threshold)) if e.size else float("nan")


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half.

    This is the Mann-Whitney U statistic over average ranks; ValueError if either class is empty.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the ROC AUC needs at least one positive and one negative")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
