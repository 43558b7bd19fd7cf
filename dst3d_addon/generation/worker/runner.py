"""The denoising loop of one job: control images + prompts + seeds -> image files (worker side, torch).

Determinism: every image has its own CPU `torch.Generator` seeded with the image's seed, so its
starting noise and DDIM's per-step noise are the same whether it is generated alone or in a batch,
on any device, and after any resume. Cancelling raises `Cancelled` from the step callback, so a job
stops within one denoising step. Out-of-memory becomes `OutOfMemory` so the client can retry with a
smaller batch.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...core.files import write_bytes_atomic
from ..errors import BadInput, Cancelled, OutOfMemory
from .pipelines import LoadedPipeline

#: Fault injection for tests: a job of more than N images fails as if out of memory.
FAULT_OOM_ABOVE = "DST3D_FAULT_OOM_ABOVE"
#: How a batch runs: "exact" (each image with the shapes of a batch of one) or "fused".
BATCHING = ("exact", "fused")

# A linear map from SD's 4 latent channels to RGB: a cheap preview of the image being denoised
# (approximate; good enough to see composition and colour while the job runs).
_SD15_LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)
_SDXL_LATENT_RGB = torch.tensor(
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ]
)


@dataclass(frozen=True)
class ImageItem:
    """One image to make: its control image, prompts, seed and where to write it."""

    control: str
    prompt: str
    negative_prompt: str
    seed: int
    output: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageItem:
        try:
            return cls(
                control=str(data["control"]),
                prompt=str(data["prompt"]),
                negative_prompt=str(data.get("negative_prompt", "")),
                seed=int(data["seed"]),
                output=str(data["output"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"job item {data!r}: {exc}") from None


@dataclass(frozen=True)
class JobSettings:
    """The per-job sampling settings (what the record stores next to the model)."""

    steps: int
    guidance: float
    control_scale: float
    eta: float
    width: int
    height: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSettings:
        try:
            settings = cls(
                steps=int(data["steps"]),
                guidance=float(data["guidance"]),
                control_scale=float(data["control_scale"]),
                eta=float(data.get("eta", 0.0)),
                width=int(data["width"]),
                height=int(data["height"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"job settings {data!r}: {exc}") from None
        if (
            settings.steps < 1
            or settings.width % 8
            or settings.height % 8
            or min(settings.width, settings.height) < 8
        ):
            raise BadInput(
                f"job settings: steps {settings.steps} must be >= 1 and size {settings.width}x{settings.height} "
                "a multiple of 8"
            )
        return settings


def load_control(path: str, width: int, height: int) -> Image.Image:
    """The control image as RGB at the job's size (white lines on black, as the render stage writes)."""
    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise BadInput(f"control image {path}: cannot be read ({exc})") from None
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.BILINEAR)
    return rgb


def latent_preview(latents: torch.Tensor, family: str) -> np.ndarray:
    """An RGB uint8 preview of the first latent of a batch, at latent resolution."""
    weights = _SDXL_LATENT_RGB if family == "sdxl" else _SD15_LATENT_RGB
    lat = latents[0].detach().float().cpu()  # (4, h, w)
    rgb = torch.einsum("chw,cr->hwr", lat, weights)
    return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 array (deterministic)."""
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor], rows: int) -> Any:
    """`value` with fn applied to every tensor whose first dimension is `rows` (nested containers too)."""
    if isinstance(value, torch.Tensor):
        return fn(value) if value.dim() >= 1 and value.shape[0] == rows else value
    if isinstance(value, dict):
        return (
            type(value)(**{k: _map_tensors(v, fn, rows) for k, v in value.items()})
            if hasattr(value, "to_tuple")
            else {k: _map_tensors(v, fn, rows) for k, v in value.items()}
        )
    if isinstance(value, list | tuple):
        return type(value)(_map_tensors(v, fn, rows) for v in value)
    return value


def _gather(parts: list[Any], order: torch.Tensor) -> Any:
    """Concatenate per-group outputs (same structure) and put the rows back in the batch's order."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=0).index_select(0, order.to(first.device))
    if isinstance(first, dict):
        merged = {k: _gather([p[k] for p in parts], order) for k in first}
        return type(first)(**merged) if hasattr(first, "to_tuple") else merged
    if isinstance(first, list | tuple):
        return type(first)(_gather([p[i] for p in parts], order) for i in range(len(first)))
    return first


