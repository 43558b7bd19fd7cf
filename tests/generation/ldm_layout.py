"""Test helper: write diffusers models back in the original (LDM / CompVis) single-file layout.

Artists download SD checkpoints and ControlNets as one original-format .safetensors file; the
tests make such files from the tiny pipeline. The key rules below are the inverse of diffusers'
own single-file conversion, and a test checks that converting back gives every tensor unchanged.
"""

from __future__ import annotations

import re

import torch

_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_VAE_ATTENTION = (
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
)


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    raise KeyError(rest)


def _unet_key(key: str, layers: int, up_attention: set[int]) -> str | None:
    """The LDM name of a UNet / ControlNet body key (the parts the two share), or None."""
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    head, _, tail = key.rpartition(".")
    if head in fixed:
        return f"{fixed[head]}.{tail}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + b * (layers + 1) + j}.0.{_resnet(rest)}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + b * (layers + 1) + j}.1.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{(int(m[1]) + 1) * (layers + 1)}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{b * (layers + 1) + j}.0.{_resnet(rest)}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        b, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{b * (layers + 1) + j}.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        b = int(m[1])
        slot = 2 if b in up_attention else 1
        return f"output_blocks.{b * (layers + 1) + layers}.{slot}.conv.{m[2]}"
    return None


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel state dict in LDM names (without the model prefix)."""
    layers = config["layers_per_block"]
    up_attention = {i for i, t in enumerate(config["up_block_types"]) if "CrossAttn" in t}
    out = {}
    for key, value in state.items():
        ldm = _unet_key(key, layers, up_attention)
        if ldm is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out[ldm] = value
    return out


def controlnet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """A diffusers ControlNetModel state dict in the original ControlNet names (without `control_model.`)."""
    layers = config["layers_per_block"]
    out = {}
    for key, value in state.items():
        if m := re.fullmatch(r"controlnet_down_blocks\.(\d+)\.(.+)", key):
            ldm = f"zero_convs.{m[1]}.0.{m[2]}"
        elif m := re.fullmatch(r"controlnet_mid_block\.(.+)", key):
            ldm = f"middle_block_out.0.{m[1]}"
        elif m := re.fullmatch(r"controlnet_cond_embedding\.conv_in\.(.+)", key):
            ldm = f"input_hint_block.0.{m[1]}"
        elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", key):
            ldm = f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
        elif m := re.fullmatch(r"controlnet_cond_embedding\.conv_out\.(.+)", key):
            ldm = f"input_hint_block.14.{m[1]}"
        else:
            ldm = _unet_key(key, layers, set())
        if ldm is None:
            raise KeyError(f"no LDM name for ControlNet key {key}")
        out[ldm] = value
    return out


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict in LDM names (attention projections as 1x1 convs)."""
    n_up = len(config["up_block_types"])
    out = {}
    for key, value in state.items():
        ldm = key
        if m := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(.+)", key):
            ldm = f"{m[1]}.norm_out.{m[2]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            ldm = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            ldm = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            block = n_up - 1 - int(m[1])
            ldm = f"decoder.up.{block}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            ldm = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            ldm = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            name = dict(_VAE_ATTENTION)[m[2]]
            ldm = f"{m[1]}.mid.attn_1.{name}.{m[3]}"
            if m[3] == "weight" and name != "norm":
                value = value[:, :, None, None]
        out[ldm] = value
    return out


def pipeline_to_ldm(pipe) -> dict[str, torch.Tensor]:
    """One original-format SD1.5 checkpoint (UNet, VAE, CLIP text encoder) from a diffusers pipeline."""
    out: dict[str, torch.Tensor] = {}
    for key, value in unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config).items():
        out["model.diffusion_model." + key] = value
    for key, value in vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config).items():
        out["first_stage_model." + key] = value
    for key, value in pipe.text_encoder.state_dict().items():
        # Original checkpoints name the CLIP weights `text_model.*` (transformers 5 drops the wrapper).
        name = (
            key if key.startswith("text_model.") or key == "text_projection.weight" else "text_model." + key
        )
        out["cond_stage_model.transformer." + name] = value
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def controlnet_checkpoint(controlnet) -> dict[str, torch.Tensor]:
    """One original-format ControlNet checkpoint (`control_model.*`) from a diffusers ControlNetModel."""
    converted = controlnet_to_ldm(controlnet.state_dict(), controlnet.config)
    return {"control_model." + k: v.detach().clone().contiguous() for k, v in converted.items()}
