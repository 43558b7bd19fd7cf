"""The generate stage's plan and records: which images a shard still has to make, with their seeds
and prompts, and the generation records (dataset-format.md, generations.jsonl).

An image is (annotation id, k). Its seed derives from (run seed, id, k) and its prompt from its
seed, so an image is the same whether made alone or in a batch, in any shard, before or after a
resume. Shards split by annotation id, so all images of a view are made by one shard.
"""

from __future__ import annotations

import math
import os
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .dataset import GENERATIONS, Dataset
from .errors import DatasetError, setting
from .files import RecordLog, read_records
from .generation_settings import MAX_SEED, GenerationSettings, SettingsError
from .ids import check_relative_path, parse_annotation_id
from .keep import filter_records, load_keep
from .prompts import PromptSource
from .render_plan import Shard
from .seeds import derive_seed

#: The keys of the job settings a record takes its values from.
JOB_KEYS = ("steps", "guidance", "control_scale", "eta", "width", "height", "scheduler")


def image_seed(run_seed: int, annotation_id: str, k: int) -> int:
    """The seed of the k-th image of a view, in [0, 2**53)."""
    return derive_seed("image", int(run_seed), annotation_id, int(k))


#: Images per view at most: more prompts of one pose than a dataset can use; a typo otherwise.
MAX_IMAGES_PER_VIEW = 1000


def image_rel_path(annotation_id: str, k: int) -> str:
    """`images/<id>_<k>.png` (dataset-format.md)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"image index k {k!r} must be a non-negative integer")
    return f"images/{annotation_id}_{k}.png"


def generation_key(annotation_id: str, k: int) -> str:
    """The key of one image, `<id>#<k>` ('#' never occurs in an id): what resumes compare."""
    return f"{annotation_id}#{int(k)}"


@dataclass(frozen=True)
class GenerationItem:
    """One image to make: its view, index, seed, prompts, control image and output (relative paths)."""

    annotation_id: str
    k: int
    seed: int
    prompt: str
    negative_prompt: str
    control: str
    output: str
    width: int
    height: int
    class_name: str

    @property
    def key(self) -> str:
        """`generation_key(annotation_id, k)`."""
        return generation_key(self.annotation_id, self.k)

    def as_dict(self) -> dict:
        """A JSON-friendly copy (sent to the worker)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationItem:
        """The inverse of `as_dict`."""
        return cls(**data)


def _annotation_size(ann: Mapping, settings: GenerationSettings) -> tuple[int, int]:
    """The image size: the settings', else the annotation's camera size (a multiple of 8)."""
    cam = ann["camera"]
    width = settings.width if settings.width is not None else cam["width"]
    height = settings.height if settings.height is not None else cam["height"]
    if (settings.width is None or settings.height is None) and (width % 8 or height % 8):
        raise SettingsError(
            f"annotation {ann['id']}: its control image is {cam['width']}x{cam['height']}, but the "
            f"diffusion model needs multiples of 8; pass {setting('width')}/{setting('height')} or render at a multiple of 8"
        )
    return int(width), int(height)


def check_images_per_view(images_per_view: int) -> None:
    """SettingsError unless 1 <= images_per_view <= MAX_IMAGES_PER_VIEW."""
    if isinstance(images_per_view, bool) or not isinstance(images_per_view, int) or images_per_view < 1:
        raise SettingsError(f"{setting('images_per_view')} {images_per_view!r}: must be positive")
    if images_per_view > MAX_IMAGES_PER_VIEW:
        raise SettingsError(
            f"{setting('images_per_view')} {images_per_view}: at most {MAX_IMAGES_PER_VIEW:,}"
        )


def iter_items(
    annotations: Iterable[Mapping],
    settings: GenerationSettings,
    prompts: PromptSource,
    images_per_view: int,
    shard: Shard,
    done: Container[str],
) -> Iterator[GenerationItem]:
    """The images this shard still has to make, in annotation order then k, as a stream (so a
    million views cost the memory of one). `annotations` are validated records (as
    `records.load_annotations` or `records.iter_annotations` give them); `done` holds the
    `generation_key`s of finished images (see `completed_keys`)."""
    check_images_per_view(images_per_view)
    return _items(annotations, settings, prompts, images_per_view, shard, done)


