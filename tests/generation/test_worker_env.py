"""The facts every worker shares, each from one home: devices, hub-offline, module and pip lists."""

from __future__ import annotations

import pytest
import torch

from dst3d_addon.core.errors import SettingError
from dst3d_addon.generation import hub, worker_env
from dst3d_addon.generation.runtime_setup import setup_steps
from dst3d_addon.generation.worker import devices
from dst3d_addon.kcf import estimator


@pytest.mark.parametrize("text", ["auto", "cpu", "mps", "cuda", "cuda:0", "cuda:12"])
def test_device_names(text):
    assert worker_env.check_device(text) == text


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "CPU", "", "tpu"])
def test_bad_device_names_name_the_setting(text):
    with pytest.raises(SettingError) as err:
        worker_env.check_device(text)
    assert (
        err.value.worded({"device": "--device"}) == f"--device {text!r}: use auto, cpu, cuda, cuda:N or mps"
    )


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert devices.resolve_device("auto").type == "mps"
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert devices.resolve_device("auto").type == "cpu"
    with pytest.raises(SettingError, match=r"^device cuda:1: CUDA is not available"):
        devices.resolve_device("cuda:1")
    with pytest.raises(SettingError, match=r"^device mps: MPS is not available"):
        devices.resolve_device("mps")


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_either_offline_variable_keeps_every_worker_off_the_hub(monkeypatch, variable):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    assert not worker_env.hub_offline()
    monkeypatch.setenv(variable, "1")
    assert worker_env.hub_offline()

    def no_probe(*_args, **_kwargs):
        raise AssertionError("the hub was probed although offline")

    monkeypatch.setattr(hub, "probe_hub", no_probe)
    assert hub.hub_unavailable("org/model") == "HF_HUB_OFFLINE is set"
    # KCF's backbone: a hub id it does not have falls back to random weights without asking the hub
    _model, initialisation, warning = estimator.build_backbone("resnet-tiny", "no-such-org/resnet-x")
    assert initialisation == "random" and warning is not None


def test_the_managed_environment_installs_what_every_worker_imports(tmp_path):
    steps = setup_steps(tmp_path / "env", "cpu", platform="linux")
    packages = steps[3].command
    for module in (*worker_env.WORKER_MODULES["generation"], *worker_env.WORKER_MODULES["kcf"]):
        if module != "torch":
            assert worker_env.PIP_PACKAGES[module] in packages, module
    assert worker_env.PIP_PACKAGES["peft"] in packages  # the fast preset's LCM-LoRA loads through peft
    assert set(worker_env.RUNTIME_MODULES) >= set(worker_env.WORKER_MODULES["kcf"])
