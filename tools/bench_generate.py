"""Speed and memory of SD1.5 + ControlNet generation: the plain diffusers pipeline vs dst3d's generate path.

Run from the repository root (a benchmark, not a test; CI never runs it):

    python -m tools.bench_generate                    # full size, CUDA, fp16, batch 8, 20 steps
    python -m tools.bench_generate --compile          # + torch.compile of the UNet and the ControlNet
    python -m tools.bench_generate --device cpu --small --size 128 --steps 2 --batch 2   # smoke run
    python -m tools.bench_generate --device cpu --one-step   # one full-size guided step, no pipeline

The UNet, ControlNet, VAE and CLIP text encoder are built with random weights from the published
configs dst3d ships (`generation/configs/sd15`), so nothing is downloaded and the timing is that of
the real model. It measures, in one process on one device:

(a) plain: `StableDiffusionControlNetPipeline` with its defaults (SD1.5's scheduler config, i.e.
    PNDM, which makes 21 network evaluations for 20 steps), batch 1, guidance 9;
(b) ours: `LoadedPipeline` placed as the worker places it (channels-last UNet/ControlNet on CUDA)
    through `runner.generate_images` with DDIM, batching "exact" and "fused" at --batch;
    with --compile also the same runs with the UNet and ControlNet compiled;
plus a 4-step preview (LCM scheduler, guidance 1, batch 1; without the LCM-LoRA, which costs the same).

The denoising-loop time runs from the end of latent preparation to the last step callback (text
encoding, control preprocessing and VAE decoding excluded); achieved TFLOP/s counts the FLOPs of one
guided step (ControlNet + UNet on the conditional and unconditional rows, counted on the meta
device: 2.17 TFLOP per image at 512x512) times images times network evaluations.

This module is the benchmark itself (its runs, the report, the options); the random-weight models come
from `tools/random_sd15.py` and the timing harness (clock, loop probe, figures) from `tools/timing.py`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dst3d_addon.generation.worker.devices import TORCH_DTYPES
from dst3d_addon.generation.worker.pipelines import LoadedPipeline, PipelineRequest, set_scheduler
from dst3d_addon.generation.worker.runner import ImageItem, JobSettings, generate_images
from tools.random_sd15 import (
    NOMINAL_GUIDED_STEP_FLOPS_512,
    Components,
    build_components,
    build_denoisers,
    guided_step,
    guided_step_flops,
    make_pipeline,
    sd15_configs,
)
from tools.timing import Clock, LoopProbe, Result, measure, peak_tflops

#: Targets of the issue, measured on an H100.
TARGET_RATIO = 3.0
TARGET_PEAK_FRACTION = 0.40
TARGET_PREVIEW_S = 0.5
TARGET_BATCH8_BYTES = 12e9
PREVIEW_STEPS = 4
GUIDANCE = 9.0
PROMPT = "a photo of a car on a plain background, studio lighting, sharp focus"
NEGATIVE = "blurry, low quality"


# --- runs ------------------------------------------------------------------------------------------------


def write_control(folder: Path, size: int) -> str:
    """A synthetic edge map (white lines on black, as the render stage writes) as a PNG."""
    image = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size * 0.55, xx - size * 0.5)
    image[np.abs(r - size * 0.3) < 1.0] = 255
    image[int(size * 0.2), int(size * 0.1) : int(size * 0.9)] = 255
    image[int(size * 0.2) : int(size * 0.8), int(size * 0.15)] = 255
    path = folder / "control.png"
    Image.fromarray(image, "L").save(path)
    return str(path)


def compile_modules(parts: Components, mode: str) -> dict[str, Any]:
    """torch.compile the UNet and ControlNet (static shapes: each batch shape compiles once)."""
    import torch._inductor.config as inductor

    inductor.conv_1x1_as_mm = True
    return {
        "unet": torch.compile(parts.unet, mode=mode, dynamic=False),
        "controlnet": torch.compile(parts.controlnet, mode=mode, dynamic=False),
    }


def _plain_run(pipe: Any, control: Image.Image, size: int, steps: int) -> Callable[[LoopProbe], None]:
    generator = torch.Generator("cpu").manual_seed(0)

    def run(probe: LoopProbe) -> None:
        def on_step(_pipe: Any, _i: int, _t: Any, _kwargs: dict[str, Any]) -> dict[str, Any]:
            probe.step()
            return {}

        generator.manual_seed(0)
        pipe(
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            image=control,
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=GUIDANCE,
            generator=generator,
            callback_on_step_end=on_step,
        )

    return run


def _ours_run(
    loaded: LoadedPipeline,
    items: list[ImageItem],
    settings: JobSettings,
    batching: str,
    restore: dict[str, Any],
) -> Callable[[LoopProbe], None]:
    def run(probe: LoopProbe) -> None:
        try:
            generate_images(loaded, items, settings, on_step=lambda _s, _n: probe.step(), batching=batching)
        finally:
            # runner._PerImage deletes the `forward` instance attribute on exit, which is where
            # torch.compile's OptimizedModule keeps its compiled forward: put it back.
            for name, forward in restore.items():
                module = getattr(loaded.pipe, name)
                if "forward" not in vars(module):
                    module.forward = forward

    return run


def run_bench(args: argparse.Namespace) -> None:
    """Build the models, run every configuration, print the table and the targets."""
    from diffusers import PNDMScheduler

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: this torch ({torch.__version__}) has no CUDA device")
    dtype_name = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    plain_name = "fp16" if device.type == "cuda" else "fp32"
    dtype, plain_dtype = TORCH_DTYPES[dtype_name], TORCH_DTYPES[plain_name]
    warmup = 1 if args.warmup is None else args.warmup
    repeats = args.repeats or (3 if device.type == "cuda" else 1)
    clock = Clock(device)

    print_machine(device)
    configs = sd15_configs(args.small)
    start = time.perf_counter()
    flops = guided_step_flops(configs, args.size)
    parts = build_components(configs, device, plain_dtype)
    print(
        f"models: {'small (1/10 channels)' if args.small else 'full-size SD1.5'} UNet "
        f"{_params(parts.unet)} + ControlNet {_params(parts.controlnet)} + VAE {_params(parts.vae)} + "
        f"CLIP {_params(parts.text_encoder)} parameters, random weights, built in "
        f"{time.perf_counter() - start:.1f} s"
    )
    print(
        f"one guided step (ControlNet + UNet, 2 rows) of one {args.size}x{args.size} image: "
        f"{flops / 1e12:.3g} TFLOP counted (nominal at 512x512: {NOMINAL_GUIDED_STEP_FLOPS_512 / 1e12:.2f})"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="dst3d-bench-") as tmp:
        control_path = write_control(Path(tmp), args.size)
        with Image.open(control_path) as opened:
            control = opened.convert("RGB")
        probe = LoopProbe(clock)

        # (a) the plain pipeline: defaults (PNDM from the config, no channels-last), batch 1.
        plain = make_pipeline(parts, PNDMScheduler.from_config(parts.scheduler_config))
        print(f"(a) plain diffusers pipeline, {plain_name}, {type(plain.scheduler).__name__}, batch 1:")
        probe.attach(plain)
        results.append(
            measure(
                f"plain {plain_name} b1",
                _plain_run(plain, control, args.size, args.steps),
                probe,
                1,
                args.steps,
                True,
                warmup,
                repeats,
            )
        )
        probe.detach(plain)
        del plain

        # (b) ours: placed as the worker places it, then generate_images.
        for module in (parts.unet, parts.controlnet, parts.vae, parts.text_encoder):
            module.to(dtype=dtype)
        if device.type == "cuda":
            parts.unet.to(memory_format=torch.channels_last)
            parts.controlnet.to(memory_format=torch.channels_last)
        ours = make_pipeline(parts, PNDMScheduler.from_config(parts.scheduler_config))
        request = PipelineRequest(base="sd15-canny", scheduler="ddim", dtype=dtype_name, device=args.device)
        loaded = LoadedPipeline(ours, "sd15", device, dtype, False, {"base": "random sd15"}, request)
        probe.attach(ours)
        settings = JobSettings(args.steps, GUIDANCE, 1.0, 0.0, args.size, args.size)
        preview = JobSettings(PREVIEW_STEPS, 1.0, 1.0, 0.0, args.size, args.size)
        items = [
            ImageItem(control_path, PROMPT, NEGATIVE, seed, str(Path(tmp) / f"{seed}.png"))
            for seed in range(args.batch)
        ]
        variants = [("eager", {})]
        if args.compile:
            variants.append((f"compiled ({args.compile_mode})", {}))
        for label, restore in variants:
            if label != "eager":
                compiled = compile_modules(parts, args.compile_mode)
                ours.unet, ours.controlnet = compiled["unet"], compiled["controlnet"]
                restore.update((name, module.forward) for name, module in compiled.items())
            print(f"(b) ours, {dtype_name}, DDIM, {label}:")
            set_scheduler(loaded, "ddim")
            b = args.batch
            # fused first, then the preview (batch 1, fused = exact), then exact.
            results.append(
                measure(
                    f"ours {dtype_name} fused b{b} {label}",
                    _ours_run(loaded, items, settings, "fused", restore),
                    probe,
                    b,
                    args.steps,
                    True,
                    warmup,
                    repeats,
                )
            )
            set_scheduler(loaded, "lcm")
            results.append(
                measure(
                    f"preview {PREVIEW_STEPS} steps LCM b1 {label}",
                    _ours_run(loaded, items[:1], preview, "fused", restore),
                    probe,
                    1,
                    PREVIEW_STEPS,
                    False,
                    warmup,
                    repeats,
                )
            )
            set_scheduler(loaded, "ddim")
            results.append(
                measure(
                    f"ours {dtype_name} exact b{b} {label}",
                    _ours_run(loaded, items, settings, "exact", restore),
                    probe,
                    b,
                    args.steps,
                    True,
                    warmup,
                    repeats,
                )
            )
        probe.detach(ours)
    report(results, flops, device, args)


def _params(module: torch.nn.Module) -> str:
    count = sum(p.numel() for p in module.parameters())
    return f"{count / 1e6:.0f}M" if count >= 1e6 else f"{count / 1e3:.0f}k"


def print_machine(device: torch.device) -> None:
    """The device and software the figures were taken on."""
    import diffusers
    import transformers

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (cpu run)"
    print(
        f"machine: device {device}, GPU {gpu}, torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}), diffusers {diffusers.__version__}, "
        f"transformers {transformers.__version__}, CPUs {os.cpu_count()} "
        f"(torch threads {torch.get_num_threads()})",
        flush=True,
    )


def report(results: list[Result], flops: float, device: torch.device, args: argparse.Namespace) -> None:
    """The table and, on CUDA, one PASS/FAIL line per target."""
    peak, label = peak_tflops(device)
    plain = results[0]
    print()
    header = (
        f"{'configuration':<44} {'img/s':>8} {'s/call':>8} {'loop s':>8} {'evals':>5} "
        f"{'TFLOP/s':>8} {'of peak':>8} {'peak mem':>10} {'vs (a)':>7} {'warm-up':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        tf = r.tflops(flops)
        share = f"{tf / peak:8.1%}" if peak else f"{'-':>8}"
        mem = f"{r.peak_bytes / 1e9:7.2f} GB" if r.peak_bytes is not None else f"{'-':>10}"
        ratio = f"{r.images_per_s / plain.images_per_s:6.2f}x" if r.guided else f"{'-':>7}"
        print(
            f"{r.name:<44} {r.images_per_s:8.3f} {r.call_s:8.3f} {r.loop_s:8.3f} {r.evaluations:5d} "
            f"{tf:8.3g} {share} {mem} {ratio} {r.warmup_s:7.1f}s"
        )
    print(
        f"\nloop = end of latent preparation to the last step callback; TFLOP/s = "
        f"{flops / 1e12:.3g} TFLOP per guided step per image (half without guidance) x images x evals / loop s"
    )
    if peak:
        print(
            f"peak = {peak:.0f} TFLOP/s dense bf16/fp16 ({label}, from {torch.cuda.get_device_name(device)})"
        )
    elif device.type == "cuda":
        print(f"peak unknown for {torch.cuda.get_device_name(device)}: TFLOP/s are raw")
    ours = [r for r in results if r.name.startswith("ours")]  # fused and exact, eager and compiled
    best = max(ours, key=lambda r: r.images_per_s)
    previews = [r for r in results if r.name.startswith("preview")]
    preview_s = min(r.call_s for r in previews)
    full = not args.small and args.size == 512 and args.steps == 20
    print(f"\nbest (b): {best.name}, {best.images_per_s / plain.images_per_s:.2f}x (a)")
    if device.type != "cuda":
        print("targets (H100, full size, 512x512, 20 steps): not checked on the cpu; figures only")
        return
    if not full:
        print("note: targets are defined for full size, --size 512, --steps 20; checked anyway")
    ratio = best.images_per_s / plain.images_per_s
    lines = [(f"(b) >= {TARGET_RATIO:.0f}x (a): {ratio:.2f}x", ratio >= TARGET_RATIO)]
    if peak:
        share = best.tflops(flops) / peak
        lines.append(
            (f"loop >= {TARGET_PEAK_FRACTION:.0%} of bf16 peak: {share:.1%}", share >= TARGET_PEAK_FRACTION)
        )
    else:
        lines.append((f"loop share of peak: unknown GPU, {best.tflops(flops):.1f} TFLOP/s raw", None))
    lines.append(
        (
            f"{PREVIEW_STEPS}-step preview < {TARGET_PREVIEW_S} s: {preview_s:.3f} s",
            preview_s < TARGET_PREVIEW_S,
        )
    )
    if args.batch == 8:
        mem = max(r.peak_bytes or 0 for r in ours if " fused " in r.name)
        lines.append((f"batch 8 peak memory < 12 GB: {mem / 1e9:.2f} GB", mem < TARGET_BATCH8_BYTES))
    else:
        lines.append((f"batch 8 peak memory: not measured (--batch {args.batch})", None))
    for text, ok in lines:
        print(f"{'PASS' if ok else ('FAIL' if ok is False else 'N/A '):4}  {text}")


# --- one step --------------------------------------------------------------------------------------------


def run_one_step(args: argparse.Namespace) -> None:
    """Time one guided ControlNet + UNet step of one image (2 rows), without the pipeline."""
    device = torch.device(args.device)
    dtype_name = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    dtype = TORCH_DTYPES[dtype_name]
    warmup = args.warmup if args.warmup is not None else (1 if device.type == "cuda" else 0)
    repeats = args.repeats or (3 if device.type == "cuda" else 1)
    clock = Clock(device)
    print_machine(device)
    configs = sd15_configs(args.small)
    flops = guided_step_flops(configs, args.size)
    start = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        unet, controlnet = build_denoisers(configs)
    for module in (unet, controlnet):
        module.to(dtype=dtype).eval().requires_grad_(False)
        if device.type == "cuda":
            module.to(memory_format=torch.channels_last)
    print(f"UNet + ControlNet built in {time.perf_counter() - start:.1f} s ({dtype_name})", flush=True)
    latent = args.size // 8
    sample = torch.randn(2, 4, latent, latent, device=device, dtype=dtype)
    text = torch.randn(2, 77, configs["unet"]["cross_attention_dim"], device=device, dtype=dtype)
    control = torch.rand(2, 3, args.size, args.size, device=device, dtype=dtype)
    step = torch.tensor(500, device=device)

    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            guided_step(unet, controlnet, sample, step, text, control)
        for _ in range(repeats):
            clock.sync()
            t = time.perf_counter()
            guided_step(unet, controlnet, sample, step, text, control)
            clock.sync()
            times.append(time.perf_counter() - t)
    best = min(times)
    print(
        f"one guided step, {args.size}x{args.size}, batch 1 (2 rows), {dtype_name}: "
        f"{statistics.median(times):.2f} s median, {best:.2f} s best of {repeats}; "
        f"{flops / 1e12:.3f} TFLOP -> {flops / best / 1e12:.3f} TFLOP/s; "
        f"20 guided steps would take about {20 * best:.0f} s"
    )


def main() -> None:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--size", type=int, default=512, help="image width and height, px (default 512)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps (default 20)")
    parser.add_argument("--batch", type=int, default=8, help="images per call for (b) (default 8)")
    parser.add_argument("--repeats", type=int, default=0, help="timed calls (default 3 on cuda, 1 on cpu)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 1)")
    parser.add_argument(
        "--dtype", choices=sorted(TORCH_DTYPES), help="(b)'s dtype (default fp16 cuda, fp32 cpu)"
    )
    parser.add_argument("--compile", action="store_true", help="also run (b) with a compiled UNet/ControlNet")
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        help="torch.compile mode (default: default)",
    )
    parser.add_argument("--small", action="store_true", help="about 1/10 of the channels: a quick smoke run")
    parser.add_argument("--one-step", action="store_true", help="time one guided UNet+ControlNet step only")
    args = parser.parse_args()
    if args.size % 8 or args.size < 64:
        parser.error(f"--size {args.size}: must be a multiple of 8, at least 64")
    if args.steps < 1 or args.batch < 1 or args.repeats < 0:
        parser.error("--steps and --batch must be >= 1, --repeats >= 0")
    if args.dtype == "fp16" and args.device == "cpu":
        parser.error("--dtype fp16 on the cpu: use fp32 or bf16 (the worker refuses fp16 there)")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()  # "should be kept in float32", scheduler config notes
    transformers_logging.set_verbosity_error()
    with warnings.catch_warnings():
        # random weights make NaN pixels now and then; the cast warning says nothing about speed.
        warnings.filterwarnings("ignore", message="invalid value encountered in cast")
        if args.one_step:
            run_one_step(args)
        else:
            run_bench(args)


if __name__ == "__main__":
    main()
