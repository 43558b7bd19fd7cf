"""The tiny random-weight pipeline: deterministic, cached atomically, SD1.5's shapes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dst3d_addon.generation.worker.tiny import (
    SD15_SCHEDULER_VALUES,
    TINY_FOLDER,
    TINY_MARKER,
    save_tiny_pipeline,
    tiny_pipeline_path,
    tiny_vocab,
)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pipeline_path(tmp_path_factory.mktemp("dst3d-cache"))


def test_tiny_is_built_into_the_cache_once(cached: Path) -> None:
    assert cached.name == TINY_FOLDER and (cached / TINY_MARKER).is_file()
    assert (cached / "controlnet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(cached.rglob("*.bin")), "the tiny pipeline must be saved as safetensors only"
    stamp = (cached / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert tiny_pipeline_path(cached.parent) == cached
    assert (cached / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in cached.parent.iterdir()] == [TINY_FOLDER], "no temporary build folder left behind"


def test_tiny_build_is_deterministic(cached: Path, tmp_path: Path) -> None:
    save_tiny_pipeline(tmp_path)
    assert _digests(tmp_path) == _digests(cached)


def test_a_half_written_folder_is_rebuilt(tmp_path: Path) -> None:
    broken = tmp_path / TINY_FOLDER
    (broken / "unet").mkdir(parents=True)
    (broken / "unet" / "config.json").write_text("{")
    path = tiny_pipeline_path(tmp_path)
    assert (path / TINY_MARKER).is_file() and (
        path / "unet" / "diffusion_pytorch_model.safetensors"
    ).is_file()


def test_tiny_has_sd15_shapes(cached: Path) -> None:
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        cached, local_files_only=True, use_safetensors=True
    )
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.in_channels == 4 and pipe.controlnet.config.in_channels == 4
    assert pipe.tokenizer.model_max_length == 77 and len(pipe.tokenizer) == len(tiny_vocab()) == 514
    assert pipe.tokenizer("a cat").input_ids[0] == tiny_vocab()["<|startoftext|>"]
    for key, value in SD15_SCHEDULER_VALUES.items():
        assert pipe.scheduler.config[key] == value, key
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
