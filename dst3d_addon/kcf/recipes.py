"""The training recipes KCF chooses from when the user leaves them to it (pure: no torch).

Two recipes, chosen by whether ImageNet weights can be had and, without them, by data size:

- **pretrained**: 3D-DST's (ResNet-50 from ImageNet weights, 256 px, SGD lr 0.01, 30 epochs,
  batch 32), for fine-tuning, where weights do the heavy lifting;
- **scratch**: what learns from random initialisation on a few hundred images on a CPU, measured
  with tools/bench_kcf_small.py (README, KCF section): the 0.7 M-parameter `resnet-tiny` at 64 px,
  AdamW. A small dataset needs many passes to learn the pose from scratch, a large one few, so the
  epochs are those that give about `SCRATCH_STEPS` optimiser steps, within
  [`SCRATCH_MIN_EPOCHS`, `SCRATCH_MAX_EPOCHS`].

3D-DST's recipe from random initialisation learns nothing on such data (ROC AUC 0.45, issue 10);
kcf/learning.py says so when it happens anyway.
"""

from __future__ import annotations

import math
from typing import Any

#: The fields a recipe sets (those the user did not give).
RECIPE_FIELDS = ("backbone", "image_size", "optimizer", "lr", "epochs", "batch_size", "weight_decay")

PRETRAINED: dict[str, Any] = {
    "backbone": "resnet-50",
    "image_size": 256,
    "optimizer": "sgd",
    "lr": 0.01,
    "epochs": 30,
    "batch_size": 32,
    "weight_decay": 1e-4,
}

SCRATCH_STEPS = 1500
SCRATCH_MIN_EPOCHS = 25
SCRATCH_MAX_EPOCHS = 200
_SCRATCH: dict[str, Any] = {
    "backbone": "resnet-tiny",
    "image_size": 64,
    "optimizer": "adamw",
    "lr": 0.003,
    "batch_size": 16,
    "weight_decay": 1e-4,
}


def scratch(train_images: int) -> dict[str, Any]:
    """The recipe from random initialisation for folds that train on `train_images` images each."""
    steps_per_epoch = max(1, math.ceil(max(1, train_images) / _SCRATCH["batch_size"]))
    epochs = min(SCRATCH_MAX_EPOCHS, max(SCRATCH_MIN_EPOCHS, math.ceil(SCRATCH_STEPS / steps_per_epoch)))
    return {**_SCRATCH, "epochs": epochs}


def choose(weights: bool, train_images: int) -> dict[str, Any]:
    """The recipe's fields for a run with or without ImageNet weights, whose folds train on
    `train_images` images each."""
    return dict(PRETRAINED) if weights else scratch(train_images)


def describe(fields: dict[str, Any]) -> str:
    """'resnet-tiny at 64 px, adamw lr 0.003, batch 16, 94 epochs'."""
    return (
        f"{fields['backbone']} at {fields['image_size']} px, {fields['optimizer']} lr {fields['lr']:g}, "
        f"batch {fields['batch_size']}, {fields['epochs']} epochs"
    )
