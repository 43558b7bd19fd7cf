"""Loading ControlNet pipelines in the worker: presets, folders, single files, offline, errors.

Everything runs on the tiny random-weight pipeline (no download). HF_ENDPOINT points at a closed
loopback port so no test ever reaches the network.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dst3d_addon.generation.errors import BadInput, MissingRuntime, MissingWeights
from dst3d_addon.generation.model_configs import CONFIGS_DIR, family_config_dir
from dst3d_addon.generation.worker import pipelines
from dst3d_addon.generation.worker.loop import Worker
from dst3d_addon.generation.worker.pipelines import (
    SCHEDULERS,
    LoadedPipeline,
    PipelineRequest,
    load_pipeline,
    set_scheduler,
)
from dst3d_addon.generation.worker.tiny import tiny_pipeline_path
from tests.generation.ldm_layout import controlnet_checkpoint, pipeline_to_ldm

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: refused at once on loopback


@pytest.fixture(scope="session")
def dst3d_cache(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("dst3d-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("DST3D_CACHE", str(cache))
    tiny_pipeline_path()  # built once for the session
    yield cache
    patch.undo()


@pytest.fixture(autouse=True)
def hub_env(dst3d_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache per test, online mode unless a test says so, no reachable hub."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)
    return tmp_path / "hf"


@pytest.fixture(scope="module")
def tiny(dst3d_cache: Path) -> LoadedPipeline:
    return load_pipeline(PipelineRequest(base="tiny", device="cpu"))


@pytest.fixture(scope="module")
def ldm_files(tiny: LoadedPipeline, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny pipeline as original-format single files: base (UNet+VAE+CLIP) and ControlNet."""
    folder = tmp_path_factory.mktemp("single-files")
    base, control = folder / "tiny-sd15.safetensors", folder / "tiny-canny.safetensors"
    save_file(pipeline_to_ldm(tiny.pipe), base)
    save_file(controlnet_checkpoint(tiny.pipe.controlnet), control)
    return {"base": base, "controlnet": control}


def _control_image() -> Image.Image:
    edges = np.zeros((64, 64, 3), np.uint8)
    edges[16:48, 31:33] = 255
    return Image.fromarray(edges)


