"""dst3d_addon.data.Dst3dDataset: items that match the records and files, the keep set, DataLoader
workers, and torch imported only when items become tensors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dst3d_addon.core.errors import DatasetError
from dst3d_addon.core.records import load_annotations
from dst3d_addon.data import Dst3dDataset
from tests.batch_script import ROOT
from tests.export.conftest import CLASSES, VIEWS
from tests.export.export_helpers import keep_only

N_IMAGES = VIEWS * sum(len(models) for _, models in CLASSES.values())


def test_items_match_the_records_and_files(rendered):
    data = Dst3dDataset(rendered, images="renders")
    records = {r["id"]: r for r in load_annotations(rendered)}
    assert len(data) == N_IMAGES
    assert data.classes == ["jet", "n02690373"] and data.class_names == ["jet", "airliner"]
    for item in (data[0], data[len(data) - 1]):
        record = records[item["id"]]
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
        expected = cv2.cvtColor(cv2.imread(str(rendered / record["files"]["render"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal((item["image"] * 255).round().byte().permute(1, 2, 0).numpy(), expected)
        mask = cv2.imread(str(rendered / record["files"]["mask"]), cv2.IMREAD_GRAYSCALE) > 0
        np.testing.assert_array_equal(item["mask"].numpy(), mask)
        pose = [record["pose"][k] for k in ("azimuth", "elevation", "theta", "distance")]
        np.testing.assert_allclose(item["pose"].numpy(), pose, rtol=1e-6)
        for key in ("K", "R", "C", "R_cv", "t_cv", "bbox"):
            np.testing.assert_allclose(
                item[key].numpy(), record["camera"].get(key, record.get(key)), atol=1e-5
            )
        assert data.classes[item["label"]] == record["id"].split("/")[0]
        assert item["k"] == -1 and item["file"] == record["files"]["render"]


def test_the_keep_set_is_respected(dataset):
    ids = sorted(r["id"] for r in load_annotations(dataset))
    keep_only(dataset, ids[:6])
    assert sorted(Dst3dDataset(dataset, images="control").samples[i].id for i in range(6)) == ids[:6]
    assert len(Dst3dDataset(dataset, images="control")) == 6
    assert len(Dst3dDataset(dataset, images="control", respect_keep=False)) == N_IMAGES
    with pytest.raises(DatasetError, match=r"has no generated images"):
        Dst3dDataset(dataset)


def test_dataloader_workers_give_the_same_batches(rendered):
    data = Dst3dDataset(rendered, images="renders")
    clone = pickle.loads(pickle.dumps(data))  # what a spawned worker gets
    assert len(clone) == len(data) and clone.samples == data.samples
    batches = [list(DataLoader(data, batch_size=8, num_workers=n)) for n in (0, 2)]
    assert len(batches[0]) == len(batches[1]) == 3
    for one, other in zip(*batches, strict=True):
        assert one["id"] == other["id"]
        for key in ("image", "mask", "pose", "label", "K", "R_cv"):
            assert torch.equal(one[key], other[key]), key
    assert batches[0][0]["image"].shape == (8, 3, 64, 64)


TORCH_BLOCKED = """
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] == "torch":
            raise ImportError("blocked: " + fullname)

sys.meta_path.insert(0, Block())
from dst3d_addon.data import Dst3dDataset

item = Dst3dDataset(sys.argv[1], images="control", tensors=False)[0]
print(json.dumps({"image": list(item["image"].shape), "mask": str(item["mask"].dtype), "torch": "torch" in sys.modules}))
"""


def test_torch_is_imported_only_for_tensors(rendered):
    done = subprocess.run(
        [sys.executable, "-c", TORCH_BLOCKED, str(rendered)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"image": [64, 64, 3], "mask": "bool", "torch": False}
