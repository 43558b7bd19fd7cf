"""The images a KCF run judges, each with its pose label, read from the dataset folder (pure)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.dataset import GENERATIONS
from ..core.errors import DatasetError, SettingError, setting
from ..core.files import read_records
from ..core.ids import check_relative_path
from ..core.records import load_annotations


@dataclass(frozen=True)
class Item:
    """One judged image: `file` is relative to the dataset folder and is the image's unique key."""

    file: str
    id: str
    k: int | None
    class_key: str
    model_id: str
    azimuth: float
    elevation: float
    theta: float

    @property
    def pose(self) -> tuple[float, float, float]:
        return (self.azimuth, self.elevation, self.theta)

    def group(self, group_by: str) -> str:
        """The key that keeps images together in one fold: the image, its view or its CAD model."""
        if group_by == "image":
            return self.file
        if group_by == "view":
            return self.id
        if group_by == "model":
            return f"{self.class_key}/{self.model_id}"
        raise SettingError(f"{setting('group_by')} {group_by!r}: choose image, view or model")

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "id": self.id,
            "k": self.k,
            "class": self.class_key,
            "model_id": self.model_id,
            "pose": [self.azimuth, self.elevation, self.theta],
        }


def collect_items(out: str | os.PathLike, images: str, classes: tuple[str, ...] = ()) -> list[Item]:
    """The images of kind `images` (generated, renders or control) of the dataset `out`, sorted by file.

    Raises DatasetError with one line when the folder, its records or an image file is missing.
    `classes` (class keys or names) limits the run to those classes.
    """
    root = Path(out)
    annotations = _annotations(root, classes)
    items: dict[str, Item] = {}
    if images == "generated":
        path = root / GENERATIONS
        if not path.is_file():
            raise DatasetError(
                f"{path}: not found; run the generate stage first, or judge the renders with --images renders"
            )
        for rec in read_records(path):
            ann = annotations.get(rec.get("id"))
            if ann is None:
                if classes:
                    continue
                raise DatasetError(
                    f"{path}: generated image {rec.get('file')!r} names unknown annotation {rec.get('id')!r}"
                )
            rel = str(check_relative_path(rec.get("file", ""), f"{path}: file of {rec.get('id')}"))
            k = rec.get("k")
            items[rel] = _item(rel, ann, k if isinstance(k, int) else None)
    else:
        kind = "render" if images == "renders" else "control"
        for ann in annotations.values():
            rel = ann["files"].get(kind)
            if rel is None:
                raise DatasetError(
                    f"annotation {ann['id']} has no {kind} image (rendered with --no-renders?); "
                    "use --images control or --images generated"
                )
            items[rel] = _item(rel, ann, None)
    if not items:
        raise DatasetError(f"{root}: no {images} images to judge")
    return _existing(root, items, images)


def collect_renders(out: str | os.PathLike, classes: tuple[str, ...] = ()) -> list[Item]:
    """The shaded render of every view (of `classes`), sorted by file: their pose labels are exact
    by construction, and with `train_renders` every fold's estimator also trains on them."""
    root = Path(out)
    items: dict[str, Item] = {}
    for ann in _annotations(root, classes).values():
        rel = ann["files"].get("render")
        if rel is None:
            raise DatasetError(
                f"{setting('train_renders')}: annotation {ann['id']} has no render image (rendered with "
                f"--no-renders?); judge without it ({setting('train_renders')} off) or render the views again"
            )
        items[rel] = _item(rel, ann, None)
    return _existing(root, items, "render")


def _annotations(root: Path, classes: tuple[str, ...]) -> dict[str, dict]:
    """The dataset's annotation records by id, of `classes` only when given."""
    if not root.is_dir():
        raise DatasetError(f"{setting('out')} {root}: no such dataset folder")
    annotations = {r["id"]: r for r in load_annotations(root, as_numpy=False, respect_keep=False)}
    if classes:
        wanted = set(classes)
        annotations = {
            i: r for i, r in annotations.items() if i.split("/")[0] in wanted or r["class"]["name"] in wanted
        }
        if not annotations:
            raise DatasetError(
                f"{setting('classes')} {' '.join(classes)}: no annotation of {root} has these classes"
            )
    return annotations


def _existing(root: Path, items: dict[str, Item], kind: str) -> list[Item]:
    """The items sorted by file, once every file is known to exist (DatasetError naming the first missing)."""
    missing = [rel for rel in items if not (root / rel).is_file()]
    if missing:
        raise DatasetError(
            f"{root / missing[0]}: image not found ({len(missing)} of {len(items)} {kind} images are missing)"
        )
    return [items[key] for key in sorted(items)]


def _item(rel: str, ann: dict, k: int | None) -> Item:
    pose = ann["pose"]
    return Item(
        file=rel,
        id=ann["id"],
        k=k,
        class_key=ann["id"].split("/")[0],
        model_id=ann["cad"]["model_id"],
        azimuth=float(pose["azimuth"]),
        elevation=float(pose["elevation"]),
        theta=float(pose["theta"]),
    )
