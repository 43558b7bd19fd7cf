"""Loading the ControlNet pipeline inside the worker (torch + diffusers).

A request names the base model and the ControlNet separately, each as a preset name (`sd15-canny`,
`sdxl-canny`, `tiny`), a hub id, a local diffusers folder or a single original-format checkpoint
file. Weights load from safetensors only (pickle files need an explicit flag), never with remote
code. Hub ids load from the local Hugging Face cache first; only when that misses and we are not
offline (`HF_HUB_OFFLINE=1`) is the hub tried, after a quick reachability probe, so an offline
machine fails in well under a second with one line saying what to download.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..core.generation_settings import PIPELINE_PRESETS, TINY
from .errors import BadInput, GenerationError, MissingRuntime, MissingWeights, OutOfMemory
from .model_configs import family_config_dir
from .tiny import TINY_NOTE, tiny_pipeline_path

SCHEDULERS = ("ddim", "unipc", "dpm++", "euler", "euler-a", "lcm")
DTYPES = ("auto", "fp16", "bf16", "fp32")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
#: The ControlNet used when a request names only a base model.
DEFAULT_CONTROLNET = {
    p.family: p.controlnet for name, p in PIPELINE_PRESETS.items() if name != TINY and name.endswith("-canny")
}
#: Seconds the reachability probe waits for the hub before calling it unreachable.
HUB_PROBE_TIMEOUT_S = 4.0

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
T = TypeVar("T")
Progress = Callable[[str], None]


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
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise BadInput(f"device {self.device!r} is unknown (choose auto, cpu, cuda, cuda:N or mps)")
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


@dataclass(frozen=True)
class _Source:
    """One model to load: kind is "tiny", "hub", "folder" or "file"; `given` is what the user wrote."""

    kind: str
    location: str
    given: str
    role: str  # "base", "ControlNet" or "LoRA"

    @property
    def label(self) -> str:
        return self.given if self.given == self.location else f"{self.given} ({self.location})"


# --- environment -------------------------------------------------------------------------------------


def hub_offline() -> bool:
    """True when `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set, read now rather than at import."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def hf_cache_dir(request: PipelineRequest | None = None) -> Path:
    """The Hugging Face hub cache in use: the request's, `$HF_HUB_CACHE`, `$HF_HOME/hub`, or the default."""
    if request is not None and request.cache_dir:
        return Path(request.cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def probe_hub(repo_id: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """None when the hub answers for `repo_id`, else a short reason (one HEAD request, no retries)."""
    url = f"{_hub_endpoint()}/api/models/{repo_id}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError as error:
        if error.code in (401, 403, 404):
            raise BadInput(
                f"{repo_id}: the Hugging Face hub has no such model (HTTP {error.code}); check the id, "
                "or log in (`hf auth login`) if it is gated"
            ) from None
        return f"HTTP {error.code} from {url}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"{type(reason).__name__}: {reason}".splitlines()[0][:160]


def _missing_weights(
    name: str, request: PipelineRequest, reason: str, ids: list[str] | None = None
) -> MissingWeights:
    downloads = "; ".join(f"hf download {i}" for i in (ids or [name]))
    error = MissingWeights(
        f"{name}: weights not in the Hugging Face cache ({hf_cache_dir(request)}) and HF_HUB_OFFLINE=1 / "
        f"the hub cannot be reached ({reason}); download them on a machine with network "
        f"(e.g. `{downloads}`) and copy the cache, or pass a local folder / .safetensors file"
    )
    error.reason = reason  # type: ignore[attr-defined]
    return error


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(error).__name__


def _from_hub(name: str, load: Callable[[bool], T], request: PipelineRequest, progress: Progress) -> T:
    """`load(local_files_only)` from the cache; on a miss, from the hub unless offline or unreachable."""
    try:
        return load(True)
    except OSError:  # diffusers / huggingface_hub report a cache miss as an OSError subclass
        pass
    if hub_offline():
        raise _missing_weights(name, request, "HF_HUB_OFFLINE is set")
    reason = probe_hub(name)
    if reason is not None:
        raise _missing_weights(name, request, reason)
    progress(f"downloading {name} from the Hugging Face hub into {hf_cache_dir(request)}")
    try:
        return load(False)
    except OSError as error:
        raise _missing_weights(name, request, _one_line(error)) from None


# --- sources and families ------------------------------------------------------------------------------


def _classify(spec: str, role: str, allow_pickle: bool) -> _Source:
    """What `spec` names: a preset's model, a local folder or file, or a hub id."""
    if spec == TINY:
        return _Source("tiny", TINY, spec, role)
    if spec in PIPELINE_PRESETS:
        preset = PIPELINE_PRESETS[spec]
        return _Source("hub", preset.base if role == "base" else preset.controlnet, spec, role)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _Source("folder", str(path), spec, role)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise BadInput(
                f"{role} {spec}: pickle checkpoints ({suffix}) can run code when loaded and are refused; "
                "use a .safetensors file, or pass --allow-pickle (allow_pickle=True) if you trust it"
            )
        if suffix != ".safetensors" and suffix not in PICKLE_SUFFIXES:
            raise BadInput(f"{role} {spec}: not a .safetensors checkpoint or a diffusers folder")
        return _Source("file", str(path), spec, role)
    looks_like_path = spec.startswith(("/", ".", "~")) or "\\" in spec or spec.count("/") > 1
    if (
        looks_like_path
        or path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES)
        or not _HUB_ID.match(spec)
    ):
        raise BadInput(
            f"{role} {spec}: no such file or folder, and not a preset "
            f"({', '.join(PIPELINE_PRESETS)}) or a hub id (org/name)"
        )
    return _Source("hub", spec, spec, role)


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
        raise BadInput(f"{label}: cannot read {path.name} ({_one_line(error)})") from None


def _checkpoint_keys(src: _Source) -> list[str]:
    if src.location.lower().endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(src.location, framework="pt") as f:
                return list(f.keys())
        except Exception as error:
            raise BadInput(
                f"{src.role} {src.given}: not a readable safetensors file ({_one_line(error)})"
            ) from None
    try:  # a pickle file the user allowed explicitly
        data = torch.load(src.location, map_location="cpu", weights_only=False)
    except Exception as error:
        raise BadInput(f"{src.role} {src.given}: cannot read the checkpoint ({_one_line(error)})") from None
    data = data.get("state_dict", data) if isinstance(data, dict) else {}
    return list(data)


def _controlnet_folder_config(folder: Path) -> Path | None:
    for candidate in (folder / "config.json", folder / "controlnet" / "config.json"):
        if candidate.is_file():
            return candidate
    return None


def _base_family(src: _Source, request: PipelineRequest, progress: Progress) -> str:
    if src.given in PIPELINE_PRESETS:
        return PIPELINE_PRESETS[src.given].family
    if src.kind == "folder":
        index = Path(src.location) / "model_index.json"
        if not index.is_file():
            raise BadInput(f"base {src.given}: not a diffusers pipeline folder (no model_index.json)")
        return _family_of_pipeline_class(str(_read_json(index, src.given).get("_class_name", "")), src.given)
    if src.kind == "hub":
        path = _hub_file(src.location, "model_index.json", request, progress)
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


def _controlnet_family(src: _Source, request: PipelineRequest, progress: Progress) -> str:
    if src.given in PIPELINE_PRESETS:
        return PIPELINE_PRESETS[src.given].family
    if src.kind == "folder":
        config = _controlnet_folder_config(Path(src.location))
        if config is None:
            raise BadInput(f"ControlNet {src.given}: not a diffusers ControlNet folder (no config.json)")
        return _family_of_controlnet_config(_read_json(config, src.given))
    if src.kind == "hub":
        path = _hub_file(src.location, "config.json", request, progress)
        return _family_of_controlnet_config(_read_json(Path(path), src.label))
    if request.controlnet_config:
        return _family_of_controlnet_config(
            _read_json(_controlnet_config_dir(request.controlnet_config) / "config.json", src.given)
        )
    keys = _checkpoint_keys(src)
    if any(("label_emb." in k or "add_embedding." in k) for k in keys):
        return "sdxl"
    if any(("input_hint_block." in k or "controlnet_cond_embedding." in k) for k in keys):
        return "sd15"
    raise BadInput(f"ControlNet {src.given}: not a ControlNet checkpoint (no input_hint_block.* keys)")


def _hub_file(repo_id: str, filename: str, request: PipelineRequest, progress: Progress) -> str:
    from huggingface_hub import hf_hub_download

    cache = str(hf_cache_dir(request))
    return _from_hub(
        repo_id,
        lambda local: hf_hub_download(repo_id, filename, cache_dir=cache, local_files_only=local),
        request,
        progress,
    )


def _controlnet_config_dir(spec: str) -> Path:
    folder = Path(spec).expanduser()
    config = _controlnet_folder_config(folder) if folder.is_dir() else None
    if config is None:
        raise BadInput(f"controlnet_config {spec}: not a folder with config.json or controlnet/config.json")
    return config.parent


# --- devices and dtypes --------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """The torch device for "auto", "cpu", "cuda", "cuda:N" or "mps"; BadInput if it is not here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"device {name}: this torch ({torch.__version__}) has no CUDA device; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadInput(f"device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BadInput(f"device {name}: MPS is not available in this torch")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """fp16 on CUDA and fp32 elsewhere for "auto"; fp16 on the CPU is refused (slow or unsupported)."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name == "fp16" and device.type == "cpu":
        raise BadInput("dtype fp16 on the cpu is not supported; use fp32 or bf16")
    return _DTYPES[name]


# --- loading -------------------------------------------------------------------------------------------


def _pipeline_class(family: str) -> type:
    from diffusers import StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline

    return StableDiffusionXLControlNetPipeline if family == "sdxl" else StableDiffusionControlNetPipeline


def _translate(src: _Source, action: Callable[[], T]) -> T:
    """Run a loading step; turn what it raises into one typed line naming the model."""
    try:
        return action()
    except GenerationError:
        raise
    except torch.cuda.OutOfMemoryError:
        raise OutOfMemory(f"{src.role} {src.label}: out of device memory while loading") from None
    except ImportError as error:
        raise MissingRuntime(f"{src.role} {src.label}: a package is missing ({_one_line(error)})") from None
    except OSError as error:
        raise BadInput(f"{src.role} {src.label}: cannot load ({_one_line(error)})") from None
    except Exception as error:
        raise GenerationError(f"{src.role} {src.label}: loading failed ({_one_line(error)})") from None


def _load_controlnet(
    src: _Source, family: str, request: PipelineRequest, dtype: torch.dtype, progress: Progress
) -> Any:
    from diffusers import ControlNetModel

    safetensors_only = not request.allow_pickle
    if src.kind == "tiny":
        folder = tiny_pipeline_path()
        return ControlNetModel.from_pretrained(
            folder, subfolder="controlnet", dtype=dtype, local_files_only=True, use_safetensors=True
        )
    if src.kind == "folder":
        config = _controlnet_folder_config(Path(src.location))
        assert config is not None  # checked by _controlnet_family
        return ControlNetModel.from_pretrained(
            config.parent, dtype=dtype, local_files_only=True, use_safetensors=safetensors_only
        )
    if src.kind == "hub":
        cache = str(hf_cache_dir(request))
        return _from_hub(
            src.location,
            lambda local: ControlNetModel.from_pretrained(
                src.location,
                cache_dir=cache,
                dtype=dtype,
                local_files_only=local,
                use_safetensors=safetensors_only,
            ),
            request,
            progress,
        )
    if request.controlnet_config:
        config_dir = _controlnet_config_dir(request.controlnet_config)
    else:
        config_dir = family_config_dir(family) / "controlnet"
    return ControlNetModel.from_single_file(
        src.location, config=str(config_dir), dtype=dtype, local_files_only=True
    )


def _load_base(
    src: _Source,
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
        cache = str(hf_cache_dir(request))
        return _from_hub(
            src.location,
            lambda local: cls.from_pretrained(
                src.location,
                cache_dir=cache,
                local_files_only=local,
                use_safetensors=safetensors_only,
                **extra,
            ),
            request,
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
    src = _classify(spec, "LoRA", request.allow_pickle)
    if src.kind == "tiny":
        raise BadInput("LoRA tiny: there is no tiny LoRA; give a hub id, a folder or a .safetensors file")
    location = src.location
    if src.kind == "hub":
        from huggingface_hub import snapshot_download

        cache = str(hf_cache_dir(request))
        patterns = ["*.json", "*.safetensors"] + (["*.bin"] if request.allow_pickle else [])
        location = _from_hub(
            src.location,
            lambda local: _snapshot_with_weights(
                snapshot_download(
                    src.location, cache_dir=cache, local_files_only=local, allow_patterns=patterns
                )
            ),
            request,
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

    classes = {
        "ddim": "DDIMScheduler",
        "unipc": "UniPCMultistepScheduler",
        "dpm++": "DPMSolverMultistepScheduler",
        "euler": "EulerDiscreteScheduler",
        "euler-a": "EulerAncestralDiscreteScheduler",
        "lcm": "LCMScheduler",
    }
    if name not in classes:
        raise BadInput(f"scheduler {name!r} is unknown (choose one of {', '.join(SCHEDULERS)})")
    return getattr(diffusers, classes[name]).from_config(config)


def set_scheduler(loaded: LoadedPipeline, name: str) -> None:
    """Swap the pipeline's scheduler for `name`, built from the model's own scheduler config.

    The noise schedule (betas, timesteps, offset) stays the model's, so "ddim" keeps SD's values.
    """
    loaded.pipe.scheduler = _make_scheduler(name, loaded.pipe.scheduler.config)
    loaded.description["scheduler"] = name


def _describe(src: _Source) -> str:
    return src.location if src.kind in ("hub", "tiny") else src.given


def _check_hub_weights(base: _Source, request: PipelineRequest, say: Progress) -> None:
    """Before any loading: a hub base and a hub ControlNet named up front must be had; when
    neither is, one MissingWeights names both (one download session fixes it, not two runs)."""
    control_spec = request.controlnet or (request.base if request.base in PIPELINE_PRESETS else None)
    sources = [(base, "model_index.json")]
    if control_spec:
        sources.append((_classify(control_spec, "ControlNet", request.allow_pickle), "config.json"))
    missing: list[tuple[str, MissingWeights]] = []
    for src, filename in sources:
        if src.kind == "hub":
            try:
                _hub_file(src.location, filename, request, say)
            except MissingWeights as error:
                missing.append((src.location, error))
    if len(missing) == 1:
        raise missing[0][1]
    if missing:
        names = " and ".join(name for name, _ in missing)
        reason = getattr(missing[0][1], "reason", "the hub cannot be reached")
        raise _missing_weights(names, request, reason, [name for name, _ in missing])


def load_pipeline(request: PipelineRequest, progress: Progress | None = None) -> LoadedPipeline:
    """Load the ControlNet pipeline `request` names, on its device and dtype, ready to generate.

    The safety checker is not loaded: dst3d generates datasets of objects, and the checker blacks
    out whole images on false positives, which would silently poison a dataset.
    """
    say: Progress = progress or (lambda _message: None)
    base = _classify(request.base, "base", request.allow_pickle)
    _check_hub_weights(base, request, say)
    base_family = request.family or _base_family(base, request, say)
    if request.controlnet:
        control_spec = request.controlnet
    elif request.base in PIPELINE_PRESETS:
        control_spec = request.base
    elif base.kind == "folder" and (Path(base.location) / "controlnet" / "config.json").is_file():
        control_spec = str(Path(base.location) / "controlnet")
    else:
        control_spec = DEFAULT_CONTROLNET[base_family]
    control = _classify(control_spec, "ControlNet", request.allow_pickle)
    control_family = _controlnet_family(control, request, say)
    if control_family != base_family:
        raise BadInput(
            f"base {base.given} is {base_family} but ControlNet {control.given} is {control_family}: "
            f"pick a ControlNet made for {base_family}"
        )
    family = base_family
    # Base first: a missing base is the error to show even when its ControlNet is missing too.
    if base.kind == "hub":
        _hub_file(base.location, "model_index.json", request, say)
    if control.kind == "hub":
        _hub_file(control.location, "config.json", request, say)
    device = resolve_device(request.device)
    dtype = resolve_dtype(request.dtype, device)
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
        "base": _describe(base),
        "controlnet": _describe(control),
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
