"""Loading the ControlNet pipeline inside the worker (torch + diffusers), and its schedulers.

A request names the base model and the ControlNet separately (`sources.py` says what each spec
names and its family). Weights load from safetensors only (pickle files need an explicit flag),
never with remote code; hub ids come from the cache first, the hub only where allowed (`hub.py`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from ...core.errors import SettingError
from ...core.generation_settings import DTYPES, PIPELINE_PRESETS, SCHEDULERS
from ..errors import BadInput, GenerationError, MissingRuntime, MissingWeights, OutOfMemory
from ..hub import Progress, from_hub, hf_cache_dir, hub_file, missing_weights, one_line
from ..model_configs import family_config_dir
from ..worker_env import check_device
from .devices import resolve_device, resolve_dtype
from .sources import (
    DEFAULT_CONTROLNET,
    Source,
    base_family,
    classify,
    controlnet_config_dir,
    controlnet_family,
    controlnet_folder_config,
)
from .tiny import TINY_NOTE, tiny_pipeline_path

T = TypeVar("T")


@dataclass(frozen=True)
class PipelineRequest:
    """Which pipeline to load, as the client sends it (plain values; see `from_dict`).

    `base_config` / `controlnet_config`: a local diffusers folder whose configs match a single-file
    checkpoint (default: the configs dst3d ships for the detected family).
    """

    base: str = "sd15-canny"
    controlnet: str | None = None
    family: str | None = None
    scheduler: str = "ddim"
    dtype: str = "auto"
    device: str = "auto"
    allow_pickle: bool = False
    lora: str | None = None
    cache_dir: str | None = None
    base_config: str | None = None
    controlnet_config: str | None = None

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise BadInput(f"scheduler {self.scheduler!r} is unknown (choose one of {', '.join(SCHEDULERS)})")
        if self.dtype not in DTYPES:
            raise BadInput(f"dtype {self.dtype!r} is unknown (choose one of {', '.join(DTYPES)})")
        if self.family not in (None, "sd15", "sdxl"):
            raise BadInput(
                f"family {self.family!r} is unknown (choose sd15 or sdxl, or leave it empty to detect)"
            )
        try:
            check_device(self.device)
        except SettingError as exc:
            raise BadInput(exc.text) from None
        if not self.base:
            raise BadInput(
                "base model is empty: give a preset name, a hub id, a folder or a .safetensors file"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineRequest:
        """The request from its pipe-protocol dict; unknown keys are refused with BadInput."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BadInput(f"pipeline request has unknown keys: {', '.join(unknown)}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """The request as a plain dict for the pipe protocol."""
        return asdict(self)


@dataclass
class LoadedPipeline:
    """A loaded diffusers ControlNet pipeline and what it is, as recorded in datasets."""

    pipe: Any
    family: str
    device: torch.device
    dtype: torch.dtype
    is_tiny: bool
    description: dict[str, Any]
    request: PipelineRequest


# --- loading -------------------------------------------------------------------------------------------


def _pipeline_class(family: str) -> type:
    from diffusers import StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline

    return StableDiffusionXLControlNetPipeline if family == "sdxl" else StableDiffusionControlNetPipeline


def _translate(src: Source, action: Callable[[], T]) -> T:
    """Run a loading step; turn what it raises into one typed line naming the model."""
    try:
        return action()
    except GenerationError:
        raise
    except torch.cuda.OutOfMemoryError:
        raise OutOfMemory(f"{src.role} {src.label}: out of device memory while loading") from None
    except ImportError as error:
        raise MissingRuntime(f"{src.role} {src.label}: a package is missing ({one_line(error)})") from None
    except OSError as error:
        raise BadInput(f"{src.role} {src.label}: cannot load ({one_line(error)})") from None
    except Exception as error:
        raise GenerationError(f"{src.role} {src.label}: loading failed ({one_line(error)})") from None


