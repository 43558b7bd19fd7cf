"""What an export takes and where each image goes: the export's settings, the images chosen (the
filter's keep set respected), the split by CAD model, the classes' names, and the labels every format
stores per image (pure). The run is in export.py, the formats in export_<format>.py.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dataset import IMAGE_KINDS
from .errors import DatasetError, Dst3dError, SettingError, setting
from .ids import check_id_part
from .pascal3d import DEFAULT_SOURCE
from .samples import Sample, collect_samples
from .seeds import derive_seed

FORMATS = ("coco", "pascal3d", "imagefolder", "webdataset")
#: The packages each format needs (module, pip name); checked before anything is written.
FORMAT_PACKAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "pascal3d": (("scipy.io", "scipy"),),
}
TRAIN, VAL = "train", "val"
MANIFEST = "export.json"
#: Version of export.json's layout.
MANIFEST_FORMAT = 1
DEFAULT_SHARD_SIZE = 1000

TO = setting("to")


class ExportError(Dst3dError):
    """An export that cannot go on; one line naming the option or file."""


@dataclass(frozen=True)
class ExportSettings:
    """What to export and how (`link` only changes how files get there, not what they hold)."""

    format: str
    images: str = "generated"
    respect_keep: bool = True
    holdout_models: float | None = None
    seed: int = 0
    link: bool = False
    shard_size: int | None = None
    mask: bool = False
    depth: bool = False
    source: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise SettingError(f"{setting('format')} {self.format!r}: choose one of {', '.join(FORMATS)}")
        if self.images not in IMAGE_KINDS:
            raise SettingError(f"{setting('images')} {self.images!r}: choose one of {', '.join(IMAGE_KINDS)}")
        if self.holdout_models is not None and not 0.0 < self.holdout_models < 1.0:
            raise SettingError(
                f"{setting('holdout_models')} {self.holdout_models}: the fraction of each class's models "
                "to hold out must be between 0 and 1"
            )
        webdataset = self.format == "webdataset"
        for name, given in (
            ("shard_size", self.shard_size is not None),
            ("mask", self.mask),
            ("depth", self.depth),
        ):
            if given and not webdataset:
                raise SettingError(
                    f"{setting(name)}: only the webdataset format takes it (format is {self.format})"
                )
        if self.shard_size is not None and self.shard_size < 1:
            raise SettingError(f"{setting('shard_size')} {self.shard_size}: must be positive")
        if self.link and webdataset:
            raise SettingError(f"{setting('link')}: webdataset shards hold copies of the images; drop it")
        if self.source is not None:
            if self.format != "pascal3d":
                raise SettingError(
                    f"{setting('source')}: only the pascal3d format takes it (format is {self.format})"
                )
            try:
                check_id_part(self.source, "source")
            except DatasetError as err:
                raise SettingError(f"{setting('source')} {self.source!r}: {err}") from None

    def recorded(self) -> dict[str, Any]:
        """The settings that decide the export's content (what a rerun into the same folder must match)."""
        out: dict[str, Any] = {
            "format": self.format,
            "images": self.images,
            "respect_keep": self.respect_keep,
            "holdout_models": self.holdout_models,
        }
        if self.holdout_models is not None:
            out["seed"] = self.seed
        if self.format == "webdataset":
            out.update(shard_size=self.shard_size or DEFAULT_SHARD_SIZE, mask=self.mask, depth=self.depth)
        if self.format == "pascal3d":
            out["source"] = self.pascal3d_source
        return out

    @property
    def pascal3d_source(self) -> str:
        """The `<source>` of the pascal3d format's `<class>_<source>` folders."""
        return self.source or DEFAULT_SOURCE


