"""The panel's words for the settings core messages name (`out` is the Dataset Folder field)."""

from __future__ import annotations

from ..core.errors import Dst3dError, word

#: Settings whose panel label is not their name in title case.
PANEL_NAMES: dict[str, str] = {
    "out": "Dataset Folder",
    "allow_mixed": "the batch script's --allow-mixed",
    "dtype": "Precision",
    "pipeline": "Model",
    "controlnet": "ControlNet",
    "lora": "LoRA",
    "captions": "Captions File",
    "images_per_view": "Images per View",
    "python": "Worker Python",
    "random_distance": "Distance",
}


def panel_name(name: str) -> str:
    """The panel's label for a setting (`negative_prompt` -> `Negative Prompt`)."""
    return PANEL_NAMES.get(name) or name.replace("_", " ").title()


def panel_text(error: BaseException | str | None) -> str:
    """A message in the panel's words."""
    if isinstance(error, Dst3dError):
        return error.worded(panel_name)
    return word(str(error), panel_name)
