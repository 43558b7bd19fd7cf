"""The extension's preferences: the worker's Python, the model, its cache, device and precision.

Keyed on the extension's top package (`bl_ext.<repo>.dst3d` once installed). The generation
operators read them through `get_preferences` and `worker_python`; the panel asks
`runtime_problem` before it offers a button that needs the worker.
"""

import os
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core.generation_settings import DTYPES, PIPELINE_PRESETS
from ..generation.runtime_setup import RuntimeSetupError, env_python
from ..generation.worker_env import DEVICES
from ..prompting.llm_source import DEFAULT_LLM, TINY_LLM
from . import versions
from .wording import panel_text

#: The extension's top package: this module is <top>.dst3d_addon.blender.preferences.
ADDON_PACKAGE = __package__.rpartition(".dst3d_addon.blender")[0] or "dst3d"
#: The managed environment's folder inside the extension's user folder.
MANAGED_ENV = "worker-env"
SETUP_LOG = "worker-env-setup.log"

CUSTOM_MODEL = "custom"
_PRESET_TEXT = {
    "sd15-canny": (
        "SD 1.5 + Canny ControlNet",
        "3D-DST's model: Stable Diffusion 1.5 with ControlNet 1.1 Canny",
    ),
    "sdxl-canny": (
        "SDXL + Canny ControlNet",
        "Stable Diffusion XL base 1.0 with the diffusers Canny ControlNet",
    ),
    "tiny": ("Tiny (test)", "A random-weight pipeline built locally: noise images, for smoke tests"),
}
MODEL_ITEMS = [
    (name, *_PRESET_TEXT.get(name, (name, f"The {name} preset")), i)
    for i, name in enumerate(PIPELINE_PRESETS)
] + [
    (
        CUSTOM_MODEL,
        "Custom",
        "A hub id, a local diffusers folder or a .safetensors file",
        len(PIPELINE_PRESETS),
    )
]


