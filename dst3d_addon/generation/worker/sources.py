"""What a model spec names, and which family (SD1.5 or SDXL) the model is.

A spec is a preset name (`sd15-canny`, `sdxl-canny`, `tiny`), a hub id, a local diffusers folder
or a single original-format checkpoint file. The family comes from the preset, a folder's or hub
repository's config, or a checkpoint's keys. Pickle checkpoints are refused unless allowed: they
can run code when loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...core.generation_settings import PIPELINE_PRESETS, TINY
from ..errors import BadInput
from ..hub import HUB_ID, Progress, hub_file, one_line

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
#: The ControlNet used when a request names only a base model.
DEFAULT_CONTROLNET = {
    p.family: p.controlnet for name, p in PIPELINE_PRESETS.items() if name != TINY and name.endswith("-canny")
}


@dataclass(frozen=True)
class Source:
    """One model to load: kind is "tiny", "hub", "folder" or "file"; `given` is what the user wrote."""

    kind: str
    location: str
    given: str
    role: str  # "base", "ControlNet" or "LoRA"

    @property
    def label(self) -> str:
        return self.given if self.given == self.location else f"{self.given} ({self.location})"

    @property
    def description(self) -> str:
        """How datasets record it: the hub id or tiny, else the path as given."""
        return self.location if self.kind in ("hub", "tiny") else self.given


def classify(spec: str, role: str, allow_pickle: bool) -> Source:
    """What `spec` names: a preset's model, a local folder or file, or a hub id."""
    if spec == TINY:
        return Source("tiny", TINY, spec, role)
    if spec in PIPELINE_PRESETS:
        preset = PIPELINE_PRESETS[spec]
        return Source("hub", preset.base if role == "base" else preset.controlnet, spec, role)
    path = Path(spec).expanduser()
    if path.is_dir():
        return Source("folder", str(path), spec, role)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise BadInput(
                f"{role} {spec}: pickle checkpoints ({suffix}) can run code when loaded and are refused; "
                "use a .safetensors file, or pass --allow-pickle (allow_pickle=True) if you trust it"
            )
        if suffix != ".safetensors" and suffix not in PICKLE_SUFFIXES:
            raise BadInput(f"{role} {spec}: not a .safetensors checkpoint or a diffusers folder")
        return Source("file", str(path), spec, role)
    looks_like_path = spec.startswith(("/", ".", "~")) or "\\" in spec or spec.count("/") > 1
    if looks_like_path or path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES) or not HUB_ID.match(spec):
        raise BadInput(
            f"{role} {spec}: no such file or folder, and not a preset "
            f"({', '.join(PIPELINE_PRESETS)}) or a hub id (org/name)"
        )
    return Source("hub", spec, spec, role)


def _family_of_pipeline_class(class_name: str, label: str) -> str:
    if "XL" in class_name:
        return "sdxl"
    if class_name.startswith("StableDiffusion"):
        return "sd15"
    raise BadInput(f"base {label}: {class_name} is not a Stable Diffusion 1.5 or SDXL pipeline")


def _family_of_controlnet_config(config: dict[str, Any]) -> str:
    return "sdxl" if config.get("addition_embed_type") == "text_time" else "sd15"


def _read_json(path: Path, label: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInput(f"{label}: cannot read {path.name} ({one_line(error)})") from None


def _checkpoint_keys(src: Source) -> list[str]:
    if src.location.lower().endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(src.location, framework="pt") as f:
                return list(f.keys())
        except Exception as error:
            raise BadInput(
                f"{src.role} {src.given}: not a readable safetensors file ({one_line(error)})"
            ) from None
    try:  # a pickle file the user allowed explicitly
        data = torch.load(src.location, map_location="cpu", weights_only=False)
    except Exception as error:
        raise BadInput(f"{src.role} {src.given}: cannot read the checkpoint ({one_line(error)})") from None
    data = data.get("state_dict", data) if isinstance(data, dict) else {}
    return list(data)


def controlnet_folder_config(folder: Path) -> Path | None:
    """The config.json of a ControlNet folder (or of a pipeline folder's `controlnet/`), if any."""
    for candidate in (folder / "config.json", folder / "controlnet" / "config.json"):
        if candidate.is_file():
            return candidate
    return None


def controlnet_config_dir(spec: str) -> Path:
    """The folder of a user-given ControlNet config (`controlnet_config`); BadInput if it has none."""
    folder = Path(spec).expanduser()
    config = controlnet_folder_config(folder) if folder.is_dir() else None
    if config is None:
        raise BadInput(f"controlnet_config {spec}: not a folder with config.json or controlnet/config.json")
    return config.parent


def base_family(src: Source, cache_dir: str | None, progress: Progress) -> str:
    """ "sd15" or "sdxl" for a base model source (BadInput if it is neither)."""
    if src.given in PIPELINE_PRESETS:
        return PIPELINE_PRESETS[src.given].family
    if src.kind == "folder":
        index = Path(src.location) / "model_index.json"
        if not index.is_file():
            raise BadInput(f"base {src.given}: not a diffusers pipeline folder (no model_index.json)")
        return _family_of_pipeline_class(str(_read_json(index, src.given).get("_class_name", "")), src.given)
    if src.kind == "hub":
        path = hub_file(src.location, "model_index.json", cache_dir, progress)
        return _family_of_pipeline_class(
            str(_read_json(Path(path), src.given).get("_class_name", "")), src.label
        )
    keys = _checkpoint_keys(src)
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd15"
    raise BadInput(
        f"base {src.given}: not an original-format SD1.5 or SDXL checkpoint "
        "(no cond_stage_model.transformer.* or conditioner.embedders.1.* keys)"
    )


def controlnet_family(
    src: Source, cache_dir: str | None, controlnet_config: str | None, progress: Progress
) -> str:
    """ "sd15" or "sdxl" for a ControlNet source (BadInput if it is not a ControlNet)."""
    if src.given in PIPELINE_PRESETS:
        return PIPELINE_PRESETS[src.given].family
    if src.kind == "folder":
        config = controlnet_folder_config(Path(src.location))
        if config is None:
            raise BadInput(f"ControlNet {src.given}: not a diffusers ControlNet folder (no config.json)")
        return _family_of_controlnet_config(_read_json(config, src.given))
    if src.kind == "hub":
        path = hub_file(src.location, "config.json", cache_dir, progress)
        return _family_of_controlnet_config(_read_json(Path(path), src.label))
    if controlnet_config:
        return _family_of_controlnet_config(
            _read_json(controlnet_config_dir(controlnet_config) / "config.json", src.given)
        )
    keys = _checkpoint_keys(src)
    if any(("label_emb." in k or "add_embedding." in k) for k in keys):
        return "sdxl"
    if any(("input_hint_block." in k or "controlnet_cond_embedding." in k) for k in keys):
        return "sd15"
    raise BadInput(f"ControlNet {src.given}: not a ControlNet checkpoint (no input_hint_block.* keys)")
