"""core.generation_settings: presets, overrides, validation messages and what dataset.json records."""

import json
from dataclasses import replace

import pytest

from dst3d_addon.cli.options import cli_text
from dst3d_addon.core.errors import Dst3dError
from dst3d_addon.core.generation_settings import (
    DEFAULT_PIPELINE,
    DTYPES,
    GENERATION_PRESETS,
    LCM_LORAS,
    PIPELINE_PRESETS,
    SCHEDULERS,
    TINY,
    GenerationSettings,
    SettingsError,
    guess_family,
    settings_from_preset,
)
from dst3d_addon.core.prompts import PAPER_NEGATIVE, PAPER_PROMPT


def test_model_presets_unchanged():
    assert DEFAULT_PIPELINE == "sd15-canny" and TINY == "tiny"
    assert PIPELINE_PRESETS["sd15-canny"].base == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert PIPELINE_PRESETS["sd15-canny"].controlnet == "lllyasviel/control_v11p_sd15_canny"
    assert PIPELINE_PRESETS["sdxl-canny"].family == "sdxl"
    assert set(SCHEDULERS) == {"ddim", "unipc", "dpm++", "euler", "euler-a", "lcm"}
    assert tuple(DTYPES) == ("auto", "fp16", "bf16", "fp32")


def test_paper_preset_is_3d_dst_s_generation():
    s = settings_from_preset("paper")
    assert (s.scheduler, s.steps, s.eta, s.guidance, s.control_scale) == ("ddim", 20, 1.0, 9.0, 1.0)
    assert (s.width, s.height) == (None, None)  # the control image's: 512x512 with render's default
    assert s.prompt == PAPER_PROMPT and s.negative_prompt == PAPER_NEGATIVE
    assert s.lora is None and s.fallback is None and s.captions is None
    assert s.pipeline == DEFAULT_PIPELINE
    assert s == GenerationSettings().validate()  # the dataclass defaults are the paper's
    assert settings_from_preset() == s


def test_fast_preset_uses_lcm_lora_of_the_family_with_a_fallback():
    s = settings_from_preset("fast")
    assert (s.scheduler, s.steps, s.guidance, s.eta) == ("lcm", 4, 1.0, 0.0)
    assert s.lora == "latent-consistency/lcm-lora-sdv1-5"
    assert s.fallback == {"scheduler": "unipc", "steps": 10, "guidance": 7.5}
    xl = settings_from_preset("fast", pipeline="sdxl-canny")
    assert xl.lora == "latent-consistency/lcm-lora-sdxl" == LCM_LORAS["sdxl"]
    custom = settings_from_preset("fast", pipeline="me/my-sdxl-model", controlnet="me/cn")
    assert custom.lora == LCM_LORAS["sdxl"]
    fb = s.fallback_settings()
    assert (fb.scheduler, fb.steps, fb.guidance, fb.lora, fb.fallback) == ("unipc", 10, 7.5, None, None)
    assert fb.job_settings() == {
        "steps": 10,
        "guidance": 7.5,
        "control_scale": 1.0,
        "eta": 0.0,
        "width": None,
        "height": None,
        "scheduler": "unipc",
    }
    # the preset table itself is not mutated through a settings object
    s.fallback["steps"] = 99
    assert GENERATION_PRESETS["fast"]["fallback"]["steps"] == 10


def test_overrides_and_none_keeps_the_preset():
    s = settings_from_preset("paper", steps=30, guidance=None, width=640, scheduler="unipc", seed=5)
    assert (s.steps, s.guidance, s.width, s.height, s.scheduler, s.seed) == (30, 9.0, 640, None, "unipc", 5)
    assert settings_from_preset("fast", lora="none").lora is None
    assert settings_from_preset("fast", lora="").lora is None
    assert settings_from_preset("paper", lora="lcm").lora == LCM_LORAS["sd15"]
    assert settings_from_preset("paper", lora="/loras/mine.safetensors").lora == "/loras/mine.safetensors"
    with pytest.raises(TypeError, match=r"unknown setting.*device"):
        settings_from_preset("paper", device="cuda")
    with pytest.raises(SettingsError, match=r"^preset 'slow': unknown preset; use one of paper, fast$"):
        settings_from_preset("slow")


