"""Timing of diffusers pipeline calls: the whole call, its denoising loop, peak memory and TFLOP/s.

A benchmark wants more than the wall time of a call: the denoising loop alone (from the end of the
pipeline's `prepare_latents` to the last step callback, so text encoding, control preprocessing and
VAE decoding are left out), the network evaluations the scheduler made, the warm-up (compilation)
apart from the timed calls, the peak device memory, and the achieved TFLOP/s against the device's
dense bf16 peak. On CUDA the loop is timed with CUDA events, elsewhere with `time.perf_counter`.

Used by `tools/bench_generate.py` (run from the repository root as `python -m tools.bench_generate`);
it needs torch only and knows nothing of dst3d.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

#: Dense bf16 (= fp16) tensor-core peak in TFLOP/s, matched against torch.cuda.get_device_name():
#: the first entry whose words all occur in the name wins.
PEAK_BF16_TFLOPS: tuple[tuple[tuple[str, ...], float, str], ...] = (
    (("H100", "PCIE"), 756.0, "H100 PCIe"),
    (("H100", "NVL"), 835.0, "H100 NVL"),
    (("H100",), 989.0, "H100 SXM"),
    (("H200",), 989.0, "H200"),
    (("A100",), 312.0, "A100"),
    (("L40S",), 362.0, "L40S"),
    (("4090",), 165.0, "RTX 4090"),
)


class Clock:
    """Wall time of a whole call and of its denoising loop (CUDA events on a GPU)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def sync(self) -> None:
        """Wait for the device's queued work (CUDA only)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def mark(self) -> Any:
        """A point in time: a recorded CUDA event, or `time.perf_counter()`."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def seconds(self, start: Any, end: Any) -> float:
        """Seconds between two marks (for CUDA events, once both have completed)."""
        if self.cuda:
            return start.elapsed_time(end) / 1e3
        return end - start


@dataclass
class LoopProbe:
    """Marks the start of the denoising loop (after the pipeline's `prepare_latents`) and its last step."""

    clock: Clock
    start: Any = None
    end: Any = None
    evaluations: int = 0

    def attach(self, pipe: Any) -> None:
        """Wrap `pipe.prepare_latents` (an instance attribute) so that its return marks the loop's start."""
        original = pipe.prepare_latents

        def prepare_latents(*args: Any, **kwargs: Any) -> Any:
            latents = original(*args, **kwargs)
            self.start = self.clock.mark()
            return latents

        pipe.prepare_latents = prepare_latents

    @staticmethod
    def detach(pipe: Any) -> None:
        """Remove the wrapper `attach` put on `pipe`."""
        vars(pipe).pop("prepare_latents", None)

    def reset(self) -> None:
        """Forget the marks and the evaluation count (before each call)."""
        self.start = self.end = None
        self.evaluations = 0

    def step(self) -> None:
        """Count one network evaluation and mark it as the loop's end so far (call from a step callback)."""
        self.evaluations += 1
        self.end = self.clock.mark()

    def loop_seconds(self) -> float:
        """Seconds from the loop's start to its last step."""
        return self.clock.seconds(self.start, self.end)


@dataclass
class Result:
    """The figures of one configuration."""

    name: str
    images: int  # per call
    steps: int  # requested
    guided: bool
    calls: list[float] = field(default_factory=list)  # seconds per call
    loops: list[float] = field(default_factory=list)  # seconds of the denoising loop per call
    evaluations: int = 0  # network evaluations per call (PNDM makes steps + 1)
    warmup_s: float = 0.0
    peak_bytes: int | None = None

    @property
    def call_s(self) -> float:
        """Median seconds per call."""
        return statistics.median(self.calls)

    @property
    def images_per_s(self) -> float:
        """Images per second of the median call."""
        return self.images / self.call_s

    @property
    def loop_s(self) -> float:
        """Median seconds of the denoising loop."""
        return statistics.median(self.loops)

    def tflops(self, guided_flops: float) -> float:
        """Achieved TFLOP/s of the loop, given the FLOPs of one guided step of one image (half unguided)."""
        per_eval = guided_flops if self.guided else guided_flops / 2
        return per_eval * self.images * self.evaluations / self.loop_s / 1e12


def measure(
    name: str,
    run: Callable[[LoopProbe], None],
    probe: LoopProbe,
    images: int,
    steps: int,
    guided: bool,
    warmup: int,
    repeats: int,
) -> Result:
    """Time `run` (warm-up calls first, reported apart) and record its peak device memory."""
    clock = probe.clock
    result = Result(name, images, steps, guided)
    start = time.perf_counter()
    for _ in range(warmup):
        probe.reset()
        run(probe)
    clock.sync()
    result.warmup_s = time.perf_counter() - start
    if clock.cuda:
        torch.cuda.reset_peak_memory_stats(clock.device)
    for _ in range(repeats):
        probe.reset()
        clock.sync()
        start = time.perf_counter()
        run(probe)
        clock.sync()
        result.calls.append(time.perf_counter() - start)
        result.loops.append(probe.loop_seconds())
        result.evaluations = probe.evaluations
    if clock.cuda:
        result.peak_bytes = torch.cuda.max_memory_allocated(clock.device)
    print(
        f"  {name}: {result.call_s:.3f} s/call, loop {result.loop_s:.3f} s "
        f"({result.evaluations} evaluations), warm-up {result.warmup_s:.1f} s",
        flush=True,
    )
    return result


def peak_tflops(device: torch.device) -> tuple[float | None, str]:
    """The device's dense bf16 peak in TFLOP/s and the table row it matched (None if unknown)."""
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device).upper()
    for words, peak, label in PEAK_BF16_TFLOPS:
        if all(w in name for w in words):
            return peak, label
    return None, "unknown"
