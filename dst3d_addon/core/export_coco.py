"""The coco export: COCO instances JSON per split, with masks as compressed RLE and the pose as extra keys.

    <to>/<split>/<class>/<name>.png              the images (split: train, and val with a holdout)
    <to>/annotations/instances_<split>.json      images, categories (name, synset), annotations

Each image has one annotation: `bbox` [x, y, w, h], `area` (mask pixels), `iscrowd` 0,
`segmentation` (RLE of the mask file, in pycocotools' compressed form), and the labels of
`export.pose_label` (azimuth, elevation, theta, distance, K, R, C, R_cv, t_cv, ...) as extra keys,
the view id as `dst3d_id`.
The RLE is written here without pycocotools; tests check it with pycocotools' own decoder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from .errors import DatasetError
from .export_plan import ExportPlan, pose_label
from .export_target import Target


def rle_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE of a mask: run lengths in column-major order, starting with a run of 0s."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    return [0, *counts] if flat[0] else counts


def rle_string(counts: list[int]) -> str:
    """pycocotools' compressed form of RLE counts (maskApi.c's rleToString: LEB128-like, 6 bits a
    character from '0', each count after the second stored as the difference to the one two back)."""
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A COCO `segmentation` of a mask: {"size": [h, w], "counts": compressed RLE}."""
    h, w = np.asarray(mask).shape[:2]
    return {"size": [int(h), int(w)], "counts": rle_string(rle_counts(mask))}


def read_mask(path: os.PathLike) -> np.ndarray:
    """A mask file (0/255 PNG) as a boolean array; DatasetError naming the file if unreadable."""
    data = np.fromfile(os.fspath(path), dtype=np.uint8) if os.path.isfile(path) else None
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data is not None and data.size else None
    if mask is None:
        raise DatasetError(f"{path}: cannot read the mask")
    return mask > 0


def write_coco(
    plan: ExportPlan, target: Target, progress: Callable[[int], None], note: Callable[[str], None]
) -> list[str]:
    """Write the coco export (see the module's docstring); returns notes for the summary (none)."""
    categories = [
        {
            "id": i,
            "name": plan.folders[key],
            "supercategory": "object",
            "synset": desc["synset"],
            "dst3d_class": key,
        }
        for i, (key, desc) in enumerate(plan.classes.items(), start=1)
    ]
    category_of = {c["dst3d_class"]: c["id"] for c in categories}
    for split in plan.splits:
        images, annotations = [], []
        for number, sample in enumerate(plan.in_split(split), start=1):
            folder = plan.folder(sample)
            ext = os.path.splitext(sample.file)[1]
            file_name = f"{folder}/{sample.name}{ext}"
            target.image(sample, f"{split}/{file_name}")
            cam = sample.annotation["camera"]
            mask = read_mask(target.source(sample.annotation["files"]["mask"]))
            if mask.shape != (cam["height"], cam["width"]):
                raise DatasetError(
                    f"{target.source(sample.annotation['files']['mask'])}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                    f"the camera {cam['width']}x{cam['height']}"
                )
            u0, v0, u1, v1 = sample.annotation["bbox"]
            images.append(
                {"id": number, "file_name": file_name, "width": cam["width"], "height": cam["height"],
                 "dst3d_id": sample.id, "k": sample.k}
            )  # fmt: skip
            label = pose_label(sample, folder)
            label["dst3d_id"] = label.pop("id")  # COCO's id is the annotation's number
            del label["bbox"]  # COCO's bbox is [x, y, w, h]
            annotations.append(
                {
                    "id": number,
                    "image_id": number,
                    "category_id": category_of[sample.class_key],
                    "bbox": [u0, v0, u1 - u0, v1 - v0],
                    "area": int(mask.sum()),
                    "iscrowd": 0,
                    "segmentation": encode_mask(mask),
                    **label,
                }
            )
            progress(1)
        content = {
            "info": {
                "description": f"dst3d export of {plan.out.name} ({plan.settings.images} images, {split})"
            },
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
        target.file(f"annotations/instances_{split}.json", text.encode("utf-8"))
    return []
