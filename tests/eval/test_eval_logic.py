"""The eval stage's pure parts: crops around a box, the metrics per class, the azimuth confusion,
the settings a rerun compares, and PASCAL3D+ objects it leaves out."""

from __future__ import annotations

import math
from collections import Counter

import cv2
import numpy as np
import pytest

from dst3d_addon.core import pascal3d as p3
from dst3d_addon.eval.picture import confusion, draw_confusion
from dst3d_addon.eval.results import assemble
from dst3d_addon.eval.settings import open_source
from dst3d_addon.eval.sources import EvalItem, read_items
from dst3d_addon.kcf.images import crop_square
from tests.eval.eval_helpers import pascal3d


def test_a_crop_is_the_square_around_the_box_with_black_outside():
    image = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    crop = crop_square(image, (2.0, 2.0, 6.0, 4.0), margin=0.0)
    assert crop.shape == (4, 4, 3) and (crop == image[1:5, 2:6]).all()
    wide = crop_square(image, (2.0, 2.0, 6.0, 4.0), margin=1.0)  # 8 x 8 around (4, 3): rows -1 .. 6
    assert wide.shape == (8, 8, 3) and (wide[0] == 0).all() and (wide[1:, :] == image[0:7, 0:8]).all()
    assert crop_square(image, (-9.0, -9.0, -1.0, -1.0), margin=0.0).sum() == 0  # outside: all black


def item(key: str, cls: str, pose: tuple[float, float, float]) -> EvalItem:
    return EvalItem(file=f"/x/{key}.png", key=key, view=key, class_name=cls, box=(0, 0, 8, 8), pose=pose)


def test_metrics_per_class_and_overall():
    test = [
        item("a", "car", (0.1, 0.2, 0.0)),
        item("b", "car", (1.0, 0.0, 0.0)),
        item("c", "bus", (2.0, 0.1, 0.0)),
    ]
    pred = [[0.1, 0.2, 0.0], [1.0 + math.radians(20), 0.0, 0.0], [2.0 + math.pi, 0.1, 0.0]]
    results = assemble(test, {"pred": pred, "train_loss": [1.0]}, {"s": 1}, "fp", "0.1.0")
    car, bus = results["classes"]["car"], results["classes"]["bus"]
    assert car["images"] == 2 and car["accuracy"] == {"pi_6": 1.0, "pi_18": 0.5}
    assert car["median_error_deg"] == pytest.approx(10.0, abs=1e-6)  # errors 0 and 20 degrees
    assert bus["accuracy"] == {"pi_6": 0.0, "pi_18": 0.0} and bus["median_error_deg"] == pytest.approx(180.0)
    assert results["overall"]["accuracy"]["pi_6"] == pytest.approx(2 / 3)
    assert [e["error"] for e in results["images"]] == pytest.approx([0.0, math.radians(20), math.pi])


def test_confusion_counts_labelled_against_predicted_azimuth(tmp_path):
    counts = confusion(np.radians([5.0, 5.0, 185.0, 359.0]), np.radians([5.0, 190.0, 185.0, -1.0]), bins=24)
    assert counts.sum() == 4 and counts[0, 0] == 1 and counts[12, 0] == 1 and counts[12, 12] == 1
    assert counts[23, 23] == 1  # -1 degree is 359
    test = [item("a", "car", (0.1, 0.2, 0.0)), item("c", "bus", (2.0, 0.1, 0.0))]
    results = assemble(test, {"pred": [[0.1, 0.2, 0.0], [2.0, 0.1, 0.0]]}, {}, "fp", "0.1.0")
    path = draw_confusion(results, tmp_path / "c.png")
    image = cv2.imread(str(path))
    assert image.shape[1] == 3 * 320  # bus, car and all classes side by side


def test_pascal3d_objects_without_labels_or_marked_hard_are_left_out(tmp_path):
    root = pascal3d(tmp_path / "p", names=("a", "b", "c", "d"))
    vp = p3.Viewpoint(30.0, 10.0, 0.0, 3.0, 1.0, 50.0, 20.5, 15.5)
    objects = {
        "b": p3.Pascal3dObject("car", (5.0, 5.0, 30.0, 25.0), vp, 1, occluded=True),
        "c": p3.Pascal3dObject("car", (5.0, 5.0, 30.0, 25.0), None, 1),
        "d": p3.Pascal3dObject("bus", (5.0, 5.0, 30.0, 25.0), vp, 1),
    }
    for name, obj in objects.items():
        data = p3.annotation_bytes(
            filename=f"{name}.png", subset_name="car_imagenet", width=40, height=30, objects=[obj]
        )
        (root / p3.ANNOTATIONS / "car_imagenet" / f"{name}.mat").write_bytes(data)
    side = read_items(open_source("test", root, classes=("car",)))
    assert [it.key for it in side.items] == ["car_imagenet/a#1"]
    assert side.left_out == Counter({"no viewpoint": 1, "truncated, occluded or difficult": 1})
    (a,) = side.items
    assert a.pose == pytest.approx((math.radians(30), math.radians(10), 0.0))
    assert a.box == (5.0, 5.0, 30.0, 25.0) and a.file == str(root / "Images" / "car_imagenet" / "a.png")
    everything = read_items(open_source("test", root, split="val"))
    assert everything.classes == ["bus", "car"]
