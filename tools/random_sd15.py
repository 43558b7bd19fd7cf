"""A random-weight SD1.5 + ControlNet, built from the component configs dst3d ships.

Benchmarks need the real model's shapes, not its weights: the UNet, ControlNet
(control_v11p_sd15_canny), VAE and CLIP text encoder are built from the published configs in
`dst3d_addon/generation/configs/sd15` with random weights, so nothing is downloaded and the cost of
every call is that of the real model. With `small`, the channels shrink to about 1/10 for smoke runs.
Also here: the StableDiffusionControlNetPipeline around the parts, one guided denoising step
(ControlNet + UNet) and its FLOPs counted on the meta device.

Used by `tools/bench_generate.py` (run from the repository root as `python -m tools.bench_generate`);
torch, diffusers and transformers are needed, as in the generation worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from dst3d_addon.generation.model_configs import family_config_dir

#: FLOPs of one guided denoising step of one 512x512 image (UNet 0.80 + ControlNet 0.28, times two).
NOMINAL_GUIDED_STEP_FLOPS_512 = 2.17e12


def _shrunk(channels: list[int], factor: float) -> list[int]:
    """Channel counts times `factor`, kept multiples of 32 (GroupNorm's 32 groups), at least 32."""
    return [max(32, round(c * factor / 32) * 32) for c in channels]


def sd15_configs(small: bool) -> dict[str, dict[str, Any]]:
    """The published SD1.5 + ControlNet component configs; with `small`, about 1/10 of the channels."""
    folder = family_config_dir("sd15")
    configs = {
        name: json.loads((folder / name / file).read_text(encoding="utf-8"))
        for name, file in (
            ("unet", "config.json"),
            ("controlnet", "config.json"),
            ("vae", "config.json"),
            ("text_encoder", "config.json"),
            ("scheduler", "scheduler_config.json"),
        )
    }
    configs["tokenizer_dir"] = {"path": str(folder / "tokenizer")}
    if small:
        width = 64
        for name in ("unet", "controlnet"):
            configs[name]["block_out_channels"] = _shrunk(configs[name]["block_out_channels"], 0.1)
            configs[name]["cross_attention_dim"] = width
        configs["controlnet"]["conditioning_embedding_out_channels"] = [16, 16, 32, 32]
        configs["vae"]["block_out_channels"] = _shrunk(configs["vae"]["block_out_channels"], 0.1)
        configs["vae"]["layers_per_block"] = 1
        configs["text_encoder"].update(
            hidden_size=width, intermediate_size=4 * width, num_attention_heads=4, num_hidden_layers=2
        )
        configs["text_encoder"]["projection_dim"] = width
    return configs


@dataclass
class Components:
    """The random-weight pipeline components, on one device in one dtype."""

    unet: Any
    controlnet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict[str, Any]


def build_denoisers(configs: dict[str, dict[str, Any]]) -> tuple[Any, Any]:
    """The UNet and the ControlNet with random weights, on torch's current default device."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(configs["unet"])
    controlnet = ControlNetModel.from_config(configs["controlnet"])
    return unet, controlnet


def build_components(
    configs: dict[str, dict[str, Any]], device: torch.device, dtype: torch.dtype
) -> Components:
    """UNet, ControlNet, VAE and CLIP text encoder with random weights (initialised on `device`)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    with torch.device(device):
        unet, controlnet = build_denoisers(configs)
        vae = AutoencoderKL.from_config(configs["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig.from_dict(configs["text_encoder"]))
    modules = (unet, controlnet, vae, text_encoder)
    for module in modules:
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(configs["tokenizer_dir"]["path"])
    return Components(unet, controlnet, vae, text_encoder, tokenizer, configs["scheduler"])


def make_pipeline(parts: Components, scheduler: Any) -> Any:
    """A StableDiffusionControlNetPipeline around `parts` (no safety checker), progress bar off."""
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline(
        vae=parts.vae,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        unet=parts.unet,
        controlnet=parts.controlnet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def guided_step(
    unet: Any,
    controlnet: Any,
    sample: torch.Tensor,
    step: torch.Tensor,
    text: torch.Tensor,
    control: torch.Tensor,
) -> Any:
    """One ControlNet + UNet evaluation of `sample` (2 rows for a guided image); the UNet's output."""
    down, mid = controlnet(
        sample, step, encoder_hidden_states=text, controlnet_cond=control, return_dict=False
    )
    return unet(
        sample,
        step,
        encoder_hidden_states=text,
        down_block_additional_residuals=down,
        mid_block_additional_residual=mid,
        return_dict=False,
    )


def guided_step_flops(configs: dict[str, dict[str, Any]], size: int) -> float:
    """FLOPs of one guided step (ControlNet + UNet on 2 rows) of one image, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    latent = size // 8
    with torch.device("meta"):
        unet, controlnet = build_denoisers(configs)
        sample = torch.empty(2, 4, latent, latent)
        text = torch.empty(2, 77, configs["unet"]["cross_attention_dim"])
        control = torch.empty(2, 3, size, size)
        step = torch.tensor(500)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        guided_step(unet, controlnet, sample, step, text, control)
    return float(counter.get_total_flops())