def _load_controlnet(
    src: Source, family: str, request: PipelineRequest, dtype: torch.dtype, progress: Progress
) -> Any:
    from diffusers import ControlNetModel

    safetensors_only = not request.allow_pickle
    if src.kind == "tiny":
        folder = tiny_pipeline_path()
        return ControlNetModel.from_pretrained(
            folder, subfolder="controlnet", dtype=dtype, local_files_only=True, use_safetensors=True
        )
    if src.kind == "folder":
        config = controlnet_folder_config(Path(src.location))
        assert config is not None  # checked by _controlnet_family
        return ControlNetModel.from_pretrained(
            config.parent, dtype=dtype, local_files_only=True, use_safetensors=safetensors_only
        )
    if src.kind == "hub":
        cache = str(hf_cache_dir(request.cache_dir))
        return from_hub(
            src.location,
            lambda local: ControlNetModel.from_pretrained(
                src.location,
                cache_dir=cache,
                dtype=dtype,
                local_files_only=local,
                use_safetensors=safetensors_only,
            ),
            request.cache_dir,
            progress,
        )
    if request.controlnet_config:
        config_dir = controlnet_config_dir(request.controlnet_config)
    else:
        config_dir = family_config_dir(family) / "controlnet"
    return ControlNetModel.from_single_file(
        src.location, config=str(config_dir), dtype=dtype, local_files_only=True
    )


def _load_base(
    src: Source,
    family: str,
    controlnet: Any,
    request: PipelineRequest,
    dtype: torch.dtype,
    progress: Progress,
) -> Any:
    cls = _pipeline_class(family)
    extra: dict[str, Any] = {"controlnet": controlnet, "dtype": dtype}
    if family == "sd15":
        extra.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    safetensors_only = not request.allow_pickle
    if src.kind in ("tiny", "folder"):
        folder = tiny_pipeline_path() if src.kind == "tiny" else src.location
        return cls.from_pretrained(folder, local_files_only=True, use_safetensors=safetensors_only, **extra)
    if src.kind == "hub":
        cache = str(hf_cache_dir(request.cache_dir))
        return from_hub(
            src.location,
            lambda local: cls.from_pretrained(
                src.location,
                cache_dir=cache,
                local_files_only=local,
                use_safetensors=safetensors_only,
                **extra,
            ),
            request.cache_dir,
            progress,
        )
    if request.base_config:
        config = Path(request.base_config).expanduser()
        if not (config / "model_index.json").is_file():
            raise BadInput(f"base_config {request.base_config}: not a diffusers folder (no model_index.json)")
    else:
        config = family_config_dir(family)
    return cls.from_single_file(src.location, config=str(config), local_files_only=True, **extra)


def _load_lora(loaded: LoadedPipeline, spec: str, progress: Progress) -> None:
    request = loaded.request
    src = classify(spec, "LoRA", request.allow_pickle)
    if src.kind == "tiny":
        raise BadInput("LoRA tiny: there is no tiny LoRA; give a hub id, a folder or a .safetensors file")
    location = src.location
    if src.kind == "hub":
        from huggingface_hub import snapshot_download

        cache = str(hf_cache_dir(request.cache_dir))
        patterns = ["*.json", "*.safetensors"] + (["*.bin"] if request.allow_pickle else [])
        location = from_hub(
            src.location,
            lambda local: _snapshot_with_weights(
                snapshot_download(
                    src.location, cache_dir=cache, local_files_only=local, allow_patterns=patterns
                )
            ),
            request.cache_dir,
            progress,
        )
    if not _peft_available():
        raise MissingRuntime(
            f"LoRA {spec}: loading LoRA weights needs the `peft` package in the worker's Python"
        )
    progress(f"loading LoRA {spec} and fusing it into the pipeline")

    def load() -> None:
        path = Path(location)
        kwargs: dict[str, Any] = {"use_safetensors": not request.allow_pickle}
        if path.is_file():
            loaded.pipe.load_lora_weights(str(path.parent), weight_name=path.name, **kwargs)
        else:
            loaded.pipe.load_lora_weights(str(path), **kwargs)
        loaded.pipe.fuse_lora()
        loaded.pipe.unload_lora_weights()

    _translate(src, load)


def _peft_available() -> bool:
    """diffusers loads LoRA weights through `peft`, an optional package of the worker's Python."""
    return importlib.util.find_spec("peft") is not None


def _snapshot_with_weights(folder: str) -> str:
    """A cached snapshot folder, or OSError when it holds no weights (a partial cache counts as a miss)."""
    if not any(p.suffix in (".safetensors", ".bin") for p in Path(folder).rglob("*")):
        raise FileNotFoundError(f"no weights in {folder}")
    return folder


def _make_scheduler(name: str, config: Any) -> Any:
    import diffusers

    if name not in SCHEDULERS:
        raise BadInput(f"scheduler {name!r} is unknown (choose one of {', '.join(SCHEDULERS)})")
    return getattr(diffusers, SCHEDULERS[name].diffusers_class).from_config(config)