class DST3D_AddonPreferences(bpy.types.AddonPreferences):
    """dst3d's preferences (Edit > Preferences > Add-ons > DST3D)."""

    bl_idname = ADDON_PACKAGE

    worker_runtime: EnumProperty(
        name="Worker Python",
        description="The Python that runs the diffusion model (Blender's own never imports torch)",
        items=[
            ("MANAGED", "Managed", "An environment dst3d sets up in its user folder"),
            (
                "EXISTING",
                "Existing",
                "Any Python that has torch, diffusers, transformers, accelerate, safetensors",
            ),
        ],
        default="MANAGED",
    )
    python_path: StringProperty(
        name="Python",
        description="The existing Python's interpreter (a venv's bin/python or Scripts\\python.exe)",
        subtype="FILE_PATH",
    )
    torch_build: EnumProperty(
        name="torch Build",
        description="Which torch the managed environment installs",
        items=[
            ("cuda", "CUDA", "NVIDIA GPUs (a large download)"),
            ("cpu", "CPU", "No GPU: slow, but works everywhere (macOS always gets PyPI's build, with MPS)"),
        ],
        default="cuda",
    )
    runtime_status: StringProperty(
        name="Status", description="What the last setup or check found", default=""
    )
    model_preset: EnumProperty(
        name="Model", description="The diffusion model and ControlNet", items=MODEL_ITEMS, default=0
    )
    custom_model: StringProperty(
        name="Base Model", description="Hub id, diffusers folder or .safetensors file of the base model"
    )
    custom_controlnet: StringProperty(
        name="ControlNet", description="Hub id, diffusers folder or .safetensors file of the ControlNet"
    )
    cache_dir: StringProperty(
        name="Model Cache",
        description="Where downloaded weights go (HF_HOME); empty: Hugging Face's default cache",
        subtype="DIR_PATH",
    )
    device: EnumProperty(
        name="Device",
        items=[(name, name.upper() if name != "auto" else "Auto", text) for name, text in DEVICES.items()],
        default="auto",
    )
    precision: EnumProperty(
        name="Precision",
        items=[(name, name if name != "auto" else "Auto", text) for name, text in DTYPES.items()],
        default="auto",
    )
    llm_model: StringProperty(
        name="Prompt LLM",
        default=DEFAULT_LLM,
        description=f"The language model Write Prompts (LLM) runs in the worker: a hub id, a local folder, "
        f"or '{TINY_LLM}' (random weights, for tests)",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        box = layout.box()
        box.label(text="Generation worker", icon="SCRIPT")
        box.prop(self, "worker_runtime", expand=True)
        if self.worker_runtime == "MANAGED":
            row = box.row()
            row.prop(self, "torch_build", expand=True)
            row = box.row()
            row.operator("dst3d.setup_runtime", icon="IMPORT")
            row.operator("dst3d.check_runtime", icon="CHECKMARK")
            if not versions.online_access():
                box.label(text="Online access is off (Preferences > System): setup needs it", icon="ERROR")
            box.label(text=f"Folder: {managed_env_dir(create=False)}")
        else:
            box.prop(self, "python_path")
            box.operator("dst3d.check_runtime", icon="CHECKMARK")
        if self.runtime_status:
            box.label(text=self.runtime_status, icon="INFO")

        box = layout.box()
        box.label(text="Model", icon="IMAGE_DATA")
        box.prop(self, "model_preset")
        if self.model_preset == CUSTOM_MODEL:
            box.prop(self, "custom_model")
            box.prop(self, "custom_controlnet")
        box.prop(self, "cache_dir")
        row = box.row()
        row.prop(self, "device")
        row.prop(self, "precision")
        box.prop(self, "llm_model")


def get_preferences(context: bpy.types.Context | None = None) -> DST3D_AddonPreferences:
    """The extension's preferences; RuntimeSetupError when dst3d is not enabled as an add-on."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    if addon is None or addon.preferences is None:
        raise RuntimeSetupError(
            f"dst3d is not enabled as an extension ({ADDON_PACKAGE!r} has no preferences)"
        )
    return addon.preferences


def managed_env_dir(create: bool = False) -> Path:
    """The managed environment's folder in dst3d's user folder (versions.user_folder)."""
    return versions.user_folder(ADDON_PACKAGE, create=create) / MANAGED_ENV


def worker_python(prefs: DST3D_AddonPreferences) -> Path:
    """The worker's interpreter per the preferences; RuntimeSetupError says what to do if there is none."""
    if prefs.worker_runtime == "EXISTING":
        if not prefs.python_path.strip():
            raise RuntimeSetupError("no worker Python: set Preferences > DST3D > Python, or choose Managed")
        path = Path(bpy.path.abspath(prefs.python_path)).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise RuntimeSetupError(
                f"worker Python {path}: not an executable file (Preferences > DST3D > Python)"
            )
        return path
    python = env_python(managed_env_dir(create=False))
    if not python.is_file():
        raise RuntimeSetupError("the worker environment is not set up yet: press Set Up Worker Runtime")
    return python


def runtime_problem(context: bpy.types.Context | None = None) -> str | None:
    """Why the worker cannot start (one line), or None when a worker Python is configured."""
    try:
        worker_python(get_preferences(context))
    except RuntimeSetupError as exc:
        return panel_text(exc)
    return None


def model_choice(prefs: DST3D_AddonPreferences) -> tuple[str, str | None]:
    """(pipeline, controlnet) for GenerationSettings: a preset name, or the custom model and ControlNet."""
    if prefs.model_preset == CUSTOM_MODEL:
        return prefs.custom_model.strip(), prefs.custom_controlnet.strip() or None
    return prefs.model_preset, None


def worker_environment(prefs: DST3D_AddonPreferences) -> dict[str, str]:
    """Extra environment variables for the worker (the model cache)."""
    if prefs.cache_dir.strip():
        return {"HF_HOME": str(Path(bpy.path.abspath(prefs.cache_dir)).expanduser())}
    return {}
