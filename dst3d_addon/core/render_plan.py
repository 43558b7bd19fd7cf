"""What a render run has to do: the models, their ids, the shard's views, the dataset they go to,
and the tasks the render workers get. The batch script's render stage and the panel's export both
plan here, so they open a dataset and skip finished views the same way."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .dataset import ANNOTATIONS, Dataset
from .errors import DatasetError, SettingError, setting
from .files import RecordLog, iter_records
from .ids import sanitize_model_id
from .records import validate_annotation
from .seeds import derive_seed
from .synsets import synset_name

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


def unique_models(models: Sequence[ModelJob]) -> tuple[list[ModelJob], list[ModelJob]]:
    """(the models, each once; those given again). The same file given twice (or a catalogue's
    duplicate row) is one model; two files that would get the same id would overwrite each other's
    views and are refused, naming both."""
    seen: dict[tuple[str, str], ModelJob] = {}
    kept: list[ModelJob] = []
    again: list[ModelJob] = []
    for m in models:
        key = (m.class_key, m.model_id)
        first = seen.get(key)
        if first is None:
            seen[key] = m
            kept.append(m)
        elif first.cad_path == m.cad_path:
            again.append(m)
        else:
            raise SettingError(
                f"{setting('cad')}: {first.cad_path} and {m.cad_path} both get the model id {m.model_id!r} in class "
                f"{m.class_key!r}; rename one of the files"
            )
    return kept, again


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


#: Views per model at most: a million is a real dataset; ten billion is a typo, refused up front.
MAX_VIEWS = 10_000_000
#: Views per task at most: small enough that a crashed worker costs little and no message is huge.
TASK_VIEWS = 256


def pending_views(model: ModelJob, views: int, shard: Shard, done: Container[str]) -> Iterator[int]:
    """The view indices of `model` this shard still has to render, as a stream."""
    for view in range(views):
        annotation_id = model.annotation_id(view)
        if shard.owns(annotation_id) and annotation_id not in done:
            yield view


class TaskQueue:
    """Hands the render workers their tasks: at most `chunk` (<= TASK_VIEWS) views of one model each.

    A worker keeps the model it has loaded while that model has views left, takes a model nobody
    has started otherwise, and once every model is started helps with another's. So with more
    models than workers each model is imported once; with fewer, workers share a model's views.
    Views are planned lazily, so memory does not grow with their number.
    """

    def __init__(
        self, views_of: Callable[[int], Iterator[int]], models: int, chunk: int = TASK_VIEWS
    ) -> None:
        self._views_of = views_of
        self._chunk_size = max(1, min(chunk, TASK_VIEWS))
        self._new = iter(range(models))
        self._open: dict[int, Iterator[int]] = {}  # started models with views left, oldest first
        self._dropped: set[int] = set()
        self._held: list[Task] = []  # taken by `has_work`, handed out first

    def _chunk(self, model: int) -> Task | None:
        views = tuple(itertools.islice(self._open[model], self._chunk_size))
        if not views:
            del self._open[model]
            return None
        return Task(model, views)

    def next_task(self, loaded: int | None = None) -> Task | None:
        """The next task for a worker that has model `loaded` in its scene (None when all are handed out)."""
        if self._held:
            same = [t for t in self._held if t.model == loaded]
            task = (same or self._held)[0]
            self._held.remove(task)
            return task
        if loaded in self._open:
            task = self._chunk(loaded)
            if task is not None:
                return task
        for model in self._new:
            if model in self._dropped:
                continue
            self._open[model] = self._views_of(model)
            task = self._chunk(model)
            if task is not None:
                return task
        while self._open:
            task = self._chunk(next(iter(self._open)))
            if task is not None:
                return task
        return None

    def has_work(self) -> bool:
        """Whether a task is left (one is taken from the plan to know, and handed out next)."""
        if not self._held:
            task = self.next_task()
            if task is not None:
                self._held.append(task)
        return bool(self._held)

    def put_back(self, task: Task) -> None:
        """Hand `task` out again first (its worker ended before it was done)."""
        if task.model not in self._dropped and task.views:
            self._held.append(task)

    def drop(self, model: int) -> int:
        """Hand out no more views of `model` (it failed); returns how many views that leaves undone."""
        self._dropped.add(model)
        left = sum(len(t.views) for t in self._held if t.model == model)
        self._held = [t for t in self._held if t.model != model]
        views = self._open.pop(model, None)
        if views is not None:
            left += sum(1 for _ in views)
        return left


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
    """An open render dataset, the views this shard owns and those it still has to render."""

    dataset: Dataset
    models: list[ModelJob]
    views: int
    shard: Shard
    done: set[str]  # ids whose record and files are whole
    recorded: set[str]  # ids with a record (done, or to be redone: a file is missing or cut short)
    owned: int  # views of this shard, rendered or not
    total: int  # views to render now

    @property
    def skipped(self) -> int:
        """Views of this shard found done (their records and files exist)."""
        return self.owned - self.total

    @property
    def redo(self) -> set[str]:
        """Ids that have a record but must be rendered again."""
        return self.recorded - self.done

    def views_of(self, model: int) -> Iterator[int]:
        """The views of model `model` still to render, as a stream."""
        return pending_views(self.models[model], self.views, self.shard, self.done)

    def tasks(self, workers: int = 1) -> TaskQueue:
        """A task queue over the views still to render, for `workers` workers: tasks small enough
        that every worker gets some (a few views of one model each when there are few views)."""
        chunk = math.ceil(self.total / (2 * max(1, workers))) if self.total else TASK_VIEWS
        return TaskQueue(self.views_of, len(self.models), chunk)

    def pending(self) -> list[list[int]]:
        """Every model's views still to render, as lists (for a few views: the panel's export)."""
        return [list(self.views_of(m)) for m in range(len(self.models))]


class RecordWriter:
    """Appends a render run's annotation records: once per id, and in id order when the run ends.

    The batch script's pool and the panel's export write through it, so both leave the same file.
    A view rendered again only because a file of it was missing keeps its record (it is the same).
    """

    def __init__(self, plan: RenderPlan) -> None:
        self.log = RecordLog(plan.dataset.path(ANNOTATIONS), key=lambda record: record["id"])
        self.redo = set(plan.redo)
        self.written = 0  # views rendered and recorded by this run
        self.duplicates = 0  # views another run (or the same model given twice) had recorded already

    def add(self, record: dict) -> None:
        """Record one rendered view (its files are written)."""
        if record["id"] in self.redo:
            self.redo.discard(record["id"])
            self.written += 1
        elif self.log.append([record]):
            self.written += 1
        else:
            self.duplicates += 1

    def finish(self) -> None:
        """Put the file in id order (a run interrupted leaves that to the run that completes it)."""
        self.log.sort()


def scan_annotations(dataset: Dataset) -> tuple[set[str], set[str]]:
    """(ids with a record, ids whose files are whole) of the dataset's annotations, each record
    validated as the other stages validate it (DatasetError names the file and line)."""
    path = dataset.path(ANNOTATIONS)
    recorded: set[str] = set()
    for line, record in iter_records(path):
        try:
            validate_annotation(record)
        except DatasetError as err:
            raise DatasetError(f"{path}: line {line}: {err.text}; fix or delete that line") from None
        recorded.add(record["id"])
    return recorded, dataset.completed_ids(ANNOTATIONS)


def _recorded_names(models: Sequence[ModelJob], classes: Mapping[str, Any]) -> list[ModelJob]:
    """The models, each class keeping the name the dataset recorded when that name was an older
    version's default for a class with a synset (the synset id itself, or "object") and this run's
    name is the table's default (synsets.py): such a dataset goes on as it began."""
    kept = []
    for m in models:
        old = classes.get(m.class_key)
        if (
            isinstance(old, Mapping)
            and m.synset
            and old.get("synset") == m.synset
            and old.get("name") in (m.synset, "object")
            and m.class_name == synset_name(m.synset)
        ):
            m = replace(m, class_name=old["name"])
        kept.append(m)
    return kept


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
    record the models' classes, and count the views this shard owns and still has to render.

    Raises DatasetError naming `out` when the folder cannot be used, holds other settings, or its
    annotations do not validate; SettingError for a view count past MAX_VIEWS.
    """
    if not 0 < views <= MAX_VIEWS:
        raise SettingError(f"{setting('views')} {views}: at most {MAX_VIEWS:,} views per model")
    dataset = Dataset.open(
        Path(out),
        "render",
        settings_dict,
        allow_mixed=allow_mixed,
        tool_version=tool_version,
        depth=DEPTH_DESCRIPTION,
        binding=ANNOTATIONS,
    )
    models = _recorded_names(models, dataset.info.get("classes") or {})
    dataset.add_classes({m.class_key: {"name": m.class_name, "synset": m.synset} for m in models})
    recorded, done = scan_annotations(dataset)
    owned = total = 0
    for model in models:
        for view in range(views):
            annotation_id = model.annotation_id(view)
            if shard.owns(annotation_id):
                owned += 1
                total += annotation_id not in done
    return RenderPlan(dataset, list(models), views, shard, done, recorded, owned, total)
