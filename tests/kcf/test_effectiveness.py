"""KCF must find wrong labels: a quarter of the sample's renders get their azimuth turned by 180 deg,
and the held-out loss must rank those above the right ones (ROC AUC >= 0.9), on CPU, in minutes."""

from __future__ import annotations

import json
import shutil

import pytest

from dst3d_addon.core.dataset import ANNOTATIONS
from dst3d_addon.core.files import read_records
from dst3d_addon.kcf.metrics import roc_auc
from tests.batch_script import run_batch
from tests.kcf.kcf_helpers import turn_azimuths, wrong_quarter


@pytest.mark.slow
def test_kcf_ranks_turned_labels_above_right_ones(renders_64, tmp_path):
    out = tmp_path / "noisy"
    shutil.copytree(renders_64, out)
    ids = [r["id"] for r in read_records(out / ANNOTATIONS)]
    wrong = wrong_quarter(ids)
    turn_azimuths(out, wrong)
    result = run_batch(
        "kcf", "--out", str(out), "--images", "renders", "--folds", "4", "--epochs", "25",
        "--batch-size", "16", "--image-size", "64", "--backbone", "resnet-tiny", "--optimizer", "adamw",
        "--lr", "0.003", "--threads", "2", "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    kcf = json.loads((out / "kcf.json").read_text())
    images = kcf["images"]
    assert len(images) == len(ids) == 160
    scores = [e["score"] for e in images]
    positive = [e["id"] in wrong for e in images]
    auc = roc_auc(scores, positive)
    print(f"ROC AUC {auc:.3f}")
    assert auc >= 0.9
    # The filter then keeps mostly right labels: at 75% kept, far fewer than a quarter are wrong.
    result = run_batch("filter", "--out", str(out), "--keep-fraction", "0.75")
    assert result.returncode == 0, result.stderr
    kept = [json.loads(line) for line in (out / "keep.jsonl").read_text().splitlines()]
    assert len(kept) == 120
    assert sum(k["id"] in wrong for k in kept) / len(kept) < 0.1
