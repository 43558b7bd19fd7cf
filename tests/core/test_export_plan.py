"""The export's pure parts: its settings' checks, the split by CAD model, class names, flat image
names, and COCO's compressed RLE (checked against pycocotools' own encoder and decoder)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dst3d_addon.core.errors import SettingError
from dst3d_addon.core.export_coco import encode_mask, rle_counts
from dst3d_addon.core.export_plan import ExportSettings, class_folders, split_models
from dst3d_addon.core.samples import Sample


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "yolo"}, "⟦format⟧ 'yolo': choose one of coco, pascal3d, imagefolder, webdataset"),
        (
            {"format": "coco", "images": "depth"},
            "⟦images⟧ 'depth': choose one of generated, renders, control",
        ),
        ({"format": "coco", "holdout_models": 1.0}, "⟦holdout_models⟧ 1.0: the fraction"),
        ({"format": "coco", "holdout_models": 0.0}, "⟦holdout_models⟧ 0.0: the fraction"),
        ({"format": "coco", "shard_size": 10}, "⟦shard_size⟧: only the webdataset format takes it"),
        ({"format": "pascal3d", "mask": True}, "⟦mask⟧: only the webdataset format takes it"),
        ({"format": "imagefolder", "depth": True}, "⟦depth⟧: only the webdataset format takes it"),
        ({"format": "webdataset", "link": True}, "⟦link⟧: webdataset shards hold copies"),
        ({"format": "webdataset", "shard_size": 0}, "⟦shard_size⟧ 0: must be positive"),
        ({"format": "coco", "source": "imagenet"}, "⟦source⟧: only the pascal3d format takes it"),
        ({"format": "pascal3d", "source": "../up"}, "⟦source⟧ '../up': source '../up' is not a safe"),
    ],
)
def test_settings_name_the_bad_setting(kwargs, message):
    with pytest.raises(SettingError) as err:
        ExportSettings(**kwargs)
    assert err.value.text.startswith(message)


def test_recorded_settings_hold_only_what_changes_the_content():
    base = ExportSettings("coco", images="renders")
    assert ExportSettings("coco", images="renders", link=True, seed=5).recorded() == base.recorded()
    assert ExportSettings("coco", holdout_models=0.2, seed=5).recorded()["seed"] == 5
    assert ExportSettings("pascal3d").recorded()["source"] == "dst3d"
    assert ExportSettings("webdataset").recorded()["shard_size"] == 1000


def test_split_by_model_never_puts_a_model_on_both_sides():
    models = [("car", f"m{i}") for i in range(10)] + [("bus", "b0"), ("bus", "b1")] + [("van", "v0")]
    split, whole = split_models(models * 3, 0.3, seed=1)
    assert set(split) == set(models)
    assert sum(split[("car", f"m{i}")] == "val" for i in range(10)) == 3
    assert sorted(split[("bus", b)] for b in ("b0", "b1")) == ["train", "val"]  # at least one each side
    assert split[("van", "v0")] == "train" and whole == ["van"]
    assert split_models(list(reversed(models)), 0.3, seed=1)[0] == split  # order does not matter
    others = [split_models(models, 0.3, seed=s)[0] for s in range(2, 8)]
    assert any(o != split for o in others)  # the seed picks the models
    assert set(split_models(models, None, 0)[0].values()) == {"train"}


def test_class_folders_use_safe_unique_names_else_keys():
    classes = {
        "n02690373": {"name": "airliner", "synset": "n02690373"},
        "n02958343": {"name": "police car", "synset": "n02958343"},
        "n03000000": {"name": "jet", "synset": "n03000000"},
        "n03000001": {"name": "jet", "synset": "n03000001"},
        "boat": {"name": "boat", "synset": None},
    }
    assert class_folders(classes) == {
        "n02690373": "airliner",
        "n02958343": "n02958343",
        "n03000000": "n03000000",
        "n03000001": "n03000001",
        "boat": "boat",
    }


def test_flat_names_are_unique():
    def sample(model: str, view: int, k: int | None) -> Sample:
        return Sample(f"x/{model}/{view}", k, {"id": f"c/{model}/{view:06d}"})

    names = {
        sample("a_000001", 2, None).name,
        sample("a", 1, None).name,
        sample("a", 1, 2).name,
        sample("a_000001", 2, 0).name,
    }
    assert len(names) == 4 and sample("a", 1, 2).name == "a_000001_2"


def test_rle_is_pycocotools_own():
    rng = np.random.default_rng(0)
    masks = [
        np.zeros((5, 7), bool),
        np.ones((5, 7), bool),
        np.eye(6, dtype=bool),
        rng.random((31, 17)) > 0.5,
        rng.random((64, 64)) > 0.97,
    ]
    blob = np.zeros((64, 48), bool)
    blob[10:40, 5:30] = True
    masks.append(blob)
    for mask in masks:
        ours = encode_mask(mask)
        theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"].decode("ascii")
        assert ours["size"] == list(theirs["size"])
        np.testing.assert_array_equal(mask_utils.decode({**ours, "counts": ours["counts"].encode()}), mask)
        assert sum(rle_counts(mask)) == mask.size
