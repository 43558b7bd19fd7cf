"""KCF must find planted errors, on CPU, in minutes: a quarter of the sample's labels turned by 180
degrees (plain KCF on the renders), and a quarter of a kettle's stand-in generated images showing it
turned by 180 degrees (KCF trained on the renders too, the default when generated images are judged)."""

from __future__ import annotations

import json
import shutil

import pytest

from dst3d_addon.core.dataset import ANNOTATIONS
from dst3d_addon.core.files import read_records
from dst3d_addon.kcf.metrics import roc_auc
from tests.batch_script import run_batch
from tests.kcf.kcf_helpers import turn_azimuths, wrong_quarter
from tools.bench_meshes import write_mesh
from tools.kcf_bench_data import plant_content, render, view_ids

#: The render-anchored test's size: views of the kettle, epochs per fold, render size, and the AUC
#: it must reach. 60 views are few: this cell measured 0.757 here (0.5 is chance), and it moves by
#: several hundredths with the render size or view count. tools/bench_kcf_small.py measures the
#: larger sets (0.96-1.0 at 50-200 views, 128 px), so the test asks for clearly better than chance.
VIEWS = 60
EPOCHS = 60
SIZE = 64
MIN_AUC = 0.7


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


@pytest.mark.slow
def test_kcf_trained_on_renders_finds_images_that_show_another_pose(tmp_path):
    """The render-anchored default on a mesh no other test or benchmark uses (the kettle), with the
    error planted in the judged images' content, never in a label the renders could carry
    (spec/kcf-tests.md): a quarter of the stand-in generated images show the kettle turned by 180
    degrees."""
    obj = write_mesh("kettle", tmp_path / "kettle.obj")
    out = render(obj, "kettle", tmp_path / "kettles", VIEWS, SIZE)
    turned = render(obj, "kettle", tmp_path / "turned", VIEWS, SIZE, azimuth_offset=180.0)
    wrong = wrong_quarter(view_ids(out))
    plant_content(out, turned, wrong)
    result = run_batch(
        "kcf", "--out", str(out), "--folds", "3", "--epochs", str(EPOCHS), "--pretrained", "none",
        "--threads", "2", "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "renders of the views" in result.stderr and "WARNING" not in result.stderr
    kcf = json.loads((out / "kcf.json").read_text())
    assert kcf["settings"]["train_renders"] and kcf["learned"]
    auc = roc_auc([e["score"] for e in kcf["images"]], [e["id"] in wrong for e in kcf["images"]])
    print(f"ROC AUC {auc:.3f}")
    assert auc >= MIN_AUC
    assert run_batch("filter", "--out", str(out), "--keep-fraction", "0.75").returncode == 0