def _items(
    annotations: Iterable[Mapping],
    settings: GenerationSettings,
    prompts: PromptSource,
    images_per_view: int,
    shard: Shard,
    done: Container[str],
) -> Iterator[GenerationItem]:
    for ann in annotations:
        ann_id = ann["id"]
        if not shard.owns(ann_id):
            continue
        keys = [(k, generation_key(ann_id, k)) for k in range(images_per_view)]
        if all(key in done for _, key in keys):
            continue
        class_name = ann["class"]["name"]
        synset = ann["class"].get("synset")
        width, height = _annotation_size(ann, settings)
        for k, key in keys:
            if key in done:
                continue
            seed = image_seed(settings.seed, ann_id, k)
            prompt, negative = prompts.choose(seed, class_name, synset, ann["cad"]["model_id"])
            yield GenerationItem(
                annotation_id=ann_id,
                k=k,
                seed=seed,
                prompt=prompt,
                negative_prompt=negative,
                control=ann["files"]["control"],
                output=image_rel_path(ann_id, k),
                width=width,
                height=height,
                class_name=class_name,
            )


def plan_items(
    annotations: Iterable[Mapping],
    settings: GenerationSettings,
    prompts: PromptSource,
    images_per_view: int,
    shard: Shard,
    done: Container[str],
) -> list[GenerationItem]:
    """`iter_items` as a list (for a few views)."""
    return list(iter_items(annotations, settings, prompts, images_per_view, shard, done))


def generation_record(
    item: GenerationItem, model: Mapping[str, Any], settings: GenerationSettings | Mapping[str, Any]
) -> dict:
    """The record of a finished image (dataset-format.md), validated.

    `model` has "base" and "controlnet" (`GenerationSettings.model_description()`); `settings`
    is the GenerationSettings or the dict of job settings the worker actually used (the fallback's
    when the LoRA was missing), optionally with "lora". Width and height are the item's.
    """
    if isinstance(settings, GenerationSettings):
        used: Mapping[str, Any] = {**settings.job_settings(), "lora": settings.lora}
    else:
        used = settings
    missing = [k for k in JOB_KEYS if k not in used and k not in ("width", "height")]
    if missing:
        raise ValueError(f"generation_record: job settings lack {', '.join(missing)}")
    record = {
        "id": item.annotation_id,
        "k": item.k,
        "file": item.output,
        "seed": item.seed,
        "prompt": item.prompt,
        "negative_prompt": item.negative_prompt,
        "model": {"base": model["base"], "controlnet": model["controlnet"], "scheduler": used["scheduler"]},
        "steps": used["steps"],
        "guidance": float(used["guidance"]),
        "control_scale": float(used["control_scale"]),
        "width": item.width,
        "height": item.height,
        "eta": float(used["eta"]),
        "lora": used.get("lora", model.get("lora")),
    }
    validate_generation(record)
    return record


def _fail(record: Any, field: str, problem: str) -> DatasetError:
    ident, k = (record.get("id"), record.get("k")) if isinstance(record, Mapping) else (None, None)
    who = f"generation {ident}#{k}" if isinstance(ident, str) else "generation record"
    return DatasetError(f"{who}: {field} {problem}")


def _get(record: Mapping, path: str) -> Any:
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise _fail(record, path, "is missing")
        node = node[part]
    return node


def _string(record: Mapping, path: str, *, empty: bool = False) -> str:
    value = _get(record, path)
    if not isinstance(value, str) or (not empty and not value):
        raise _fail(record, path, f"must be a {'' if empty else 'non-empty '}string, got {value!r}")
    return value


def _integer(record: Mapping, path: str, low: int, high: float = math.inf) -> int:
    value = _get(record, path)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        bound = f">= {low}" if high == math.inf else f"in [{low}, {high})"
        raise _fail(record, path, f"must be an integer {bound}, got {value!r}")
    return value


