"""The settings of an eval run: its two sources, the estimator's training (KCF's settings) and the
weights it starts from (pure: no torch)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.dataset import ANNOTATIONS, DATASET_JSON, IMAGE_KINDS, KIND_WORDS
from ..core.errors import Dst3dError, SettingError, setting
from ..core.pascal3d import ANNOTATIONS as PASCAL3D_ANNOTATIONS
from ..core.weights import read_header
from ..kcf.images import CROP_MARGIN
from ..kcf.settings import BACKBONES, KcfSettings

SIDES = ("train", "test")
SOURCE_KINDS = ("dst3d", "pascal3d")
#: The KCF settings that an eval's training depends on (folds, group_by and images are KCF's own).
TRAINING = (
    "epochs",
    "batch_size",
    "image_size",
    "lr",
    "optimizer",
    "momentum",
    "weight_decay",
    "backbone",
    "pretrained",
    "seed",
    "num_bins",
    "augment",
    "label_sigma",
)
#: What `--init` weights (model.safetensors of an eval, a KCF fold's weights) must hold: a PoseNet.
HEAD_WEIGHT = "head.weight"
INIT = setting("init")


class EvalError(Dst3dError):
    """An eval that cannot go on; one line naming the option or file."""


@dataclass(frozen=True)
class Source:
    """One side's images: a dst3d dataset (`images` of it, the keep set respected unless not) or a
    PASCAL3D+-layout folder (the images `Image_sets/*_<split>.txt` lists, or all), limited to `classes`."""

    side: str
    path: Path
    kind: str
    images: str | None = None
    split: str | None = None
    classes: tuple[str, ...] = ()
    respect_keep: bool = True

    def recorded(self) -> dict[str, Any]:
        """The source as eval.json stores it."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "images": self.images,
            "split": self.split,
            "classes": list(self.classes),
            "respect_keep": self.respect_keep if self.kind == "dst3d" else None,
        }

    def describe(self) -> str:
        """`renders of /data/cars` or `PASCAL3D+ val of /data/PASCAL3D+`, for the door's lines."""
        if self.kind == "dst3d":
            return f"{KIND_WORDS[self.images or 'generated']} of {self.path}"
        return f"PASCAL3D+ {self.split or 'images'} of {self.path}"


def source_kind(path: Path) -> str | None:
    """`dst3d` for a dataset folder, `pascal3d` for a PASCAL3D+-layout folder, else None."""
    if (path / ANNOTATIONS).is_file() or (path / DATASET_JSON).is_file():
        return "dst3d"
    if (path / PASCAL3D_ANNOTATIONS).is_dir():
        return "pascal3d"
    return None


def open_source(
    side: str,
    path: str | os.PathLike,
    *,
    images: str | None = None,
    split: str | None = None,
    classes: tuple[str, ...] = (),
    respect_keep: bool = True,
) -> Source:
    """One side's source, its kind found from the folder (SettingError naming the side's option when
    it is neither kind, or when an option does not apply to it). `images` defaults to generated."""
    if side not in SIDES:
        raise ValueError(f"side {side!r}: train or test")
    given = Path(path).expanduser()
    if not given.is_dir():
        raise SettingError(f"{setting(side)} {path}: no such folder")
    kind = source_kind(given)
    if kind is None:
        raise SettingError(
            f"{setting(side)} {path}: neither a dst3d dataset (no {ANNOTATIONS}) nor a PASCAL3D+-layout folder "
            f"(no {PASCAL3D_ANNOTATIONS}/)"
        )
    if split is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", split):
        raise SettingError(
            f"{setting(side + '_split')} {split!r}: not a split name (letters, digits and . _ + -)"
        )
    if kind == "dst3d":
        if split is not None:
            raise SettingError(
                f"{setting(side + '_split')}: only a PASCAL3D+-layout folder has splits ({setting(side)} {path} "
                "is a dst3d dataset)"
            )
        images = images or "generated"
        if images not in IMAGE_KINDS:
            raise SettingError(
                f"{setting(side + '_images')} {images!r}: choose one of {', '.join(IMAGE_KINDS)}"
            )
    elif images is not None:
        raise SettingError(
            f"{setting(side + '_images')}: only a dst3d dataset has kinds of image ({setting(side)} {path} is a "
            "PASCAL3D+-layout folder)"
        )
    return Source(side, given.resolve(), kind, images, split, tuple(classes), respect_keep)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (in 1 MB reads)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Init:
    """Weights to start from (--init): a pose estimator's safetensors, checked against the backbone."""

    path: Path
    sha256: str


def check_init(path: str | os.PathLike, training: KcfSettings) -> Init:
    """`--init` weights, read as far as the header says (EvalError naming --init when they cannot fit
    the backbone); the worker loads them."""
    p = Path(path).expanduser()
    try:
        header = read_header(p)
    except Dst3dError as err:
        raise EvalError(f"{INIT} {err.text}") from None
    if HEAD_WEIGHT not in header.tensors:
        raise EvalError(
            f"{INIT} {path}: not a pose estimator's weights (no {HEAD_WEIGHT}); give the model.safetensors of an "
            "eval, or a KCF fold's weights (kcf --save-weights)"
        )
    _dtype, shape = header.tensors[HEAD_WEIGHT]
    want = (3 * training.num_bins, BACKBONES[training.backbone].hidden_sizes[-1])
    backbone = header.metadata.get("backbone")
    if backbone is not None and backbone != training.backbone:
        raise EvalError(
            f"{INIT} {path}: weights of {setting('backbone')} {backbone}, not {training.backbone}"
        )
    if tuple(shape) != want:
        raise EvalError(
            f"{INIT} {path}: its head is {list(shape)}, but {setting('backbone')} {training.backbone} with "
            f"{training.num_bins} bins needs {list(want)}; pick the matching {setting('backbone')}"
        )
    return Init(p.resolve(), file_sha256(p))


@dataclass(frozen=True)
class EvalSettings:
    """What an eval's results depend on: the sources, the training and the starting weights."""

    train: Source
    test: Source
    training: KcfSettings
    init: Init | None = None

    def recorded(self) -> dict[str, Any]:
        """The settings as eval.json stores them (and the fingerprint covers)."""
        training = self.training.as_dict()
        return {
            "train": self.train.recorded(),
            "test": self.test.recorded(),
            "training": {k: training[k] for k in TRAINING},
            "init": None if self.init is None else {"path": str(self.init.path), "sha256": self.init.sha256},
            "crop_margin": CROP_MARGIN,
        }
