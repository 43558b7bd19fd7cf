"""Helpers of the prompt tests: a dataset folder with annotation records but no images (the prompts
stage reads only the annotations), made in milliseconds without Blender."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dst3d_addon.core.camera import Intrinsics, Pose
from dst3d_addon.core.dataset import ANNOTATIONS, Dataset
from dst3d_addon.core.records import annotation_record

#: (class name, synset or None, model id, CAD path) of the default fake dataset.
MODELS = (
    ("airliner", "n02690373", "jet_a", "planes/jet_a.glb"),
    ("airliner", "n02690373", "jet_b", "planes/jet_b.glb"),
    ("chair", None, "stool", "chairs/stool.obj"),
)


def fake_dataset(
    out: Path, models: Sequence[tuple[str, str | None, str, str]] = MODELS, views: int = 2
) -> Path:
    """A dataset folder whose annotations name these models (no control images or renders)."""
    dataset = Dataset.open(out, "render", {"fake": True}, tool_version="test")
    dataset.add_classes({(s or c): {"name": c, "synset": s} for c, s, _m, _p in models})
    records = []
    for class_name, synset, model, path in models:
        for view in range(views):
            ann_id = f"{synset or class_name}/{model}/{view:06d}"
            records.append(
                annotation_record(
                    annotation_id=ann_id,
                    class_name=class_name,
                    synset=synset,
                    cad_path=path,
                    model_id=model,
                    to_object=np.eye(4),
                    pose=Pose(0.1 * view, 0.2, 0.0, 3.0),
                    intrinsics=Intrinsics.from_lens(64, 64),
                    bbox=None,
                    truncated=False,
                    seed=view,
                    files={
                        "control": f"control/{ann_id}.png",
                        "mask": f"masks/{ann_id}.png",
                        "depth": f"depth/{ann_id}.npz",
                    },
                )
            )
    dataset.append(ANNOTATIONS, records)
    return out
