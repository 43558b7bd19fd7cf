"""The `tiny` pipeline: a random-weight SD1.5-family ControlNet pipeline built locally.

For tests and an offline smoke run only: it needs no download and runs in well under a second on a
CPU, but its images are noise. It has SD1.5's shapes where they matter to the plumbing (4 latent
channels, a VAE that scales by 8, a 77-token CLIP text encoder, SD1.5's scheduler values), so every
code path that works with it also works with the real models. The weights come from a fixed torch
seed, so every build writes the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ...core.files import build_folder_atomically
from ..model_configs import bytes_to_unicode
from ..worker_env import dst3d_cache_dir

#: Bump when the tiny pipeline's shape changes: a new version builds into a new cache folder.
TINY_VERSION = 1
TINY_FOLDER = f"tiny-sd15-controlnet-v{TINY_VERSION}"
#: Written last into a finished build: a folder without it is not a complete tiny pipeline.
TINY_MARKER = "dst3d_tiny.json"
TINY_NOTE = "tiny random-weight pipeline: its images are noise (tests and offline smoke runs only)"

#: SD1.5's scheduler values (stable-diffusion-v1-5's scheduler_config.json), used with DDIM.
SD15_SCHEDULER_VALUES: dict[str, object] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}

_SEED = 0
_WIDTH = 32  # UNet / ControlNet channels of the first block
_TEXT_DIM = 32


def tiny_vocab() -> dict[str, int]:
    """The tiny tokenizer's vocabulary: the 256 byte symbols, their `</w>` forms, then the two specials."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def _build_components() -> dict[str, object]:
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = tiny_vocab()
    blocks = (_WIDTH, _WIDTH * 2)
    unet_kwargs = {
        "block_out_channels": blocks,
        "layers_per_block": 1,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "cross_attention_dim": _TEXT_DIM,
        "attention_head_dim": 4,
        "norm_num_groups": 8,
        "in_channels": 4,
    }
    torch.manual_seed(_SEED)
    unet = UNet2DConditionModel(
        sample_size=8, out_channels=4, up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), **unet_kwargs
    )
    torch.manual_seed(_SEED + 1)
    controlnet = ControlNetModel(conditioning_embedding_out_channels=(8, 8, 16, 16), **unet_kwargs)
    torch.manual_seed(_SEED + 2)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    torch.manual_seed(_SEED + 3)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=_TEXT_DIM,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=_TEXT_DIM,
            hidden_act="quick_gelu",
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    scheduler = DDIMScheduler(**SD15_SCHEDULER_VALUES)
    for model in (unet, controlnet, vae, text_encoder):
        model.eval()
    return {
        "unet": unet,
        "controlnet": controlnet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def build_tiny_pipeline():
    """A new tiny StableDiffusionControlNetPipeline in memory (fp32, CPU, no safety checker)."""
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline(
        **_build_components(), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(folder: Path) -> None:
    """Build the tiny pipeline and save it as a diffusers folder (safetensors; ControlNet in `controlnet/`)."""
    pipe = build_tiny_pipeline()
    pipe.save_pretrained(folder, safe_serialization=True)
    (folder / TINY_MARKER).write_text(
        json.dumps({"version": TINY_VERSION, "seed": _SEED, "note": TINY_NOTE}, indent=1) + "\n"
    )


def tiny_pipeline_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The tiny pipeline's diffusers folder, built once into the dst3d cache (atomically)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else dst3d_cache_dir()
    return build_folder_atomically(root / TINY_FOLDER, save_tiny_pipeline, TINY_MARKER)
