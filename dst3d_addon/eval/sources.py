"""The images of one side of an eval, each with its object's box, pose label and class (pure).

A dst3d dataset gives its samples (`core/samples.py`: the images of a kind with their views, the
keep set respected); a PASCAL3D+-layout folder gives each annotated object (`core/pascal3d.py`),
leaving out those it cannot label and those PASCAL3D+ marks truncated, occluded or difficult, so
the test matches the unoccluded setting that NeMo's and 3D-DST's PASCAL3D+ tables report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import DatasetError, setting
from ..core.pascal3d import IMAGE_SETS, read_folder
from ..core.samples import collect_samples
from .settings import EvalError, Source


@dataclass(frozen=True)
class EvalItem:
    """One object to train on or test: `file` is the image's absolute path, `key` names the object
    uniquely within its source, `view` the view (dst3d) or photograph (PASCAL3D+) it shows, `box` is
    [u0, v0, u1, v1] in dst3d's pixels, `pose` is (azimuth, elevation, theta) in radians."""

    file: str
    key: str
    view: str
    class_name: str
    box: tuple[float, float, float, float]
    pose: tuple[float, float, float]

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "key": self.key,
            "class": self.class_name,
            "box": list(self.box),
            "pose": list(self.pose),
        }


@dataclass
class SideItems:
    """A side's objects, and how many were left out and why (`{"no box": 3, ...}`)."""

    source: Source
    items: list[EvalItem]
    left_out: Counter = field(default_factory=Counter)

    @property
    def classes(self) -> list[str]:
        return sorted({it.class_name for it in self.items})


def _renamed(err: DatasetError, side: str) -> DatasetError:
    """A core message about `out`, `images` or `classes` as one about this side's option."""
    text = err.text
    for name in ("images", "classes"):
        text = text.replace(setting(name), setting(f"{side}_{name}"))
    return DatasetError(text.replace(setting("out"), setting(side)))


def read_items(source: Source) -> SideItems:
    """The objects of `source`, sorted by key (DatasetError naming the file or the side's option)."""
    if source.kind == "dst3d":
        return _dst3d_items(source)
    return _pascal3d_items(source)


def _dst3d_items(source: Source) -> SideItems:
    try:
        samples = collect_samples(
            source.path,
            source.images or "generated",
            respect_keep=source.respect_keep,
            classes=source.classes,
        )
    except DatasetError as err:
        raise _renamed(err, source.side) from None
    items, left_out = [], Counter()
    for s in samples:
        ann = s.annotation
        if ann["bbox"] is None:
            left_out["empty mask"] += 1
            continue
        pose = ann["pose"]
        items.append(
            EvalItem(
                file=str(source.path / s.file),
                key=s.file,
                view=s.id,
                class_name=str(ann["class"]["name"]),
                box=tuple(float(x) for x in ann["bbox"]),  # type: ignore[arg-type]
                pose=(float(pose["azimuth"]), float(pose["elevation"]), float(pose["theta"])),
            )
        )
    return _checked(source, items, left_out)


def _pascal3d_items(source: Source) -> SideItems:
    if source.split is not None and not any((source.path / IMAGE_SETS).glob(f"*_{source.split}.txt")):
        raise EvalError(
            f"{setting(source.side + '_split')} {source.split}: {source.path / IMAGE_SETS} has no list of it "
            f"(<class>_<source>_{source.split}.txt)"
        )
    try:
        images = read_folder(source.path, split=source.split)
    except DatasetError as err:
        raise _renamed(err, source.side) from None
    wanted = set(source.classes)
    items, left_out = [], Counter()
    seen_classes = set()
    for image in images:
        for i, obj in enumerate(image.objects, start=1):
            seen_classes.add(obj.class_name)
            if wanted and obj.class_name not in wanted:
                continue
            if obj.viewpoint is None:
                left_out["no viewpoint"] += 1
            elif obj.bbox is None:
                left_out["no box"] += 1
            elif obj.truncated or obj.occluded or obj.difficult:
                left_out["truncated, occluded or difficult"] += 1
            else:
                vp = obj.viewpoint.pose
                items.append(
                    EvalItem(
                        file=str(image.image),
                        key=f"{image.subset}/{image.name}#{i}",
                        view=f"{image.subset}/{image.name}",
                        class_name=obj.class_name,
                        box=obj.bbox,
                        pose=(vp.azimuth, vp.elevation, vp.theta),
                    )
                )
    if wanted and not wanted & seen_classes:
        raise EvalError(
            f"{setting(source.side + '_classes')} {' '.join(source.classes)}: no object of {source.path} has "
            f"these classes (it has {', '.join(sorted(seen_classes)) or 'none'})"
        )
    missing = sorted({it.file for it in items if not Path(it.file).is_file()})
    if missing:
        raise DatasetError(
            f"{missing[0]}: image not found ({len(missing)} images of {source.path} are missing)"
        )
    return _checked(source, items, left_out)


def _checked(source: Source, items: list[EvalItem], left_out: Counter) -> SideItems:
    if not items:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(left_out.items()))
        raise EvalError(
            f"{setting(source.side)} {source.path}: no object with a pose label to "
            f"{'train on' if source.side == 'train' else 'test'}{f' ({why})' if why else ''}"
        )
    items.sort(key=lambda it: it.key)
    return SideItems(source, items, left_out)
