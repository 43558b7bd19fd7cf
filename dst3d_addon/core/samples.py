"""The images of one kind in a dataset folder, each with the annotation of its view: what exporters,
the PyTorch dataset and pictures of a dataset read (pure).

An image is a generated image (`images/<id>_<k>.png`), a shaded render (`renders/<id>.png`) or a
control image (`control/<id>.png`). The filter's keep set is respected unless asked otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dataset import GENERATIONS, IMAGE_KINDS
from .errors import DatasetError, setting
from .generation_plan import load_generations
from .ids import parse_annotation_id
from .keep import filter_records, load_keep
from .records import load_annotations

#: The record field (files.*) each kind of image other than generated is found in.
_FILE_OF_KIND = {"renders": "render", "control": "control"}


@dataclass(frozen=True)
class Sample:
    """One image: `file` is relative to the dataset folder; `annotation` is its view's validated record
    (plain lists, with camera.R_cv and camera.t_cv); `k` is the generated image's index, else None."""

    file: str
    k: int | None
    annotation: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.annotation["id"])

    @property
    def class_key(self) -> str:
        return parse_annotation_id(self.id)[0]

    @property
    def model_id(self) -> str:
        return parse_annotation_id(self.id)[1]

    @property
    def name(self) -> str:
        """A flat, unique name within its class: `<model>_<view>` or `<model>_<view>_<k>`.

        Unique because the view is all digits and k too: the name splits from the right.
        """
        _cls, model, view = parse_annotation_id(self.id)
        stem = f"{model}_{view:06d}"
        return stem if self.k is None else f"{stem}_{self.k}"


def collect_samples(
    out: str | os.PathLike,
    images: str,
    *,
    respect_keep: bool = True,
    classes: Sequence[str] = (),
) -> list[Sample]:
    """The images of kind `images` of the dataset `out`, sorted by file, each with its view's record.

    One line of DatasetError when the folder has no such images (naming the setting `images`), when
    a record names a missing file, or when a generated image's size differs from its view's camera
    (its labels would not fit it). `classes` (class keys or names) keeps only those classes.
    """
    if images not in IMAGE_KINDS:
        raise DatasetError(f"{setting('images')} {images!r}: choose one of {', '.join(IMAGE_KINDS)}")
    root = Path(out)
    if not root.is_dir():
        raise DatasetError(f"{setting('out')} {root}: no such dataset folder")
    views = {r["id"]: r for r in load_annotations(root, as_numpy=False, respect_keep=False)}
    keep = load_keep(root) if respect_keep else None
    kept_views = None if keep is None else {r["id"] for r in filter_records(views.values(), keep)}
    if classes:
        wanted = set(classes)
        views = {i: r for i, r in views.items() if i.split("/")[0] in wanted or r["class"]["name"] in wanted}
        if not views:
            raise DatasetError(
                f"{setting('classes')} {' '.join(classes)}: no view of {root} has these classes"
            )
    samples: list[Sample] = []
    if images == "generated":
        if not (root / GENERATIONS).is_file():
            raise DatasetError(
                f"{setting('images')} generated: {root} has no generated images (no {GENERATIONS}); run the "
                f"generate stage first, or choose {setting('images')} renders or control"
            )
        for gen in load_generations(root, respect_keep=respect_keep):
            view = views.get(gen["id"])
            if view is None:
                if classes:
                    continue
                raise DatasetError(
                    f"{root / GENERATIONS}: image {gen['file']} names unknown view {gen['id']}"
                )
            cam = view["camera"]
            if (gen["width"], gen["height"]) != (cam["width"], cam["height"]):
                raise DatasetError(
                    f"{root / gen['file']}: generated at {gen['width']}x{gen['height']} but its view was rendered "
                    f"at {cam['width']}x{cam['height']}, so its labels (K, bbox, mask) do not fit it; choose "
                    f"{setting('images')} renders or control, or generate at the render's size"
                )
            samples.append(Sample(gen["file"], gen["k"], view))
    else:
        kind = _FILE_OF_KIND[images]
        chosen = [v for i, v in views.items() if kept_views is None or i in kept_views]
        lacking = [v["id"] for v in chosen if kind not in v["files"]]
        if lacking:
            raise DatasetError(
                f"{setting('images')} {images}: {len(lacking)} of {len(chosen)} views of {root} have no "
                f"{kind} image (the first: {lacking[0]}; rendered with {setting('no_renders')}?); choose another "
                f"{setting('images')}"
            )
        samples = [Sample(v["files"][kind], None, v) for v in chosen]
    if not samples:
        what = "kept by the filter (keep.jsonl)" if respect_keep else "in it"
        raise DatasetError(f"{root}: no {images} images {what}")
    samples.sort(key=lambda s: s.file)
    missing = [s.file for s in samples if not (root / s.file).is_file()]
    if missing:
        raise DatasetError(
            f"{root / missing[0]}: image not found ({len(missing)} of {len(samples)} {images} images are missing)"
        )
    return samples
