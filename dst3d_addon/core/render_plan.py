"""What a render run has to do: the models, their ids, the shard's views, the dataset they go to,
and the tasks the render workers get. The batch script's render stage and the panel's export both
plan here, so they open a dataset and skip finished views the same way."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dataset import ANNOTATIONS, Dataset
from .errors import SettingError, setting
from .ids import sanitize_model_id
from .seeds import derive_seed

#: File and folder names that say nothing about the model (ShapeNet's model_normalized.obj, ...).
GENERIC_NAMES = {
    "model",
    "model_normalized",
    "models",
    "mesh",
    "scan",
    "textured",
    "raw",
    "object",
    "obj",
    "glb",
    "glbs",
}


def model_id_from_path(path: str | Path) -> str:
    """A model id from a CAD path: its stem, or the nearest folder name when the stem is generic.

    `.../02691156/1a04e3eab45ca15dd86060f189eb133/models/model_normalized.obj` gives the folder id,
    `planes/airliner_01.glb` gives `airliner_01`. It depends only on the path, never on the other
    models of the run, so ids stay stable across shards and resumes.
    """
    p = Path(path)
    for part in [p.stem, *[q.name for q in p.parents]]:
        if part and part.lower() not in GENERIC_NAMES:
            return sanitize_model_id(part)
    return sanitize_model_id(p.stem)


@dataclass(frozen=True)
class ModelJob:
    """One CAD model to render, with its class, alignment and per-model overrides."""

    class_name: str
    model_id: str
    cad_path: str
    synset: str | None = None
    forward: str = "-Y"
    up: str = "Z"
    azimuth_offset: float = 0.0  # radians
    elevation_offset: float = 0.0  # radians
    distance_scale: float = 1.0
    strategy: str | None = None  # overrides the run's --sampling (3D-DST's catalogue does)

    @property
    def class_key(self) -> str:
        """The first part of the annotation id: the synset where known, else the class name."""
        return self.synset or self.class_name

    def annotation_id(self, view: int) -> str:
        """`<class>/<model_id>/<view:06d>` (dataset-format.md)."""
        return f"{self.class_key}/{self.model_id}/{view:06d}"

    def as_dict(self) -> dict:
        """A JSON-friendly copy (sent to the workers)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> ModelJob:
        """The inverse of `as_dict`."""
        return cls(**data)


def check_unique_ids(models: Sequence[ModelJob]) -> None:
    """Two models with the same class and id would overwrite each other: refuse, naming both."""
    seen: dict[tuple[str, str], str] = {}
    for m in models:
        key = (m.class_key, m.model_id)
        if key in seen and seen[key] != m.cad_path:
            raise SettingError(
                f"{setting('cad')}: {seen[key]} and {m.cad_path} both get the model id {m.model_id!r} in class "
                f"{m.class_key!r}; rename one of the files"
            )
        seen[key] = m.cad_path


@dataclass(frozen=True)
class Shard:
    """`--shard I/N`: this process renders the views whose id hashes to I modulo N (0 <= I < N)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse `I/N`; a ValueError says what is wrong."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m:
            raise SettingError(f"{setting('shard')} {text!r}: expected I/N, such as 0/4")
        index, count = int(m.group(1)), int(m.group(2))
        if count < 1:
            raise SettingError(f"{setting('shard')} {text!r}: N must be at least 1")
        if index >= count:
            raise SettingError(
                f"{setting('shard')} {text!r}: I must be in 0..N-1 (shards are 0/{count} to {count - 1}/{count})"
            )
        return cls(index, count)

    def owns(self, annotation_id: str) -> bool:
        """Whether this shard renders the view of that id (a stable hash, not the run's order)."""
        return self.count == 1 or derive_seed("shard", annotation_id) % self.count == self.index


@dataclass(frozen=True)
class Task:
    """Work for one worker: some views of one model (the model is imported once per worker)."""

    model: int
    views: tuple[int, ...] = field(default_factory=tuple)


def pending_views(
    models: Sequence[ModelJob], views: int, shard: Shard, done: Iterable[str]
) -> list[list[int]]:
    """For each model, the view indices this shard still has to render."""
    done_set = set(done)
    return [
        [v for v in range(views) if shard.owns(m.annotation_id(v)) and m.annotation_id(v) not in done_set]
        for m in models
    ]


def plan_tasks(pending: Sequence[Sequence[int]], workers: int) -> list[Task]:
    """Split the pending views into tasks: a whole model per task when there are enough models to
    keep every worker busy, otherwise each model's views in `ceil(workers / models)` chunks."""
    todo = [(i, list(v)) for i, v in enumerate(pending) if v]
    if not todo:
        return []
    chunks = max(1, math.ceil(workers / len(todo)))
    tasks = []
    for model, views in todo:
        n = min(chunks, len(views))
        size = math.ceil(len(views) / n)
        tasks.extend(Task(model, tuple(views[k : k + size])) for k in range(0, len(views), size))
    return tasks


#: How dataset.json describes the depth maps (dataset-format.md), written by every render run.
DEPTH_DESCRIPTION: dict[str, Any] = {
    "format": "npz",
    "key": "depth",
    "dtype": "float32",
    "meaning": "camera-space depth along the view axis (-z_c), object units",
    "background": "inf",
}


@dataclass
class RenderPlan:
    """An open render dataset and, per model, the view indices this shard still has to render."""

    dataset: Dataset
    pending: list[list[int]]
    owned: int  # views of this shard, rendered or not

    @property
    def total(self) -> int:
        """Views to render now."""
        return sum(len(p) for p in self.pending)

    @property
    def skipped(self) -> int:
        """Views of this shard found done (their records and files exist)."""
        return self.owned - self.total


def plan_render(
    out: str | Path,
    settings_dict: dict[str, Any],
    models: Sequence[ModelJob],
    views: int,
    shard: Shard,
    *,
    tool_version: str,
    allow_mixed: bool = False,
) -> RenderPlan:
    """Open (or create) the render dataset `out` for these settings (`RenderSettings.as_dict()`),
    record the models' classes, and list the views this shard still has to render.

    Raises DatasetError naming `out` when the folder cannot be used or holds other settings.
    """
    dataset = Dataset.open(
        Path(out),
        "render",
        settings_dict,
        allow_mixed=allow_mixed,
        tool_version=tool_version,
        depth=DEPTH_DESCRIPTION,
    )
    dataset.add_classes({m.class_key: {"name": m.class_name, "synset": m.synset} for m in models})
    pending = pending_views(models, views, shard, dataset.completed_ids(ANNOTATIONS))
    owned = sum(1 for m in models for v in range(views) if shard.owns(m.annotation_id(v)))
    return RenderPlan(dataset, pending, owned)
