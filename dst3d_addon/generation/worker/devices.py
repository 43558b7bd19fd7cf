"""The torch device and dtype a user named, resolved here and now (every torch-side worker uses this).

`auto` is CUDA when present, else Apple's MPS, else the CPU, for generation and KCF alike. A
device this torch cannot use is a SettingError naming the device setting.
"""

from __future__ import annotations

import torch

from ...core.errors import SettingError, setting
from ..worker_env import check_device

#: The torch dtype of each precision name but "auto" (core.generation_settings.DTYPES).
TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(name: str) -> torch.device:
    """The torch device for "auto", "cpu", "cuda", "cuda:N" or "mps"."""
    check_device(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingError(
                f"{setting('device')} {name}: CUDA is not available to this torch ({torch.__version__}); "
                f"use {setting('device')} cpu or a Python with a CUDA build of torch ({setting('python')})"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SettingError(
                f"{setting('device')} {name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    if device.type == "mps" and not _mps_available():
        raise SettingError(f"{setting('device')} {name}: MPS is not available in this torch")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """fp16 on CUDA and fp32 elsewhere for "auto"; fp16 on the CPU is refused (slow or unsupported)."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name == "fp16" and device.type == "cpu":
        raise SettingError(f"{setting('dtype')} fp16 on the cpu is not supported; use fp32 or bf16")
    return TORCH_DTYPES[name]