def test_control_image_size_when_width_height_unset():
    s = GenerationSettings().validate()
    assert s.job_settings()["width"] is None and s.as_dict(None)["height"] is None
    sized = settings_from_preset("paper", width=512, height=384)
    assert sized.as_dict(None)["width"] == 512 and sized.job_settings()["height"] == 384


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 0}, "--steps 0: must be positive"),
        ({"steps": 2.5}, "--steps 2.5: must be positive"),
        ({"steps": 5000}, "--steps 5000: must be at most 1000"),
        ({"guidance": -1.0}, "--guidance -1.0: must be a finite number >= 0"),
        ({"guidance": float("nan")}, "--guidance nan: must be a finite number >= 0"),
        ({"control_scale": -0.5}, "--control-scale -0.5: must be a finite number >= 0"),
        ({"eta": 1.5}, "--eta 1.5: must be between 0 and 1"),
        ({"eta": -0.1}, "--eta -0.1: must be between 0 and 1"),
        ({"width": 500}, "--width 500: must be a positive multiple of 8"),
        ({"height": 0}, "--height 0: must be a positive multiple of 8"),
        ({"width": 16384}, "--width 16384: must be at most 8192"),
        ({"seed": -1}, "--seed -1: must be an integer in [0, 2**53)"),
        ({"seed": 2**53}, "--seed 9007199254740992: must be an integer"),
        ({"dtype": "fp8"}, "--dtype 'fp8': unknown dtype; use one of auto, fp16, bf16, fp32"),
        (
            {"scheduler": "pndm"},
            "--scheduler 'pndm': unknown scheduler; use one of ddim, unipc, dpm++, euler, euler-a, lcm",
        ),
        ({"prompt": "a {klass}"}, "--prompt 'a {klass}': unknown placeholder {klass}"),
        ({"prompt": "  "}, "--prompt '  ': must not be empty"),
        ({"negative_prompt": "x}"}, "--negative-prompt 'x}': unmatched '}'"),
        ({"pipeline": ""}, "--pipeline '': must name a preset"),
        ({"captions": ""}, "--captions '': must be a non-empty name or path"),
        (
            {"pipeline": "me/my-model"},
            "--controlnet: required with --pipeline 'me/my-model', which is not a preset",
        ),
        (
            {"lora": LCM_LORAS["sd15"], "pipeline": "sdxl-canny"},
            "--lora 'latent-consistency/lcm-lora-sdv1-5': is for sd15",
        ),
        ({"fallback": {"steps": 0}}, "fallback: --steps 0: must be positive"),
        ({"fallback": {"device": "cpu"}}, "fallback: unknown setting(s) device"),
        ({"fallback": ["unipc"]}, "fallback ['unipc']: must be a dict"),
    ],
)
def test_validation_names_the_option(change, message):
    """Core names the setting; the batch script words it as its option (what its users read)."""
    s = replace(GenerationSettings(), **change)
    with pytest.raises(SettingsError) as err:
        s.validate()
    text = cli_text(err.value)
    assert text.startswith(message), text
    assert isinstance(err.value, Dst3dError) and isinstance(err.value, ValueError)
    assert "\n" not in text and "--" not in str(err.value)


def test_model_description():
    assert GenerationSettings().model_description() == {
        "base": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "controlnet": "lllyasviel/control_v11p_sd15_canny",
        "family": "sd15",
    }
    over = GenerationSettings(controlnet="/models/cn-lineart").model_description()
    assert over["controlnet"] == "/models/cn-lineart" and over["family"] == "sd15"
    local = GenerationSettings(pipeline="/m/sd_xl_base.safetensors", controlnet="/m/cn.safetensors")
    assert local.model_description() == {
        "base": "/m/sd_xl_base.safetensors",
        "controlnet": "/m/cn.safetensors",
        "family": "sdxl",
    }
    assert GenerationSettings(pipeline=TINY).model_description()["base"] == "tiny"
    assert guess_family("runwayml/sd15", None) == "sd15" and guess_family(None, "cn-SDXL") == "sdxl"


def test_as_dict_records_what_changes_the_pixels_only():
    s = settings_from_preset("paper", captions="/somewhere/captions.csv", seed=3)
    d = s.as_dict("ab" * 32)
    assert set(d) == {
        "model",
        "scheduler",
        "steps",
        "guidance",
        "control_scale",
        "eta",
        "width",
        "height",
        "seed",
        "dtype",
        "prompt",
        "negative_prompt",
        "captions_sha256",
        "lora",
        "fallback",
    }
    assert d["captions_sha256"] == "ab" * 32 and "/somewhere" not in json.dumps(d)
    assert d["model"]["base"] == PIPELINE_PRESETS["sd15-canny"].base
    for excluded in ("device", "batch", "batch_size", "shard", "images_per_view", "pipeline", "captions"):
        assert excluded not in d
    assert json.loads(json.dumps(d)) == d
    # the same pixels from a preset name or the same models spelled out: the same record
    spelled = replace(
        s, pipeline=PIPELINE_PRESETS["sd15-canny"].base, controlnet=PIPELINE_PRESETS["sd15-canny"].controlnet
    )
    assert spelled.as_dict("ab" * 32) == d
    # a moved caption file with the same bytes is the same dataset
    assert replace(s, captions="/elsewhere/c.csv").as_dict("ab" * 32) == d
    assert s.as_dict("cd" * 32) != d
    assert replace(s, steps=21).as_dict("ab" * 32) != d
    with pytest.raises(ValueError, match="captions"):
        s.as_dict(None)
    with pytest.raises(ValueError, match="captions"):
        settings_from_preset("paper").as_dict("ab" * 32)


def test_job_settings():
    s = settings_from_preset("paper", control_scale=0.8, width=512, height=512)
    assert s.job_settings() == {
        "steps": 20,
        "guidance": 9.0,
        "control_scale": 0.8,
        "eta": 1.0,
        "width": 512,
        "height": 512,
        "scheduler": "ddim",
    }