def _generate(loaded: LoadedPipeline, seed: int = 0) -> np.ndarray:
    out = loaded.pipe(
        "a photo of an airliner",
        image=_control_image(),
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return out.images


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different[:5]


def _assert_same_pipeline(a: LoadedPipeline, b: LoadedPipeline) -> None:
    for name in ("unet", "vae", "text_encoder", "controlnet"):
        _assert_same_weights(getattr(a.pipe, name), getattr(b.pipe, name))


# --- the request ---------------------------------------------------------------------------------------


def test_request_round_trips_through_a_dict() -> None:
    request = PipelineRequest(base="sdxl-canny", scheduler="unipc", dtype="fp32", lora="x/y", cache_dir="/c")
    assert PipelineRequest.from_dict(json.loads(json.dumps(request.as_dict()))) == request
    with pytest.raises(BadInput, match="unknown keys: colour"):
        PipelineRequest.from_dict({"base": "tiny", "colour": "red"})


@pytest.mark.parametrize(
    ("field", "value"),
    [("scheduler", "pndm"), ("dtype", "fp8"), ("family", "sd3")],
)
def test_unknown_options_are_refused(field: str, value: str) -> None:
    with pytest.raises(BadInput, match=f"{field} '{value}' is unknown"):
        PipelineRequest(base="tiny", **{field: value})


def test_an_unknown_device_is_refused_naming_it() -> None:
    with pytest.raises(BadInput, match=r"^device 'tpu': use auto, cpu, cuda, cuda:N or mps$"):
        PipelineRequest(base="tiny", device="tpu")


# --- tiny, folders, schedulers --------------------------------------------------------------------------


def test_tiny_loads_and_generates_on_cpu(tiny: LoadedPipeline) -> None:
    assert tiny.is_tiny and tiny.family == "sd15"
    assert tiny.device == torch.device("cpu") and tiny.dtype == torch.float32
    assert tiny.description["base"] == "tiny" and "noise" in tiny.description["note"]
    assert tiny.pipe.safety_checker is None
    images = _generate(tiny)
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()
    assert np.array_equal(images, _generate(tiny)), "same seed, same image"


def test_every_message_about_tiny_says_noise(dst3d_cache: Path) -> None:
    messages: list[str] = []
    load_pipeline(PipelineRequest(base="tiny", device="cpu"), messages.append)
    assert any("noise" in m for m in messages), messages


def test_local_diffusers_folder_loads_by_path(tiny: LoadedPipeline, tmp_path: Path) -> None:
    folder = tmp_path / "my model"
    shutil.copytree(tiny_pipeline_path(), folder)
    loaded = load_pipeline(PipelineRequest(base=str(folder), device="cpu"))
    assert not loaded.is_tiny and loaded.family == "sd15"
    assert loaded.description["base"] == str(folder)  # the path as given
    assert loaded.description["controlnet"] == str(folder / "controlnet")  # the folder's own ControlNet
    _assert_same_pipeline(loaded, tiny)
    # The ControlNet as a separate folder.
    again = load_pipeline(
        PipelineRequest(base=str(folder), controlnet=str(folder / "controlnet"), device="cpu")
    )
    _assert_same_weights(again.pipe.controlnet, tiny.pipe.controlnet)


def test_set_scheduler_swaps_and_keeps_the_models_schedule(tiny: LoadedPipeline) -> None:
    expected = {
        "ddim": "DDIMScheduler",
        "unipc": "UniPCMultistepScheduler",
        "dpm++": "DPMSolverMultistepScheduler",
        "euler": "EulerDiscreteScheduler",
        "euler-a": "EulerAncestralDiscreteScheduler",
        "lcm": "LCMScheduler",
    }
    assert set(expected) == set(SCHEDULERS)
    try:
        for name, cls in expected.items():
            set_scheduler(tiny, name)
            assert type(tiny.pipe.scheduler).__name__ == cls and tiny.description["scheduler"] == name
            config = tiny.pipe.scheduler.config
            assert (config.beta_start, config.beta_end, config.beta_schedule) == (
                0.00085,
                0.012,
                "scaled_linear",
            )
        set_scheduler(tiny, "ddim")
        assert (
            tiny.pipe.scheduler.config.steps_offset == 1
            and tiny.pipe.scheduler.config.set_alpha_to_one is False
        )
        with pytest.raises(BadInput, match="scheduler 'pndm' is unknown"):
            set_scheduler(tiny, "pndm")
    finally:
        set_scheduler(tiny, "ddim")


def test_request_scheduler_is_applied(dst3d_cache: Path) -> None:
    loaded = load_pipeline(PipelineRequest(base="tiny", scheduler="euler-a", device="cpu"))
    assert type(loaded.pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert loaded.description["scheduler"] == "euler-a"


# --- single files ---------------------------------------------------------------------------------------


def test_ldm_helper_is_the_inverse_of_diffusers_conversion(tiny: LoadedPipeline) -> None:
    from diffusers.loaders.single_file_utils import (
        convert_controlnet_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    checkpoint = pipeline_to_ldm(tiny.pipe)
    pairs = [
        (tiny.pipe.unet, convert_ldm_unet_checkpoint(checkpoint, tiny.pipe.unet.config)),
        (tiny.pipe.vae, convert_ldm_vae_checkpoint(checkpoint, tiny.pipe.vae.config)),
        (
            tiny.pipe.controlnet,
            convert_controlnet_checkpoint(
                controlnet_checkpoint(tiny.pipe.controlnet), tiny.pipe.controlnet.config
            ),
        ),
    ]
    for model, back in pairs:
        state = model.state_dict()
        assert set(back) == set(state)
        assert all(torch.equal(state[k], back[k]) for k in state)


def test_single_file_checkpoints_load_offline(
    tiny: LoadedPipeline, ldm_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = str(tiny_pipeline_path())
    request = PipelineRequest(
        base=str(ldm_files["base"]),
        controlnet=str(ldm_files["controlnet"]),
        base_config=config,
        controlnet_config=config,
        device="cpu",
    )
    loaded = load_pipeline(request)
    assert loaded.family == "sd15" and not loaded.is_tiny
    assert loaded.description["base"] == str(ldm_files["base"])
    _assert_same_pipeline(loaded, tiny)
    assert np.allclose(_generate(loaded), _generate(tiny), atol=1e-5)


def test_pickle_checkpoints_need_the_flag(
    tiny: LoadedPipeline, ldm_files: dict[str, Path], tmp_path: Path
) -> None:
    ckpt = tmp_path / "tiny-sd15.ckpt"
    torch.save({"state_dict": pipeline_to_ldm(tiny.pipe)}, ckpt)
    config = str(tiny_pipeline_path())
    request = PipelineRequest(base=str(ckpt), controlnet="tiny", base_config=config, device="cpu")
    with pytest.raises(BadInput) as refused:
        load_pipeline(request)
    message = str(refused.value)
    assert str(ckpt) in message and "allow-pickle" in message and "\n" not in message
    loaded = load_pipeline(PipelineRequest(**{**request.as_dict(), "allow_pickle": True}))
    _assert_same_weights(loaded.pipe.unet, tiny.pipe.unet)


def test_shipped_configs_assemble_offline_with_the_real_clip_vocabulary(dst3d_cache: Path) -> None:
    from transformers import CLIPTokenizer

    for family in ("sd15", "sdxl"):
        folder = family_config_dir(family)
        assert (folder / "controlnet" / "config.json").is_file() and (folder / "model_index.json").is_file()
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
        assert len(tokenizer) == 49408
        # OpenAI CLIP's ids for this prompt (start, a, photo, of, a, cat, end).
        assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert (CONFIGS_DIR / "clip" / "LICENSE-open_clip").is_file()


def test_shipped_model_configs_have_the_published_sizes() -> None:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    sd15 = CONFIGS_DIR / "sd15"
    with init_empty_weights():
        assert (
            count(UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(sd15 / "unet")))
            == 859520964
        )
        assert (
            count(ControlNetModel.from_config(ControlNetModel.load_config(sd15 / "controlnet"))) == 361279120
        )
        assert count(AutoencoderKL.from_config(AutoencoderKL.load_config(sd15 / "vae"))) == 83653863
        assert count(CLIPTextModel(CLIPTextConfig.from_pretrained(sd15 / "text_encoder"))) == 123060480


# --- errors ---------------------------------------------------------------------------------------------


def _one_line_missing_weights(request: PipelineRequest, *models: str) -> str:
    """Loading fails fast with one line that names every missing model and how to get each."""
    start = time.monotonic()
    with pytest.raises(MissingWeights) as error:
        load_pipeline(request)
    elapsed = time.monotonic() - start
    message = str(error.value)
    assert elapsed < 3.0, f"took {elapsed:.1f} s"
    names = " and ".join(models)
    assert "\n" not in message and message.startswith(f"{names}: weights not in the Hugging Face cache")
    for model in models:
        assert f"hf download {model}" in message
    return message


def test_missing_hub_model_offline_is_one_clear_line(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _one_line_missing_weights(
        PipelineRequest(), "stable-diffusion-v1-5/stable-diffusion-v1-5", "lllyasviel/control_v11p_sd15_canny"
    )
    assert str(hub_env / "hub") in message and "HF_HUB_OFFLINE" in message
    _one_line_missing_weights(
        PipelineRequest(base="tiny", controlnet="lllyasviel/control_v11p_sd15_canny"),
        "lllyasviel/control_v11p_sd15_canny",
    )


def test_missing_hub_model_with_no_network_fails_fast() -> None:
    message = _one_line_missing_weights(
        PipelineRequest(base="sdxl-canny"),
        "stabilityai/stable-diffusion-xl-base-1.0",
        "diffusers/controlnet-canny-sdxl-1.0",
    )
    assert "Connection" in message or "URLError" in message or "timed out" in message


def test_missing_local_path_is_bad_input(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(BadInput, match="no such file or folder") as error:
        load_pipeline(PipelineRequest(base=str(missing)))
    assert str(missing) in str(error.value)


def test_mixing_families_is_refused(tmp_path: Path) -> None:
    sdxl_controlnet = tmp_path / "sdxl-canny"
    sdxl_controlnet.mkdir()
    shutil.copy(CONFIGS_DIR / "sdxl" / "controlnet" / "config.json", sdxl_controlnet / "config.json")
    with pytest.raises(BadInput) as error:
        load_pipeline(PipelineRequest(base="tiny", controlnet=str(sdxl_controlnet)))
    message = str(error.value)
    assert "base tiny is sd15" in message and f"ControlNet {sdxl_controlnet} is sdxl" in message


def test_lora_errors(dst3d_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInput, match="no such file"):
        load_pipeline(PipelineRequest(base="tiny", lora=str(tmp_path / "lcm.safetensors"), device="cpu"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeights, match=r"^latent-consistency/lcm-lora-sdv1-5: weights not in"):
        load_pipeline(PipelineRequest(base="tiny", lora="latent-consistency/lcm-lora-sdv1-5", device="cpu"))
    monkeypatch.setattr(pipelines, "_peft_available", lambda: False)
    lora = tmp_path / "lora.safetensors"
    save_file({"x": torch.zeros(1)}, lora)
    with pytest.raises(MissingRuntime, match="needs the `peft` package"):
        load_pipeline(PipelineRequest(base="tiny", lora=str(lora), device="cpu"))

    # The worker runs such a request on its fallback settings, once said, as for missing weights.
    sent = []
    worker = Worker(SimpleNamespace(send=sent.append), SimpleNamespace())
    request = {"base": "tiny", "lora": str(lora), "device": "cpu", "scheduler": "lcm"}
    loaded, overrides = worker.resolve(7, request, {"scheduler": "unipc", "steps": 10})
    assert overrides == {"steps": 10} and loaded.description["lora"] is None
    assert loaded.description["scheduler"] == "unipc"
    assert [m["type"] for m in sent if "peft" in m.get("message", "")] == ["status"]
    assert worker.resolve(8, request, {"scheduler": "unipc", "steps": 10})[1] == {"steps": 10}
