"""Pictures of a dataset (the sheet stage and the panel's Dataset Pictures button; OpenCV + numpy).

Two PNGs:

- the contact sheet (`sheet.png`): for a spread of images, the view's control image beside the
  image itself (generated, else the render) with the view's mask outline and its labelled pose
  drawn as the object frame's axes (X red, Y green, Z blue; the front faces -Y), and the pose in
  degrees. A label that does not fit its image shows at a glance: axes that point the wrong way,
  an outline beside the object.
- the viewpoint distribution (`viewpoints.png`): per class, the azimuth x elevation histogram of
  its images, the picture 3D-DST's "removing biases in object viewpoints" asks for.

Both read the images `collect_samples` gives (the filter's keep set respected unless asked not to).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .dataset import ANNOTATIONS, GENERATIONS, IMAGE_KINDS, KIND_WORDS
from .drawing import DARK, GREY, WHITE, Tile, draw_axes, draw_outline, read_colour, stack, text, title_bar
from .drawing import viewpoint_panel as _viewpoint_panel
from .errors import DatasetError, SettingError, setting
from .files import iter_records, write_png
from .records import iter_annotations
from .samples import Sample, collect_samples

SHEET = "sheet.png"
VIEWPOINTS = "viewpoints.png"
#: What the sheet shows beside each control image; `auto` takes generated images when the dataset has
#: them, else the renders, else the control images alone.
PICTURE_KINDS = ("auto", *IMAGE_KINDS)
#: The viewpoint picture's width in pixels.
VIEWPOINTS_WIDTH = 900
_CAPTION = 36


@dataclass(frozen=True)
class SheetSettings:
    """What the pictures show: which images, how many on the sheet, at what size."""

    images: str = "auto"
    respect_keep: bool = True
    classes: tuple[str, ...] = ()
    count: int = 24
    tile: int = 128
    columns: int = 4

    def __post_init__(self) -> None:
        if self.images not in PICTURE_KINDS:
            raise SettingError(
                f"{setting('images')} {self.images!r}: choose one of {', '.join(PICTURE_KINDS)}"
            )
        for name, least in (("count", 1), ("tile", 32), ("columns", 1)):
            if getattr(self, name) < least:
                raise SettingError(f"{setting(name)} {getattr(self, name)}: at least {least}")


@dataclass(frozen=True)
class Pictures:
    """What `write_pictures` drew: the two files, the kind of image, and how many images of how many."""

    sheet: Path
    viewpoints: Path
    images: str
    shown: int
    total: int
    per_class: dict[str, int]


def choose_kind(out: str | os.PathLike, images: str) -> str:
    """`images`, or for `auto`: generated when the dataset has generated images, else renders when
    its views have them, else control."""
    if images != "auto":
        return images
    root = Path(out)
    if (root / GENERATIONS).is_file() and any(True for _ in iter_records(root / GENERATIONS)):
        return "generated"
    # The render stage keeps renders for all views or none: the first record says which.
    first = next(iter_annotations(root), None) if (root / ANNOTATIONS).is_file() else None
    if first is not None and "render" not in first["files"]:
        return "control"
    return "renders"


def spread(samples: Sequence[Sample], count: int) -> list[Sample]:
    """At most `count` samples, shared out among the classes and evenly spaced within each
    (in file order), so the sheet shows every class and the whole range of its views."""
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.class_key].append(s)
    keys = sorted(by_class)
    share = {k: 0 for k in keys}
    left = min(count, len(samples))
    while left:
        for k in keys:
            if left and share[k] < len(by_class[k]):
                share[k] += 1
                left -= 1
    chosen: list[Sample] = []
    for k in keys:
        group, n = by_class[k], share[k]
        if n:
            idx = np.unique(np.rint(np.linspace(0, len(group) - 1, n)).astype(int))
            chosen.extend(group[i] for i in idx)
    return chosen


def _fit(line: str, width: int, scale: float) -> str:
    """`line` cut (with ...) to fit `width` pixels at `scale`."""
    while line and cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width:
        line = line[:-4] + "..." if len(line) > 4 else line[:-1]
    return line


def cell(root: Path, sample: Sample, kind: str, tile: int) -> np.ndarray:
    """One image of the sheet: [control | image with mask outline and pose axes] and its caption."""
    ann = sample.annotation
    mask = cv2.imread(os.fspath(root / ann["files"]["mask"]), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DatasetError(f"{root / ann['files']['mask']}: cannot read the mask")
    labelled = Tile.of(read_colour(root / sample.file), tile)
    draw_outline(labelled, mask)
    draw_axes(labelled, ann)
    tiles = [labelled.image]
    if kind != "control":
        tiles.insert(0, Tile.of(read_colour(root / ann["files"]["control"]), tile).image)
    width = tile * len(tiles)
    img = np.full((tile + _CAPTION, width, 3), DARK, np.uint8)
    img[:tile] = np.hstack(tiles)
    _cls, model, view = ann["id"].split("/")
    name = f"{ann['class']['name']} {model} {view}" + ("" if sample.k is None else f" #{sample.k}")
    pose = ann["pose"]
    a, e, t = (round(math.degrees(pose[k])) for k in ("azimuth", "elevation", "theta"))
    angles = f"a {a % 360}  e {e}  t {t} deg"
    text(img, _fit(name, width - 8, 0.4), (4, tile + 14), 0.4, WHITE)
    text(img, _fit(angles, width - 8, 0.4), (4, tile + 30), 0.4, GREY)
    return img


def sheet_image(
    root: Path, samples: Sequence[Sample], kind: str, total: int, settings: SheetSettings
) -> np.ndarray:
    """The contact sheet of `samples` (chosen from `total` images of kind `kind`)."""
    cells = [cell(root, s, kind, settings.tile) for s in samples]
    columns = min(settings.columns, len(cells))
    rows = []
    for i in range(0, len(cells), columns):
        row = cells[i : i + columns]
        row += [np.full_like(cells[0], DARK)] * (columns - len(row))
        rows.append(np.hstack([np.pad(c, ((0, 0), (0, 2), (0, 0))) for c in row]))
    width = rows[0].shape[1]
    kept = "the keep set respected" if settings.respect_keep else "every image"
    what = {"control": "control image", "renders": "control image | render"}.get(
        kind, "control image | generated image"
    )
    parts = [
        title_bar(
            _fit(f"{root.name}: {len(samples)} of {total} {KIND_WORDS[kind]} ({kept})", width - 20, 0.55),
            width,
            30,
            0.55,
        ),
        title_bar(
            _fit(
                f"{what} with mask outline and pose axes (X red, Y green, Z blue; front = -Y)",
                width - 20,
                0.45,
            ),
            width,
            24,
            0.45,
        ),
        *rows,
    ]
    return stack(parts)


def viewpoints_image(root: Path, samples: Sequence[Sample], kind: str) -> np.ndarray:
    """Per class, the azimuth x elevation histogram of its images."""
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.class_key].append(s)
    parts = [title_bar(f"Viewpoints of {root.name}: {len(samples)} {KIND_WORDS[kind]}", VIEWPOINTS_WIDTH)]
    for key in sorted(by_class):
        group = by_class[key]
        name = group[0].annotation["class"]["name"]
        az = np.array([s.annotation["pose"]["azimuth"] for s in group], dtype=float)
        el = np.array([s.annotation["pose"]["elevation"] for s in group], dtype=float)
        label = name if name == key else f"{name} ({key})"
        parts.append(_viewpoint_panel(az, el, VIEWPOINTS_WIDTH, f"{label}: {len(group)} images"))
    return stack(parts)


def write_pictures(
    out: str | os.PathLike, to: str | os.PathLike | None = None, settings: SheetSettings | None = None
) -> Pictures:
    """Draw the contact sheet and the viewpoint distribution of dataset `out` into the folder `to`
    (default: the dataset folder) as sheet.png and viewpoints.png; nothing is written when the
    dataset lacks the images asked for (DatasetError naming the setting)."""
    settings = settings or SheetSettings()
    root = Path(out)
    if not root.is_dir():
        raise DatasetError(f"{setting('out')} {root}: no such dataset folder")
    folder = root if to is None else Path(to)
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{setting('to')} {to}: is a file, not a folder")
    kind = choose_kind(root, settings.images)
    samples = collect_samples(root, kind, respect_keep=settings.respect_keep, classes=settings.classes)
    chosen = spread(samples, settings.count)
    sheet = sheet_image(root, chosen, kind, len(samples), settings)
    views = viewpoints_image(root, samples, kind)
    per_class: dict[str, int] = defaultdict(int)
    for s in samples:
        per_class[s.annotation["class"]["name"]] += 1
    write_png(folder / SHEET, sheet)
    write_png(folder / VIEWPOINTS, views)
    return Pictures(folder / SHEET, folder / VIEWPOINTS, kind, len(chosen), len(samples), dict(per_class))
