"""The webdataset export: tar shards in WebDataset's layout.

    <to>/<split>-<NNNNNN>.tar      --shard-size samples a shard (the last one fewer), in file order

A sample's key is `<class>/<name>` (a dot in the name, which webdataset would read as the start of
the extension, is written %2E) and its entries are `<key>.png` (the image's bytes as they are),
`<key>.json` (the labels of `export.pose_label`), and with the options `<key>.mask.png` (the mask
file) and `<key>.depth.npy` (float32 depth, inf = background).

The shards are written with Python's tarfile exactly as `webdataset.TarWriter` writes them (a
stream, entries sorted by extension, a fixed time and owner, mode 0444): a test checks the bytes
against TarWriter's and reads them back with webdataset. The library is not imported here because
importing it imports torch where torch is installed, and the batch script stays torch-free. A
shard's bytes depend only on its samples; a finished shard is never rewritten on resume.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError, setting
from .export_plan import DEFAULT_SHARD_SIZE, ExportPlan, pose_label
from .export_target import Target
from .files import atomic_file, read_depth_npz
from .samples import Sample

#: The user and group of every entry.
OWNER = "dst3d"


def sample_key(class_name: str, sample: Sample) -> str:
    """The webdataset key of a sample (no dot in its last part)."""
    return f"{class_name}/{sample.name.replace('.', '%2E')}"


def write_sample(tar: tarfile.TarFile, entry: dict[str, Any]) -> None:
    """Add one sample ({"__key__": key, extension: bytes, ...}) as webdataset.TarWriter.write does."""
    key = entry["__key__"]
    for ext in sorted(entry):
        if ext == "__key__":
            continue
        data = entry[ext]
        info = tarfile.TarInfo(f"{key}.{ext}")
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o444
        info.uname = info.gname = OWNER
        tar.addfile(info, io.BytesIO(data))


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def _depth(path: Path) -> np.ndarray:
    if path.suffix != ".npz":
        raise DatasetError(f"{path}: {setting('depth')} reads .npz depth maps only")
    try:
        return read_depth_npz(path)
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(f"{path}: cannot read the depth map ({err})") from None


def write_webdataset(
    plan: ExportPlan, target: Target, progress: Callable[[int], None], note: Callable[[str], None]
) -> list[str]:
    """Write the shards; returns notes for the summary (none)."""
    size = plan.settings.shard_size or DEFAULT_SHARD_SIZE
    for split in plan.splits:
        members = plan.in_split(split)
        for index, start in enumerate(range(0, len(members), size)):
            chunk = members[start : start + size]
            rel = shard_name(split, index)
            if target.has(rel):
                target.unchanged += len(chunk)
                progress(len(chunk))
                continue
            with atomic_file(target.path(rel)) as handle, tarfile.open(fileobj=handle, mode="w|") as tar:
                for sample in chunk:
                    folder = plan.folder(sample)
                    files = sample.annotation["files"]
                    ext = os.path.splitext(sample.file)[1].lstrip(".")
                    label = json.dumps(pose_label(sample, folder), ensure_ascii=False, allow_nan=False)
                    entry = {
                        "__key__": sample_key(folder, sample),
                        ext: target.source(sample.file).read_bytes(),
                        "json": label.encode("utf-8"),
                    }
                    if plan.settings.mask:
                        entry["mask.png"] = target.source(files["mask"]).read_bytes()
                    if plan.settings.depth:
                        entry["depth.npy"] = _npy(_depth(target.source(files["depth"])))
                    write_sample(tar, entry)
                    target.copied += 1
                    progress(1)
    return []