def _number(record: Mapping, path: str, low: float, high: float = math.inf) -> float:
    value = _get(record, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(record, path, f"must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise _fail(record, path, f"must be in [{low}, {high}], got {value!r}")
    return float(value)


def validate_generation(record: Any) -> None:
    """Raise DatasetError (naming the image and the field) unless `record` is a well-formed
    generation record: every key of dataset-format.md with the right type, file = images/<id>_<k>.png."""
    if not isinstance(record, Mapping):
        raise _fail(record, "record", f"must be an object, got {type(record).__name__}")
    ann_id = _string(record, "id")
    try:
        parse_annotation_id(ann_id)
    except DatasetError as err:
        raise _fail(record, "id", f"is malformed ({err})") from err
    k = _integer(record, "k", 0)
    rel = _string(record, "file")
    if rel != image_rel_path(ann_id, k):
        raise _fail(record, "file", f"must be {image_rel_path(ann_id, k)}, got {rel!r}")
    check_relative_path(rel, "file")
    _integer(record, "seed", 0, MAX_SEED)
    _string(record, "prompt")
    _string(record, "negative_prompt", empty=True)
    if not isinstance(_get(record, "model"), Mapping):
        raise _fail(record, "model", f"must be an object, got {record['model']!r}")
    for part in ("base", "controlnet", "scheduler"):
        _string(record, f"model.{part}")
    _integer(record, "steps", 1)
    _number(record, "guidance", 0.0)
    _number(record, "control_scale", 0.0)
    _integer(record, "width", 1)
    _integer(record, "height", 1)
    if "eta" in record:
        _number(record, "eta", 0.0, 1.0)
    if record.get("lora") is not None:
        _string(record, "lora")


def load_generations(out: str | os.PathLike, *, respect_keep: bool = True) -> list[dict]:
    """The validated generation records of a dataset folder, for researchers.

    If an image was recorded twice (redone with --allow-mixed), its last record wins, at the
    place of its first. File paths stay relative to `out`. If the `filter` stage wrote a keep
    set, only the images it keeps are returned, unless `respect_keep` is False.
    """
    path = Path(out) / GENERATIONS
    if not path.is_file():
        raise DatasetError(f"{path}: not found; is {out} a dst3d dataset folder with generated images?")
    by_key: dict[str, dict] = {}
    for record in read_records(path):
        try:
            validate_generation(record)
        except DatasetError as err:
            raise DatasetError(f"{path}: {err}") from err
        by_key[generation_key(record["id"], record["k"])] = record
    records = list(by_key.values())
    keep = load_keep(out) if respect_keep else None
    return filter_records(records, keep) if keep is not None else records


def _record_key(record: dict) -> str | None:
    ident, k = record.get("id"), record.get("k")
    if isinstance(ident, str) and isinstance(k, int) and not isinstance(k, bool):
        return generation_key(ident, k)
    return None


def generation_order(record: Mapping[str, Any]) -> str:
    """The key generations.jsonl is sorted by when a run completes: the view's id, then k as a
    number ('#' sorts below every character of an id, and k < MAX_IMAGES_PER_VIEW has 4 digits at
    most), which is the order a run over id-sorted annotations plans. The file then does not
    depend on which worker or node finished first."""
    ident, k = record.get("id"), record.get("k")
    if not isinstance(ident, str) or not isinstance(k, int) or isinstance(k, bool):
        return f"~{ident}#{k}"  # a record the stages refuse anyway: after the valid ones
    return f"{ident}#{k:04d}"


def sort_generations(dataset: Dataset) -> bool:
    """Put generations.jsonl in `generation_order` (atomically, under its lock; appends by other
    runs wait); True if it was rewritten (False too when there is no file: no lock file is made)."""
    path = dataset.path(GENERATIONS)
    return path.is_file() and RecordLog(path, generation_order).sort()


def completed_keys(dataset: Dataset) -> set[str]:
    """The `generation_key`s of the recorded images whose file exists: what a resume skips."""
    return dataset.completed_ids(GENERATIONS, key=_record_key)
