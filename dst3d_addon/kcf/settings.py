"""The settings of a KCF run and the backbones it can train (pure: no torch)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.dataset import IMAGE_KINDS
from ..core.errors import Dst3dError, SettingError, setting

GROUP_BY = ("image", "view", "model")
OPTIMIZERS = ("sgd", "adamw")


class KcfError(Dst3dError):
    """A KCF run that cannot go on; the message is one line naming the option or file."""


@dataclass(frozen=True)
class Backbone:
    """A transformers ResNetConfig shape, and the ImageNet weights that fit it (if any)."""

    layer_type: str
    depths: tuple[int, ...]
    hidden_sizes: tuple[int, ...]
    embedding_size: int
    pretrained: str | None

    def config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of transformers.ResNetConfig."""
        return {
            "layer_type": self.layer_type,
            "depths": list(self.depths),
            "hidden_sizes": list(self.hidden_sizes),
            "embedding_size": self.embedding_size,
        }


BACKBONES: dict[str, Backbone] = {
    "resnet-50": Backbone("bottleneck", (3, 4, 6, 3), (256, 512, 1024, 2048), 64, "microsoft/resnet-50"),
    "resnet-101": Backbone("bottleneck", (3, 4, 23, 3), (256, 512, 1024, 2048), 64, "microsoft/resnet-101"),
    "resnet-34": Backbone("basic", (3, 4, 6, 3), (64, 128, 256, 512), 64, "microsoft/resnet-34"),
    "resnet-18": Backbone("basic", (2, 2, 2, 2), (64, 128, 256, 512), 64, "microsoft/resnet-18"),
    # For tests and quick looks: about 0.7 M parameters, no pretrained weights.
    "resnet-tiny": Backbone("basic", (1, 1, 1, 1), (16, 32, 64, 128), 16, None),
}


@dataclass(frozen=True)
class KcfSettings:
    """What a KCF run's scores depend on (the device and thread count do not belong here)."""

    folds: int = 5
    images: str = "generated"
    epochs: int = 30
    batch_size: int = 32
    image_size: int = 256
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    backbone: str = "resnet-50"
    pretrained: str | None = "microsoft/resnet-50"
    group_by: str = "view"
    seed: int = 0
    num_bins: int = 41
    augment: bool = True
    label_sigma: float = 3.0
    train_renders: bool = False
    skip_worst: float = 0.25
    classes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise SettingError(f"{setting('folds')} {self.folds}: needs at least 2 folds")
        if self.images not in IMAGE_KINDS:
            raise SettingError(f"{setting('images')} {self.images!r}: choose one of {', '.join(IMAGE_KINDS)}")
        if self.group_by not in GROUP_BY:
            raise SettingError(
                f"{setting('group_by')} {self.group_by!r}: choose one of {', '.join(GROUP_BY)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise SettingError(
                f"{setting('optimizer')} {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.backbone not in BACKBONES:
            raise SettingError(
                f"{setting('backbone')} {self.backbone!r}: choose one of {', '.join(BACKBONES)}"
            )
        if self.train_renders and self.images == "renders":
            raise SettingError(
                f"{setting('train_renders')}: the judged images are the renders themselves; "
                f"train on renders only when judging {setting('images')} generated or control"
            )
        if self.image_size < 32:
            raise SettingError(f"{setting('image_size')} {self.image_size}: at least 32 pixels")
        if not 0.0 <= self.skip_worst < 1.0:
            raise SettingError(f"{setting('skip_worst')} {self.skip_worst}: must be in [0, 1)")
        for name in ("label_sigma", "momentum", "weight_decay"):
            if getattr(self, name) < 0:
                raise SettingError(f"{setting(name)} {getattr(self, name)}: must not be negative")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingError(f"{setting(name)} {getattr(self, name)}: must be positive")

    def as_dict(self) -> dict[str, Any]:
        """The settings as dataset.json stores them."""
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    def fingerprint(self, items: list[dict], renders: list[dict] | None = None) -> str:
        """A hash of the settings, the judged images with their labels and folds, and the renders
        trained on (with `train_renders`) with their labels.

        A finished fold is reused only when this matches: same settings, same images, same folds.
        """
        content: dict[str, Any] = {"settings": self.as_dict(), "items": items}
        if renders:
            content["renders"] = renders
        blob = json.dumps(content, sort_keys=True, allow_nan=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def default_pretrained(backbone: str) -> str | None:
    """The ImageNet weights 3D-DST's KCF starts from for `backbone` (None for resnet-tiny)."""
    return BACKBONES[backbone].pretrained
