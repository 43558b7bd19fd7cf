"""An eval's files in its folder, and its results: Acc@pi/6, Acc@pi/18 and the median geodesic error
per class and over all test objects, from the worker's predictions (pure).

    eval.json                 the settings, the fingerprint of the settings and both sides' objects
                              (written first; a folder holding another eval's is refused)
    job.json                  what the worker was given
    checkpoint.safetensors    the network and optimizer after the last finished epoch (the resume
                              unit; removed once model.safetensors is written)
    model.safetensors         the trained network (a KCF PoseNet: give it to --init, or load it with
                              dst3d_addon.kcf.estimator.PoseNet)
    predictions.json          the worker's predicted pose of every test object
    results.json              the metrics per class and overall, and every test object's error
    confusion.png             true against predicted azimuth, per class
    logs/eval-worker.log      the worker's own output
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DatasetError
from ..core.files import write_json_atomic
from ..kcf.bins import pose_errors
from ..kcf.metrics import THRESHOLDS, accuracy_at
from .sources import EvalItem

FORMAT = 1
EVAL_JSON = "eval.json"
JOB = "job.json"
CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"
PREDICTIONS = "predictions.json"
RESULTS = "results.json"
CONFUSION = "confusion.png"
LOG = Path("logs") / "eval-worker.log"


def read_json(path: Path, fingerprint: str) -> dict | None:
    """A JSON file of this eval (its `fingerprint` matches), else None (missing, torn or another's)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint:
        return None
    return data


def metrics(errors: np.ndarray) -> dict[str, Any]:
    """Acc at pi/6 and pi/18 and the median error (radians and degrees) of some geodesic errors."""
    e = np.asarray(errors, dtype=np.float64)
    median = float(np.median(e)) if e.size else float("nan")
    return {
        "images": int(e.size),
        "accuracy": {k: accuracy_at(e, t) for k, t in THRESHOLDS.items()},
        "median_error": median,
        "median_error_deg": math.degrees(median),
    }


def assemble(
    test: Sequence[EvalItem], predictions: dict, settings: dict[str, Any], fingerprint: str, tool_version: str
) -> dict[str, Any]:
    """The content of results.json from the test objects and the worker's predictions."""
    pred = np.asarray(predictions["pred"], dtype=np.float64).reshape(-1, 3)
    if len(pred) != len(test):
        raise DatasetError(
            f"{PREDICTIONS}: {len(pred)} predictions for {len(test)} test objects; delete it and rerun"
        )
    label = np.array([it.pose for it in test], dtype=np.float64).reshape(-1, 3)
    errors = pose_errors(pred, label) if len(test) else np.zeros(0)
    classes = np.array([it.class_name for it in test])
    per_class = {name: metrics(errors[classes == name]) for name in sorted(set(classes.tolist()))}
    return {
        "format": FORMAT,
        "tool": {"name": "dst3d", "version": tool_version},
        "fingerprint": fingerprint,
        "settings": settings,
        "overall": metrics(errors),
        "classes": per_class,
        "train_loss": predictions.get("train_loss", []),
        "initialisation": predictions.get("initialisation"),
        "timing": predictions.get("timing", {}),
        "images": [
            {**it.as_dict(), "pred": [float(x) for x in p], "error": float(e)}
            for it, p, e in zip(test, pred, errors, strict=True)
        ],
    }


def write_results(to: str | os.PathLike, content: dict) -> Path:
    """Write results.json atomically; returns its path."""
    path = Path(to) / RESULTS
    write_json_atomic(path, content)
    return path
