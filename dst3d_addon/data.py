"""A PyTorch dataset over a dst3d folder itself: image, mask and pose target per item.

    from torch.utils.data import DataLoader
    from dst3d_addon.data import Dst3dDataset

    loader = DataLoader(Dst3dDataset("runs/sample", images="renders"), batch_size=32, shuffle=True, num_workers=4)

The filter's keep set is respected (`respect_keep=False` takes every image). torch is imported
only when an item is turned into tensors (`tensors=True`, the default), so importing this module,
building the dataset and `tensors=False` items need numpy and OpenCV only. The dataset holds
plain Python data and opens each file only while reading it, so DataLoader workers (forked or
spawned) can share it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .core.errors import DatasetError
from .core.samples import Sample, collect_samples

#: The order of `pose` in an item.
POSE_KEYS = ("azimuth", "elevation", "theta", "distance")


def _read(path: Path, flags: int) -> np.ndarray:
    data = np.fromfile(os.fspath(path), dtype=np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, flags) if data is not None and data.size else None
    if image is None:
        raise DatasetError(f"{path}: cannot read the image")
    return image


class Dst3dDataset:
    """A map-style dataset (torch's `Dataset` protocol: `len` and indexing) of one kind of image.

    Each item is a dict:

    - `image`: the image, float32 C x H x W in [0, 1], RGB (uint8 H x W x 3 with `tensors=False`)
    - `mask`: bool H x W, the object's mask (with `mask=True`, the default)
    - `pose`: float32 [azimuth, elevation, theta, distance] (radians, object units; pose-convention.md)
    - `label`: the class index into `classes`
    - `K`, `R`, `C`, `R_cv`, `t_cv`, `bbox`: float32 (the view's camera; R and C look down -z,
      R_cv and t_cv are OpenCV's)
    - `id`, `file`: the view id and the image's file (strings), `k`: the image index (-1 for
      renders and control images)

    `transform(item) -> item` runs last (in the DataLoader worker). Items of different image sizes
    do not batch together: resize in `transform`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        images: str = "generated",
        *,
        respect_keep: bool = True,
        classes: Sequence[str] = (),
        mask: bool = True,
        tensors: bool = True,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.images = images
        self.samples: list[Sample] = collect_samples(
            self.root, images, respect_keep=respect_keep, classes=classes
        )
        #: The class keys (synset, else name), sorted; `label` indexes this list.
        self.classes: list[str] = sorted({s.class_key for s in self.samples})
        self.class_names: list[str] = [
            next(s.annotation["class"]["name"] for s in self.samples if s.class_key == key)
            for key in self.classes
        ]
        self._label = {key: i for i, key in enumerate(self.classes)}
        self.mask = mask
        self.tensors = tensors
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        ann = sample.annotation
        cam = ann["camera"]
        image = _read(self.root / sample.file, cv2.IMREAD_COLOR)
        item: dict[str, Any] = {
            "image": cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
            "pose": np.array([ann["pose"][k] for k in POSE_KEYS], dtype=np.float32),
            "label": self._label[sample.class_key],
            **{key: np.asarray(cam[key], dtype=np.float32) for key in ("K", "R", "C", "R_cv", "t_cv")},
            "bbox": np.asarray(ann["bbox"] if ann["bbox"] is not None else [0.0] * 4, dtype=np.float32),
            "id": sample.id,
            "k": -1 if sample.k is None else sample.k,
            "file": sample.file,
        }
        if self.mask:
            item["mask"] = _read(self.root / ann["files"]["mask"], cv2.IMREAD_GRAYSCALE) > 0
        if self.tensors:
            item = _as_tensors(item)
        return self.transform(item) if self.transform is not None else item


def _as_tensors(item: dict[str, Any]) -> dict[str, Any]:
    """The item's arrays as torch tensors (the image as float C x H x W in [0, 1])."""
    import torch

    out = dict(item)
    out["image"] = (
        torch.from_numpy(np.ascontiguousarray(item["image"].transpose(2, 0, 1))).float().div_(255.0)
    )
    for key, value in item.items():
        if key != "image" and isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(value)
    return out