def set_scheduler(loaded: LoadedPipeline, name: str) -> None:
    """Swap the pipeline's scheduler for `name`, built from the model's own scheduler config.

    The noise schedule (betas, timesteps, offset) stays the model's, so "ddim" keeps SD's values.
    """
    loaded.pipe.scheduler = _make_scheduler(name, loaded.pipe.scheduler.config)
    loaded.description["scheduler"] = name


def _check_hub_weights(base: Source, request: PipelineRequest, say: Progress) -> None:
    """Before any loading: a hub base and a hub ControlNet named up front must be had; when
    neither is, one MissingWeights names both (one download session fixes it, not two runs)."""
    control_spec = request.controlnet or (request.base if request.base in PIPELINE_PRESETS else None)
    sources = [(base, "model_index.json")]
    if control_spec:
        sources.append((classify(control_spec, "ControlNet", request.allow_pickle), "config.json"))
    missing: list[tuple[str, MissingWeights]] = []
    for src, filename in sources:
        if src.kind == "hub":
            try:
                hub_file(src.location, filename, request.cache_dir, say)
            except MissingWeights as error:
                missing.append((src.location, error))
    if len(missing) == 1:
        raise missing[0][1]
    if missing:
        names = " and ".join(name for name, _ in missing)
        reason = getattr(missing[0][1], "reason", "the hub cannot be reached")
        raise missing_weights(names, request.cache_dir, reason, [name for name, _ in missing])


def load_pipeline(request: PipelineRequest, progress: Progress | None = None) -> LoadedPipeline:
    """Load the ControlNet pipeline `request` names, on its device and dtype, ready to generate.

    The safety checker is not loaded: dst3d generates datasets of objects, and the checker blacks
    out whole images on false positives, which would silently poison a dataset.
    """
    say: Progress = progress or (lambda _message: None)
    base = classify(request.base, "base", request.allow_pickle)
    _check_hub_weights(base, request, say)
    family_of_base = request.family or base_family(base, request.cache_dir, say)
    if request.controlnet:
        control_spec = request.controlnet
    elif request.base in PIPELINE_PRESETS:
        control_spec = request.base
    elif base.kind == "folder" and (Path(base.location) / "controlnet" / "config.json").is_file():
        control_spec = str(Path(base.location) / "controlnet")
    else:
        control_spec = DEFAULT_CONTROLNET[family_of_base]
    control = classify(control_spec, "ControlNet", request.allow_pickle)
    control_family = controlnet_family(control, request.cache_dir, request.controlnet_config, say)
    if control_family != family_of_base:
        raise BadInput(
            f"base {base.given} is {family_of_base} but ControlNet {control.given} is {control_family}: "
            f"pick a ControlNet made for {family_of_base}"
        )
    family = family_of_base
    # Base first: a missing base is the error to show even when its ControlNet is missing too.
    if base.kind == "hub":
        hub_file(base.location, "model_index.json", request.cache_dir, say)
    if control.kind == "hub":
        hub_file(control.location, "config.json", request.cache_dir, say)
    try:
        device = resolve_device(request.device)
        dtype = resolve_dtype(request.dtype, device)
    except SettingError as exc:
        raise BadInput(exc.text) from None
    is_tiny = base.kind == "tiny"
    if is_tiny:
        say(f"loading the {TINY_NOTE}")

    say(f"loading ControlNet {control.label}")
    controlnet = _translate(control, lambda: _load_controlnet(control, family, request, dtype, say))
    say(f"loading base model {base.label}")
    pipe = _translate(base, lambda: _load_base(base, family, controlnet, request, dtype, say))

    def place() -> None:
        pipe.to(device)
        if device.type == "cuda":
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.controlnet.to(memory_format=torch.channels_last)

    _translate(base, place)
    pipe.set_progress_bar_config(disable=True)
    description: dict[str, Any] = {
        "base": base.description,
        "controlnet": control.description,
        "scheduler": request.scheduler,
        "family": family,
        "lora": request.lora,
    }
    if is_tiny or control.kind == "tiny":
        description["note"] = TINY_NOTE
    loaded = LoadedPipeline(pipe, family, device, dtype, is_tiny, description, request)
    set_scheduler(loaded, request.scheduler)
    if request.lora:
        _load_lora(loaded, request.lora, say)
    return loaded