def class_folders(classes: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Class key -> the name the export gives the class (its folder, COCO and PASCAL3D+ class name):
    the class name where it is a safe file name shared by no other class, else the class key."""
    names = [str(desc.get("name") or key) for key, desc in classes.items()]
    out = {}
    for key, desc in classes.items():
        name = str(desc.get("name") or key)
        try:
            check_id_part(name, "class name")
            safe = True
        except DatasetError:
            safe = False
        out[key] = name if safe and names.count(name) == 1 else key
    return out


def split_models(
    models: Sequence[tuple[str, str]], fraction: float | None, seed: int
) -> tuple[dict[tuple[str, str], str], list[str]]:
    """Each (class key, model id) -> `train` or `val`, and the classes kept whole in train.

    Per class, round(fraction x models) models go to val, at least one and never all of them; a
    class with one model cannot be split and stays in train. Which models: the lowest seeded hashes
    of (seed, class, model), so the split depends on nothing but the seed and the names.
    """
    by_class: dict[str, list[str]] = {}
    for cls, model in sorted(set(models)):
        by_class.setdefault(cls, []).append(model)
    split: dict[tuple[str, str], str] = {}
    whole: list[str] = []
    for cls, names in by_class.items():
        n_val = 0
        if fraction is not None:
            if len(names) < 2:
                whole.append(cls)
            else:
                n_val = min(len(names) - 1, max(1, math.floor(fraction * len(names) + 0.5)))
        ranked = sorted(names, key=lambda m: (derive_seed("export-holdout", int(seed), cls, m), m))
        held = set(ranked[:n_val])
        for model in names:
            split[(cls, model)] = VAL if model in held else TRAIN
    return split, whole


@dataclass
class ExportPlan:
    """The images to export, each with its split and its class's export name; what is left out."""

    out: Path
    settings: ExportSettings
    samples: list[Sample]
    split_of: dict[str, str]
    folders: dict[str, str]
    classes: dict[str, dict[str, Any]]
    empty: list[Sample] = field(default_factory=list)
    unsplit_classes: list[str] = field(default_factory=list)

    @property
    def splits(self) -> list[str]:
        """The splits that hold images, train first."""
        return [s for s in (TRAIN, VAL) if any(v == s for v in self.split_of.values())]

    def in_split(self, split: str) -> list[Sample]:
        return [s for s in self.samples if self.split_of[s.file] == split]

    def folder(self, sample: Sample) -> str:
        """The export's name of the sample's class."""
        return self.folders[sample.class_key]

    def selection(self) -> str:
        """A fingerprint of what is exported where: a rerun into the same folder must match it."""
        digest = hashlib.sha256()
        for s in self.samples:
            digest.update(f"{s.file}\t{self.split_of[s.file]}\t{self.folder(s)}\n".encode())
        return digest.hexdigest()

    def counts(self) -> dict[str, dict[str, int]]:
        """Per split: images, CAD models and classes."""
        out = {}
        for split in self.splits:
            members = self.in_split(split)
            out[split] = {
                "images": len(members),
                "models": len({(s.class_key, s.model_id) for s in members}),
                "classes": len({s.class_key for s in members}),
            }
        return out


def plan_export(out: str | os.PathLike, settings: ExportSettings) -> ExportPlan:
    """The images of the dataset `out` to export and their splits (DatasetError with one line when the
    folder has no such images). Views whose mask is empty (no bbox) are left out: nothing to label."""
    root = Path(out).expanduser()
    chosen = collect_samples(root, settings.images, respect_keep=settings.respect_keep)
    samples = [s for s in chosen if s.annotation["bbox"] is not None]
    empty = [s for s in chosen if s.annotation["bbox"] is None]
    if not samples:
        raise DatasetError(f"{root}: every {settings.images} image's mask is empty; nothing to export")
    classes: dict[str, dict[str, Any]] = {}
    for s in samples:
        classes.setdefault(s.class_key, dict(s.annotation["class"]))
    split, whole = split_models(
        [(s.class_key, s.model_id) for s in samples], settings.holdout_models, settings.seed
    )
    return ExportPlan(
        out=root,
        settings=settings,
        samples=samples,
        split_of={s.file: split[(s.class_key, s.model_id)] for s in samples},
        folders=class_folders(dict(sorted(classes.items()))),
        classes=dict(sorted(classes.items())),
        empty=empty,
        unsplit_classes=whole,
    )


def pose_label(sample: Sample, class_name: str) -> dict[str, Any]:
    """The labels every format stores per image (dst3d's units: radians, object units, pixels as in
    pose-convention.md): the view's pose, camera (K; R and C looking down -z; R_cv and t_cv in
    OpenCV's form), bbox [u0, v0, u1, v1], and where the image came from."""
    ann = sample.annotation
    cam = ann["camera"]
    return {
        "id": ann["id"],
        "k": sample.k,
        "class": class_name,
        "synset": ann["class"]["synset"],
        "model_id": ann["cad"]["model_id"],
        **{key: float(ann["pose"][key]) for key in ("azimuth", "elevation", "theta", "distance")},
        "width": cam["width"],
        "height": cam["height"],
        "K": cam["K"],
        "R": cam["R"],
        "C": cam["C"],
        "R_cv": cam["R_cv"],
        "t_cv": cam["t_cv"],
        "bbox": ann["bbox"],
        "truncated": ann["truncated"],
    }
