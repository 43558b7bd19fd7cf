"""KCF's files: one result file per finished fold under <out>/kcf/, and kcf.json assembled from them.

A fold file is written atomically by the worker once the fold's model is trained and its held-out
images are scored; it carries the run's fingerprint (settings + images + labels + folds), so a
resumed run reuses exactly the folds that were finished with the same inputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DatasetError, setting
from ..core.files import write_json_atomic
from ..core.ids import check_relative_path
from .bins import pose_errors
from .items import Item
from .learning import judge
from .metrics import THRESHOLDS, accuracy_at

FORMAT = 1
KCF_JSON = "kcf.json"
KCF_DIR = "kcf"


def fold_path(out: str | os.PathLike, fold: int) -> Path:
    """<out>/kcf/fold_<i>.json."""
    return Path(out) / KCF_DIR / f"fold_{fold}.json"


def read_fold(out: str | os.PathLike, fold: int, fingerprint: str) -> dict | None:
    """A finished fold's results if its file exists and was made from the same inputs, else None."""
    path = fold_path(out, fold)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint or data.get("fold") != fold:
        return None
    return data


def write_fold(out: str | os.PathLike, result: dict) -> None:
    """Write one fold's results atomically (the worker calls this when the fold is done)."""
    write_json_atomic(fold_path(out, int(result["fold"])), result)


def assemble(
    items: Sequence[Item],
    folds: Sequence[int],
    fold_results: Sequence[dict],
    settings: dict[str, Any],
    fingerprint: str,
    tool_version: str,
) -> dict:
    """The content of kcf.json: per image score, fold, prediction and error; per fold accuracy."""
    by_file: dict[str, dict] = {}
    for result in fold_results:
        for entry in result["images"]:
            by_file[entry["file"]] = entry
    missing = [it.file for it in items if it.file not in by_file]
    if missing:
        raise DatasetError(f"kcf: no score for {missing[0]} ({len(missing)} images unscored); rerun kcf")
    pred = np.array([by_file[it.file]["pred"] for it in items], dtype=np.float64).reshape(-1, 3)
    label = np.array([it.pose for it in items], dtype=np.float64).reshape(-1, 3)
    errors = pose_errors(pred, label) if len(items) else np.zeros(0)
    scores = np.array([float(by_file[it.file]["score"]) for it in items])
    fold_arr = np.asarray(folds)
    verdict = judge(fold_arr, errors, label)
    per_fold = []
    for result in sorted(fold_results, key=lambda r: r["fold"]):
        f = int(result["fold"])
        mask = fold_arr == f
        per_fold.append(
            {
                "fold": f,
                "images": int(mask.sum()),
                "train_images": int(result["train_images"]),
                "train_renders": int(result.get("train_renders", 0)),
                "accuracy": {k: accuracy_at(errors[mask], t) for k, t in THRESHOLDS.items()},
                "chance": verdict.folds[f].chance if f in verdict.folds else None,
                "median_error": float(np.median(errors[mask])) if mask.any() else None,
                "mean_score": float(scores[mask].mean()) if mask.any() else None,
                "initialisation": result.get("initialisation"),
                "train_loss": result.get("train_loss", []),
                "timing": result.get("timing", {}),
            }
        )
    images = [
        {
            "file": it.file,
            "id": it.id,
            "k": it.k,
            "class": it.class_key,
            "fold": int(f),
            "score": float(s),
            "pose": [it.azimuth, it.elevation, it.theta],
            "pred": [float(x) for x in p],
            "error": float(e),
        }
        for it, f, s, p, e in zip(items, folds, scores, pred, errors, strict=True)
    ]
    return {
        "format": FORMAT,
        "tool": {"name": "dst3d", "version": tool_version},
        "settings": settings,
        "fingerprint": fingerprint,
        "accuracy": {k: accuracy_at(errors, t) for k, t in THRESHOLDS.items()},
        # Did the estimators learn? (kcf/learning.py: accuracy at pi/6 against chance, by a margin)
        "chance": verdict.overall.chance,
        "margin": verdict.overall.margin,
        "learned": verdict.learned,
        "folds": per_fold,
        "images": images,
    }


def write_kcf(out: str | os.PathLike, content: dict) -> Path:
    """Write kcf.json atomically; returns its path."""
    path = Path(out) / KCF_JSON
    write_json_atomic(path, content)
    return path


def load_kcf(out: str | os.PathLike) -> dict:
    """kcf.json of a dataset folder; DatasetError with one line if it is missing or malformed."""
    path = Path(out) / KCF_JSON
    if not Path(out).is_dir():
        raise DatasetError(f"{setting('out')} {out}: no such dataset folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found; run the kcf stage first") from None
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read ({err}); rerun the kcf stage") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: not a dst3d kcf.json of format {FORMAT}; rerun the kcf stage")
    for i, entry in enumerate(data["images"]):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("file"), str)
            or not isinstance(entry.get("score"), (int, float))
        ):
            raise DatasetError(f"{path}: images[{i}] has no file or score; rerun the kcf stage")
        try:  # a hand-edited path must not lead a reader out of the dataset folder
            check_relative_path(entry["file"], f"images[{i}].file")
        except DatasetError as err:
            raise DatasetError(f"{path}: {err.text}; rerun the kcf stage") from None
    return data
