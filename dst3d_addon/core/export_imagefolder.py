"""The imagefolder export: Hugging Face's ImageFolder layout, the labels in metadata.jsonl.

    <to>/<split>/<class>/<name>.png      the images; the folder names the class
    <to>/<split>/metadata.jsonl          one line per image: file_name (relative to the split's
                                         folder) and the labels of `export.pose_label`

`datasets.load_dataset("imagefolder", data_dir=<to>)` reads it: splits train (and validation, from
the `val` folder), the image, the class folder as `label`, and every metadata key as a column.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .export_plan import ExportPlan, pose_label
from .export_target import Target, jsonl_bytes

METADATA = "metadata.jsonl"


def write_imagefolder(
    plan: ExportPlan, target: Target, progress: Callable[[int], None], note: Callable[[str], None]
) -> list[str]:
    """Write the imagefolder export; returns notes for the summary (none)."""
    for split in plan.splits:
        rows = []
        for sample in plan.in_split(split):
            folder = plan.folder(sample)
            file_name = f"{folder}/{sample.name}{os.path.splitext(sample.file)[1]}"
            target.image(sample, f"{split}/{file_name}")
            rows.append({"file_name": file_name, **pose_label(sample, folder)})
            progress(1)
        target.file(f"{split}/{METADATA}", jsonl_bytes(rows))
    return []
