"""Where a worker's Python, packages and caches come from (no torch here, no bpy).

The generation and KCF workers run in a Python that has torch (the "worker Python"): one the
add-on sets up (`runtime_setup.py`), `--python`, `$DST3D_WORKER_PYTHON`, or the current one. This
module is the one home of what both kinds share: how that Python is found and started (the
package root on its path), which modules each kind needs and which pip packages provide them,
the devices a user may name, whether the Hugging Face hub may be used, and dst3d's own cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from ..core.errors import SettingError, setting

#: The folder that holds the `dst3d_addon` package (a checkout, an extension, or site-packages).
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
WORKER_PYTHON_ENV = "DST3D_WORKER_PYTHON"

#: The modules each kind of worker imports, checked first so a missing one gives one clear line.
WORKER_MODULES: dict[str, tuple[str, ...]] = {
    "generation": ("torch", "diffusers", "transformers", "safetensors"),
    "kcf": ("numpy", "cv2", "torch", "transformers"),
    # The eval worker is KCF's estimator plus its checkpoints (safetensors).
    "eval": ("numpy", "cv2", "torch", "transformers", "safetensors"),
}
#: Imported only for some jobs: peft loads LoRA weights (the `fast` preset's LCM-LoRA).
OPTIONAL_MODULES: tuple[str, ...] = ("peft",)
#: The pip package of each module a worker Python needs (torch comes from its own index).
PIP_PACKAGES: dict[str, str] = {
    "torch": "torch",
    "diffusers": "diffusers>=0.30",
    "transformers": "transformers>=4.44",
    "accelerate": "accelerate>=0.33",
    "safetensors": "safetensors>=0.4",
    "peft": "peft>=0.6",
    "numpy": "numpy",
    "PIL": "pillow",
    "cv2": "opencv-python-headless",
}
#: What a usable worker Python must import: both kinds' modules, and accelerate (diffusers'
#: low-memory loading).
RUNTIME_MODULES: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            "torch",
            *WORKER_MODULES["generation"],
            *WORKER_MODULES["kcf"],
            *WORKER_MODULES["eval"],
            "accelerate",
        )
    )
)
#: What the managed environment installs after torch.
WORKER_PACKAGES: tuple[str, ...] = tuple(spec for module, spec in PIP_PACKAGES.items() if module != "torch")

#: The devices a user may name (`cuda:N` too), and what each means.
DEVICES: dict[str, str] = {
    "auto": "CUDA if present, else Apple MPS, else the CPU",
    "cuda": "An NVIDIA GPU",
    "mps": "Apple silicon GPU",
    "cpu": "The CPU (slow)",
}
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(text: str) -> str:
    """`text` if it names a device (auto, cpu, mps, cuda, cuda:N), else SettingError."""
    if isinstance(text, str) and _DEVICE.fullmatch(text):
        return text
    raise SettingError(f"{setting('device')} {text!r}: use auto, cpu, cuda, cuda:N or mps")


def default_python() -> str:
    """The worker's interpreter when none is configured: $DST3D_WORKER_PYTHON, else this Python."""
    return os.environ.get(WORKER_PYTHON_ENV) or sys.executable


def python_exists(python: str) -> bool:
    """Whether `python` is a file or a command on PATH."""
    return Path(python).is_file() or shutil.which(python) is not None


def package_path() -> Path:
    """The folder a worker gets first on its path (and as its working folder) to import this
    `dst3d_addon`: the checkout or extension folder, but never a whole site-packages, whose
    compiled packages would shadow those of a worker Python of another version. For an installed
    package it is a folder in dst3d's cache holding only a link to the package."""
    if PACKAGE_ROOT.name not in ("site-packages", "dist-packages"):
        return PACKAGE_ROOT
    package = PACKAGE_ROOT / "dst3d_addon"
    tag = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    folder = dst3d_cache_dir() / "python-path" / tag
    link = folder / "dst3d_addon"
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(package, link, target_is_directory=True)
        except FileExistsError:
            pass
        except OSError:  # no symbolic links here (Windows without the right): the worker needs dst3d
            return PACKAGE_ROOT
    return folder


def worker_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a worker starts with: ours, `extra`, `package_path()` first on its path,
    and unbuffered output (its log is read while it runs)."""
    env = dict(os.environ)
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_path()), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be used: `HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE`
    set (read now, not at import, so a test or a user can set it late)."""
    return _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE")


def dst3d_cache_dir() -> Path:
    """dst3d's own cache folder (tiny pipeline, assembled configs): `$DST3D_CACHE`, else `~/.cache/dst3d`."""
    env = os.environ.get("DST3D_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dst3d"
