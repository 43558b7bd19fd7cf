"""Generation settings: model presets, the `paper` and `fast` presets, and their validation.

Pure Python (no torch): the batch script and Blender build and check settings here; the worker
receives them as plain dicts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import SettingError, setting
from .prompts import PAPER_NEGATIVE, PAPER_PROMPT, PromptError, check_template


#: --pipeline presets: name -> (base model, ControlNet, family). "tiny" is a random-weight pipeline
#: built locally (tests and offline smoke runs; its images are noise).
@dataclass(frozen=True)
class ModelPreset:
    base: str
    controlnet: str
    family: str  # "sd15" | "sdxl"


PIPELINE_PRESETS: dict[str, ModelPreset] = {
    "sd15-canny": ModelPreset(
        "stable-diffusion-v1-5/stable-diffusion-v1-5", "lllyasviel/control_v11p_sd15_canny", "sd15"
    ),
    "sdxl-canny": ModelPreset(
        "stabilityai/stable-diffusion-xl-base-1.0", "diffusers/controlnet-canny-sdxl-1.0", "sdxl"
    ),
    "tiny": ModelPreset("tiny", "tiny", "sd15"),
}
DEFAULT_PIPELINE = "sd15-canny"
TINY = "tiny"


# --------------------------------------------------------------------------- generation settings


class SettingsError(SettingError):
    """A bad generation setting; the message names the setting."""


#: The sampler choices: name -> (what it is, the diffusers scheduler class the worker builds).
@dataclass(frozen=True)
class Scheduler:
    description: str
    diffusers_class: str


SCHEDULERS: dict[str, Scheduler] = {
    "ddim": Scheduler("DDIM (3D-DST's choice; eta sets its stochasticity)", "DDIMScheduler"),
    "unipc": Scheduler("UniPC multistep, good images in 10-20 steps", "UniPCMultistepScheduler"),
    "dpm++": Scheduler("DPM-Solver++ multistep", "DPMSolverMultistepScheduler"),
    "euler": Scheduler("Euler (deterministic)", "EulerDiscreteScheduler"),
    "euler-a": Scheduler("Euler ancestral (stochastic)", "EulerAncestralDiscreteScheduler"),
    "lcm": Scheduler("Latent Consistency Model scheduler, 2-8 steps with an LCM-LoRA", "LCMScheduler"),
}

#: Precision choices; "auto" is fp16 on CUDA and fp32 elsewhere (the worker decides).
DTYPES: dict[str, str] = {
    "auto": "fp16 on a GPU, fp32 on the CPU",
    "fp16": "Half precision",
    "bf16": "bfloat16 (Ampere and newer GPUs)",
    "fp32": "Full precision",
}

#: LCM-LoRA per model family (the `fast` preset picks by the pipeline's family).
LCM_LORAS: dict[str, str] = {
    "sd15": "latent-consistency/lcm-lora-sdv1-5",
    "sdxl": "latent-consistency/lcm-lora-sdxl",
}
#: A `lora` value meaning "the LCM-LoRA of the pipeline's family".
LCM_AUTO = "lcm"

#: The settings a `fallback` may change (used when the LoRA's weights cannot be had).
FALLBACK_KEYS = ("scheduler", "steps", "guidance", "eta", "control_scale")

#: Largest seed (seeds.py keeps derived seeds below 2**53 for JSON readers).
MAX_SEED = 2**53

_XL = re.compile(r"xl", re.IGNORECASE)


def guess_family(*names: str | None) -> str:
    """ "sdxl" if any model name says XL, else "sd15" (for models that are not presets; the
    worker checks the loaded model)."""
    return "sdxl" if any(n and _XL.search(n) for n in names) else "sd15"


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int)


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that decides a generated image, apart from its control image and its id.

    `pipeline` is a preset name (PIPELINE_PRESETS), a hub id, a local diffusers folder or a
    single .safetensors file; `controlnet` overrides the preset's (and is required otherwise).
    `width`/`height` None use the control image's size. `lora` "lcm" means the LCM-LoRA of the
    pipeline's family, "" or "none" no LoRA. `fallback` ({key: value} of FALLBACK_KEYS) is what
    the worker uses, without the LoRA, when the LoRA's weights cannot be had. Call `validate()`.
    """

    pipeline: str = DEFAULT_PIPELINE
    controlnet: str | None = None
    scheduler: str = "ddim"
    steps: int = 20
    guidance: float = 9.0
    control_scale: float = 1.0
    eta: float = 1.0
    width: int | None = None
    height: int | None = None
    seed: int = 0
    dtype: str = "auto"
    prompt: str = PAPER_PROMPT
    negative_prompt: str = PAPER_NEGATIVE
    captions: str | None = None
    lora: str | None = None
    fallback: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        lora = self.lora
        if isinstance(lora, str) and lora.strip().casefold() in ("", "none"):
            lora = None
        elif isinstance(lora, str) and lora.strip().casefold() == LCM_AUTO:
            lora = LCM_LORAS[self.family]
        object.__setattr__(self, "lora", lora)
        if self.fallback is not None and isinstance(self.fallback, Mapping):
            object.__setattr__(self, "fallback", dict(self.fallback))

    @property
    def family(self) -> str:
        """ "sd15" or "sdxl": the preset's, else guessed from the model names."""
        preset = PIPELINE_PRESETS.get(self.pipeline) if isinstance(self.pipeline, str) else None
        if preset is not None:
            return preset.family
        return guess_family(self.pipeline, self.controlnet)

    def _fail(self, name: str, problem: str) -> SettingsError:
        return SettingsError(f"{setting(name)} {getattr(self, name)!r}: {problem}")

    def validate(self) -> GenerationSettings:
        """Raise SettingsError naming the option unless every setting is usable; returns self."""
        if not isinstance(self.pipeline, str) or not self.pipeline.strip():
            raise self._fail("pipeline", "must name a preset, a hub id, a folder or a .safetensors file")
        for name in ("controlnet", "captions", "lora"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise self._fail(name, "must be a non-empty name or path")
        if not isinstance(self.scheduler, str) or self.scheduler not in SCHEDULERS:
            raise self._fail("scheduler", f"unknown scheduler; use one of {', '.join(SCHEDULERS)}")
        if not _is_int(self.steps) or self.steps < 1:
            raise self._fail("steps", "must be positive")
        if self.steps > 1000:
            raise self._fail("steps", "must be at most 1000")
        for name in ("guidance", "control_scale"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise self._fail(name, "must be a finite number >= 0")
        if not _is_number(self.eta) or not 0 <= self.eta <= 1:
            raise self._fail("eta", "must be between 0 and 1")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is None:
                continue
            if not _is_int(value) or value < 8 or value % 8:
                raise self._fail(
                    name, "must be a positive multiple of 8 (or unset for the control image's size)"
                )
            if value > 8192:
                raise self._fail(name, "must be at most 8192")
        if not _is_int(self.seed) or not 0 <= self.seed < MAX_SEED:
            raise self._fail("seed", "must be an integer in [0, 2**53)")
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:
            raise self._fail("dtype", f"unknown dtype; use one of {', '.join(DTYPES)}")
        for name in ("prompt", "negative_prompt"):
            try:
                check_template(getattr(self, name), setting(name))
            except PromptError as err:
                raise SettingsError(err.text) from None
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise self._fail("prompt", "must not be empty")
        model = self.model_description()
        for family, lora in LCM_LORAS.items():
            if self.lora == lora and model["family"] != family:
                raise self._fail(
                    "lora",
                    f"is for {family} but {setting('pipeline')} {self.pipeline} is {model['family']}; "
                    f"use {setting('lora')} lcm",
                )
        if self.fallback is not None:
            if not isinstance(self.fallback, Mapping):
                raise SettingsError(
                    f"fallback {self.fallback!r}: must be a dict of {', '.join(FALLBACK_KEYS)}"
                )
            unknown = sorted(set(self.fallback) - set(FALLBACK_KEYS))
            if unknown:
                raise SettingsError(
                    f"fallback: unknown setting(s) {', '.join(map(str, unknown))}; use {', '.join(FALLBACK_KEYS)}"
                )
            try:
                self.fallback_settings().validate()
            except SettingsError as err:
                raise SettingsError(f"fallback: {err.text}") from None
        return self

    def model_description(self) -> dict[str, str]:
        """{"base", "controlnet", "family"}: the preset's models (a --controlnet override wins), or
        the pipeline as given, which then needs --controlnet."""
        preset = PIPELINE_PRESETS.get(self.pipeline)
        if preset is not None:
            return {
                "base": preset.base,
                "controlnet": self.controlnet or preset.controlnet,
                "family": preset.family,
            }
        if not self.controlnet:
            raise SettingsError(
                f"{setting('controlnet')}: required with {setting('pipeline')} {self.pipeline!r}, which is not a preset "
                f"({', '.join(PIPELINE_PRESETS)}); name the ControlNet (hub id, folder or .safetensors)"
            )
        return {"base": self.pipeline, "controlnet": self.controlnet, "family": self.family}

    def fallback_settings(self) -> GenerationSettings:
        """These settings without the LoRA, with `fallback`'s values (self without a LoRA if no
        fallback is set)."""
        return replace(self, lora=None, fallback=None, **dict(self.fallback or {}))

    def as_dict(self, captions_digest: str | None, prompts_digest: str | None = None) -> dict:
        """What dataset.json's stages.generate records: every setting that changes the pixels.

        The captions file is recorded by the sha256 of its bytes (`captions_digest`), not its
        path, and so is the dataset's prompts.jsonl (`prompts_digest`, recorded only when there is
        one, so datasets generated before prompt tables existed keep their settings). Device,
        batch size, shard and images per view are not settings of an image, so a resumed run may
        change them (and add images 2..3 to a dataset made with 2 per view).
        """
        if (self.captions is None) != (captions_digest is None):
            raise ValueError("as_dict: pass the captions file's sha256 exactly when captions are set")
        model = self.model_description()
        prompts = {} if prompts_digest is None else {"prompts_sha256": prompts_digest}
        return {
            **prompts,
            "model": model,
            "scheduler": self.scheduler,
            "steps": self.steps,
            "guidance": float(self.guidance),
            "control_scale": float(self.control_scale),
            "eta": float(self.eta),
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "dtype": self.dtype,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "captions_sha256": captions_digest,
            "lora": self.lora,
            "fallback": None if self.fallback is None else dict(sorted(self.fallback.items())),
        }

    def job_settings(self) -> dict:
        """The settings the worker gets with each batch (width/height None: each control's size)."""
        return {
            "steps": self.steps,
            "guidance": float(self.guidance),
            "control_scale": float(self.control_scale),
            "eta": float(self.eta),
            "width": self.width,
            "height": self.height,
            "scheduler": self.scheduler,
        }


#: The generation presets: `paper` is 3D-DST's generation; `fast` is for previews (LCM-LoRA, 4
#: steps; without its weights the worker uses `fallback`: UniPC, 10 steps). Both generate at the
#: control image's size (width/height None), so images stay pixel-aligned with their annotations;
#: 3D-DST's 512x512 is the render stage's default --resolution.
GENERATION_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "scheduler": "ddim",
        "steps": 20,
        "eta": 1.0,
        "guidance": 9.0,
        "control_scale": 1.0,
        "width": None,
        "height": None,
        "prompt": PAPER_PROMPT,
        "negative_prompt": PAPER_NEGATIVE,
        "lora": None,
        "fallback": None,
    },
    "fast": {
        "scheduler": "lcm",
        "steps": 4,
        "eta": 0.0,
        "guidance": 1.0,
        "control_scale": 1.0,
        "width": None,
        "height": None,
        "prompt": PAPER_PROMPT,
        "negative_prompt": PAPER_NEGATIVE,
        "lora": LCM_AUTO,
        "fallback": {"scheduler": "unipc", "steps": 10, "guidance": 7.5},
    },
}
DEFAULT_GENERATION_PRESET = "paper"

_FIELDS = frozenset(f.name for f in fields(GenerationSettings))


def settings_from_preset(name: str = DEFAULT_GENERATION_PRESET, **overrides: Any) -> GenerationSettings:
    """The validated settings of a preset with overrides (None keeps the preset's value).

    The preset's LoRA "lcm" becomes the LCM-LoRA of the (possibly overridden) pipeline's family.
    """
    if name not in GENERATION_PRESETS:
        raise SettingsError(
            f"{setting('preset')} {name!r}: unknown preset; use one of {', '.join(GENERATION_PRESETS)}"
        )
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise TypeError(f"settings_from_preset: unknown setting(s) {', '.join(unknown)}")
    values = {**GENERATION_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    if isinstance(values.get("fallback"), Mapping):
        values["fallback"] = dict(values["fallback"])
    return GenerationSettings(**values).validate()
