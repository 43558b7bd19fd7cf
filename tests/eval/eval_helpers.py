"""Helpers of the eval tests: a small PASCAL3D+-layout folder written directly (no render)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dst3d_addon.core import pascal3d as p3


def pascal3d(root: Path, names=("a", "b"), cls: str = "car", split: str | None = "val") -> Path:
    """A PASCAL3D+-layout folder: one 40x30 image and one annotated object per name."""
    subset = p3.subset(cls, "imagenet")
    vp = p3.Viewpoint(30.0, 10.0, 0.0, 3.0, 1.0, 50.0, 20.5, 15.5)
    for name in names:
        obj = p3.Pascal3dObject(cls, (5.0, 5.0, 30.0, 25.0), vp, 1)
        data = p3.annotation_bytes(
            filename=f"{name}.png", subset_name=subset, width=40, height=30, objects=[obj]
        )
        (root / p3.ANNOTATIONS / subset).mkdir(parents=True, exist_ok=True)
        (root / p3.ANNOTATIONS / subset / f"{name}.mat").write_bytes(data)
        (root / p3.IMAGES / subset).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / p3.IMAGES / subset / f"{name}.png"), np.full((30, 40, 3), 128, np.uint8))
    if split:
        (root / p3.IMAGE_SETS).mkdir(exist_ok=True)
        (root / p3.image_set_name(subset, split)).write_text("\n".join(names) + "\n")
    return root