def _per_image(call: Callable[..., Any], images: int) -> Callable[..., Any]:
    """Wrap a module call so that each image of a batch is computed alone, with exactly the shapes
    (and so the arithmetic) of a batch of one: rows i (and images + i, guidance's pair) together."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        first = next(
            (a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.dim() >= 1), None
        )
        if first is None or images <= 1:
            return call(*args, **kwargs)
        rows = first.shape[0]
        if rows == images:
            groups = [[i] for i in range(images)]
        elif rows == 2 * images:
            groups = [[i, images + i] for i in range(images)]
        else:
            return call(*args, **kwargs)
        parts = []
        for group in groups:
            index = torch.tensor(group, device=first.device)
            pick = lambda t, index=index: t.index_select(0, index.to(t.device))  # noqa: E731
            parts.append(call(*_map_tensors(args, pick, rows), **_map_tensors(kwargs, pick, rows)))
        flat = torch.tensor([r for group in groups for r in group])
        order = torch.argsort(flat)
        return _gather(parts, order)

    return wrapped


_MISSING = object()


class _PerImage:
    """Within the block, the pipeline's networks compute each image of a batch on its own."""

    def __init__(self, pipe: Any, images: int) -> None:
        self.targets: list[tuple[Any, str]] = []
        for name in ("unet", "controlnet", "text_encoder", "text_encoder_2"):
            module = getattr(pipe, name, None)
            if module is not None:
                self.targets.append((module, "forward"))
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            self.targets.append((vae, "decode"))
        self.images = images

    def __enter__(self) -> _PerImage:
        # What each module had as an instance attribute (a torch.compile'd module keeps its
        # compiled forward there): put back on exit, not deleted.
        self.saved = [(module, attr, vars(module).get(attr, _MISSING)) for module, attr in self.targets]
        if self.images > 1:
            for module, attr in self.targets:
                setattr(module, attr, _per_image(getattr(module, attr), self.images))
        return self

    def __exit__(self, *exc: object) -> None:
        for module, attr, before in self.saved:
            if before is _MISSING:
                vars(module).pop(attr, None)  # back to the class's method
            else:
                setattr(module, attr, before)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def generate_images(
    loaded: LoadedPipeline,
    items: Sequence[ImageItem],
    settings: JobSettings,
    *,
    on_step: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
    preview_every: int = 0,
    batching: str = "exact",
) -> list[np.ndarray]:
    """Run the pipeline on a batch of items; returns RGB uint8 images (item order).

    `batching` "exact" (the default) computes every network call of each image with the shapes
    of a batch of one, so an image has the same pixels alone or in any batch (floating-point
    kernels are not batch-invariant: a fused batch differs by a level here and there); "fused"
    runs the batch as one, faster on a GPU.

    `on_step(step, steps)` is called after every denoising step; `should_cancel()` is polled there
    and a True answer raises `Cancelled`. With `preview_every` > 0, `on_preview(step, rgb)` gets a
    latent preview every that many steps.
    """
    if not items:
        return []
    if batching not in BATCHING:
        raise BadInput(f"batching {batching!r}: use one of {', '.join(BATCHING)}")
    limit = os.environ.get(FAULT_OOM_ABOVE)
    if limit is not None and len(items) > int(limit):
        raise OutOfMemory(
            f"out of memory generating a batch of {len(items)} (fault injected by {FAULT_OOM_ABOVE})"
        )
    controls = [load_control(item.control, settings.width, settings.height) for item in items]
    vae = getattr(loaded.pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()  # decode one image at a time: a fused batch of 8 need not hold 8 decodes
    generators = [torch.Generator(device="cpu").manual_seed(item.seed) for item in items]
    steps = settings.steps

    def callback(pipe: Any, index: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        step = index + 1
        if on_step is not None:
            on_step(step, steps)
        if on_preview is not None and preview_every > 0 and (step % preview_every == 0) and step < steps:
            on_preview(step, latent_preview(kwargs["latents"], loaded.family))
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"cancelled at step {step} of {steps}")
        return {}

    exact = batching == "exact"
    try:
        with (
            torch.inference_mode(),
            _PerImage(loaded.pipe, len(items)) if exact else contextlib.nullcontext(),
        ):
            output = loaded.pipe(
                prompt=[item.prompt for item in items],
                negative_prompt=[item.negative_prompt for item in items],
                image=controls,
                width=settings.width,
                height=settings.height,
                num_inference_steps=steps,
                guidance_scale=settings.guidance,
                controlnet_conditioning_scale=settings.control_scale,
                eta=settings.eta,
                generator=generators,
                output_type="np",
                callback_on_step_end=callback,
                callback_on_step_end_tensor_inputs=["latents"],
            )
    except Cancelled:
        _free_memory(loaded.device)
        raise
    except Exception as exc:
        if _is_oom(exc):
            _free_memory(loaded.device)
            raise OutOfMemory(
                f"out of memory on {loaded.device} generating {len(items)} image(s) at "
                f"{settings.width}x{settings.height}"
            ) from None
        raise
    images = np.asarray(output.images)
    return [np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8) for image in images]


def run_job(
    loaded: LoadedPipeline,
    items: Sequence[ImageItem],
    settings: JobSettings,
    **kwargs: Any,
) -> tuple[list[str], float]:
    """Generate a batch and write each image atomically to its item's output path.

    Returns the written paths and the seconds spent. Output folders are created as needed.
    """
    start = time.perf_counter()
    images = generate_images(loaded, items, settings, **kwargs)
    written = []
    for item, image in zip(items, images, strict=True):
        Path(item.output).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(item.output, encode_png(image))
        written.append(item.output)
    return written, time.perf_counter() - start
