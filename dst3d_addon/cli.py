"""The stages of the headless batch script: argument parsing and orchestration only.

`tools/dst3d_batch.py` calls `main`. The parent process never imports bpy for rendering: it plans
the work, starts render workers (Blender processes, blender/render_worker.py), hands them tasks,
appends the records they send, and draws the progress bar. A crash in a worker (a corrupt file can
crash an importer) costs that model, not the run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .core import catalog
from .core.cad_files import check_cad_file
from .core.dataset import Dataset
from .core.errors import Dst3dError
from .core.generation_settings import (
    DEFAULT_GENERATION_PRESET,
    DEFAULT_PIPELINE,
    DTYPES,
    GENERATION_PRESETS,
    PIPELINE_PRESETS,
    SCHEDULERS,
    TINY,
    GenerationSettings,
    settings_from_preset,
)
from .core.jobs import ModelJob, Shard, Task, check_unique_ids, model_id_from_path, pending_views, plan_tasks
from .core.progress import Progress, format_duration
from .core.prompts import PAPER_PROMPT, PromptSource
from .core.render_settings import EDGE_MODES, RenderSettings
from .core.sampling import DEG, STRATEGIES, Distance, SamplingSpec, parse_strategy
from .core.worker_protocol import LineReader, encode
from .generation.batch import GenerateRun, RunOptions
from .generation.client import WorkerClient, WorkerConfig
from .kcf import stages as kcf_stages

PROG = "dst3d_batch.py"
ANNOTATIONS = "annotations.jsonl"
DEFAULT_FIT = 0.8
DEPTH_DESCRIPTION = {
    "format": "npz",
    "key": "depth",
    "dtype": "float32",
    "meaning": "camera-space depth along the view axis (-z_c), object units",
    "background": "inf",
}


class UsageError(Dst3dError):
    """A bad option: the message names it."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option gives one line (and exit 2), not the whole usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


# ----------------------------------------------------------------------------------------- options


def _number(name: str, kind: type, positive: bool):
    """An argparse type: a finite int or float (positive if asked) whose errors name the option."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: expected {what}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be finite")
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be positive")
        return value

    return parse


def _positive_int(name: str):
    return _number(name, int, positive=True)


def _positive_float(name: str):
    return _number(name, float, positive=True)


def _finite_float(name: str):
    return _number(name, float, positive=False)


def parse_resolution(text: str) -> tuple[int, int]:
    """`512` or `640x480`."""
    parts = str(text).lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--resolution {text!r}: expected W or WxH, such as 512x384"
        ) from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"--resolution {text!r}: width and height must be positive")
    if max(values) > 16384:
        raise argparse.ArgumentTypeError(f"--resolution {text!r}: at most 16384 pixels a side")
    return values[0], values[1]


def _strategy(text: str) -> str:
    try:
        return parse_strategy(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--sampling: {exc}") from None


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


AXES = ("X", "Y", "Z", "-X", "-Y", "-Z")


def build_parser() -> argparse.ArgumentParser:
    """The batch script's command line."""
    parser = _Parser(prog=PROG, description="dst3d: annotated training images from aligned CAD models.")
    parser.add_argument("--version", action="version", version=f"dst3d {__version__}")
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", parser_class=_Parser)
    stages.required = True

    r = stages.add_parser(
        "render",
        help="render control images, masks, depth and pose annotations",
        description="Render control images (edges), masks, depth and pose annotations of CAD models.",
    )
    add_render_options(r)
    g = stages.add_parser(
        "generate",
        help="turn the control images into images with a ControlNet diffusion model",
        description="Generate images from a dataset's control images with a ControlNet pipeline, "
        "in a worker process (the GPU's), writing generations.jsonl and images/.",
    )
    g.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (rendered already)")
    add_generation_options(g, common=True)
    run = stages.add_parser(
        "run",
        help="render, then generate",
        description="The render stage, then the generate stage, on one dataset folder. Without weights, "
        "a GPU or torch it still renders, and says what it skipped.",
    )
    add_render_options(run)
    add_generation_options(run, common=False)
    kcf_stages.add_parsers(stages)
    return parser


def add_render_options(r: argparse.ArgumentParser) -> None:
    """The render stage's options (also the `run` stage's)."""
    src = r.add_argument_group("models")
    src.add_argument("--cad", action="append", default=[], metavar="PATH", help="a CAD file (repeatable)")
    src.add_argument("--cad-csv", metavar="CSV", help="3D-DST's model list (synset, model, distance, ...)")
    src.add_argument(
        "--cad-root",
        action="append",
        default=[],
        metavar="DIR",
        help="where --cad-csv's models are (ShapeNetCore.v2, Objaverse or OmniObject3D root)",
    )
    src.add_argument("--synsets", nargs="+", metavar="ID", help="only these synsets of --cad-csv")
    src.add_argument("--class-name", help="class of the --cad models (default: object)")
    src.add_argument("--synset", help="WordNet synset of the --cad models, e.g. n02690373")
    src.add_argument(
        "--forward", choices=AXES, default="-Y", help="the --cad models' front axis (default -Y)"
    )
    src.add_argument("--up", choices=AXES, default="Z", help="the --cad models' up axis (default Z)")
    src.add_argument("--azimuth-offset", type=_finite_float("--azimuth-offset"), default=0.0, metavar="DEG")
    src.add_argument(
        "--elevation-offset", type=_finite_float("--elevation-offset"), default=0.0, metavar="DEG"
    )

    v = r.add_argument_group("views")
    v.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    v.add_argument(
        "--views",
        type=_positive_int("--views"),
        default=None,
        metavar="N",
        help="views per model (default 24, or the grid's size)",
    )
    v.add_argument("--seed", type=int, default=0, help="run seed; each view's seed derives from it")
    v.add_argument("--resolution", type=parse_resolution, default=(512, 512), metavar="W[xH]")
    v.add_argument(
        "--sampling", type=_strategy, default="1", help="; ".join(f"{k}: {d}" for k, d in STRATEGIES.items())
    )
    v.add_argument(
        "--theta-std",
        type=_finite_float("--theta-std"),
        default=0.0,
        metavar="DEG",
        help="in-plane rotation ~ N(0, DEG) (3D-DST: 0)",
    )
    dist = v.add_mutually_exclusive_group()
    dist.add_argument("--distance", type=_positive_float("--distance"), metavar="D", help="fixed distance")
    dist.add_argument(
        "--random-distance",
        type=_positive_float("--random-distance"),
        metavar="D",
        help="3D-DST's random distance: truncated normal, mean D, sd 0.5, in [D-0.5, D+1.5]",
    )
    dist.add_argument(
        "--fit",
        type=_positive_float("--fit"),
        metavar="F",
        help=f"distance at which the object fills F of the shorter side (default {DEFAULT_FIT})",
    )

    o = r.add_argument_group("output")
    o.add_argument(
        "--edges",
        choices=EDGE_MODES,
        default="canny",
        help="canny: lines of the geometry (default); freestyle: Blender Freestyle; "
        "canny-shaded: 3D-DST's Canny 100/200 on a Cycles render",
    )
    o.add_argument(
        "--samples",
        type=_positive_int("--samples"),
        default=32,
        help="Cycles samples for --edges canny-shaded (default 32, as 3D-DST)",
    )
    o.add_argument("--no-renders", action="store_true", help="do not keep renders/<id>.png")
    o.add_argument("--allow-mixed", action="store_true", help="write into a dataset made with other settings")

    x = r.add_argument_group("execution")
    x.add_argument(
        "--shard",
        type=_shard,
        default=Shard(),
        metavar="I/N",
        help="render only shard I of N (0 <= I < N); every shard may write the same --out",
    )
    x.add_argument(
        "--workers",
        type=_positive_int("--workers"),
        default=1,
        metavar="K",
        help="parallel Blender processes (default 1)",
    )
    x.add_argument("--quiet", action="store_true", help="no progress bar")


def _device(text: str) -> str:
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        return text
    raise argparse.ArgumentTypeError(f"--device {text!r}: use auto, cpu, cuda, cuda:N or mps")


def add_generation_options(g: argparse.ArgumentParser, common: bool) -> None:
    """The generate stage's options; `common` adds those the render stage also has (--seed, ...)."""
    m = g.add_argument_group("model")
    m.add_argument(
        "--pipeline",
        default=DEFAULT_PIPELINE,
        metavar="PRESET|ID|PATH",
        help=f"a preset ({', '.join(PIPELINE_PRESETS)}; default {DEFAULT_PIPELINE}), a hub id, a local diffusers "
        "folder or a single .safetensors checkpoint; 'tiny' has random weights (its images are noise)",
    )
    m.add_argument("--controlnet", metavar="ID|PATH", help="the ControlNet (default: the preset's)")
    m.add_argument("--lora", metavar="ID|PATH", help="a LoRA to fuse ('lcm' = the family's LCM-LoRA, 'none')")
    m.add_argument(
        "--base-config", metavar="DIR", help="a diffusers folder with the configs of a single-file --pipeline"
    )
    m.add_argument(
        "--allow-pickle", action="store_true", help="allow pickle checkpoints (.ckpt/.pt/.bin): unsafe"
    )
    s = g.add_argument_group("sampling (default: --preset paper, 3D-DST's)")
    s.add_argument(
        "--preset",
        choices=tuple(GENERATION_PRESETS),
        default=DEFAULT_GENERATION_PRESET,
        help="paper: DDIM 20 steps, eta 1, guidance 9, 512x512 (3D-DST); fast: LCM-LoRA 4 steps "
        "(UniPC 10 steps without its weights)",
    )
    s.add_argument("--scheduler", choices=tuple(SCHEDULERS), help="the sampler")
    s.add_argument("--steps", type=_positive_int("--steps"), metavar="N")
    s.add_argument("--guidance", type=_finite_float("--guidance"), metavar="G")
    s.add_argument("--control-scale", type=_finite_float("--control-scale"), metavar="S")
    s.add_argument("--eta", type=_finite_float("--eta"), metavar="E", help="DDIM's eta (3D-DST: 1.0)")
    s.add_argument("--width", type=_positive_int("--width"), metavar="W", help="image width (preset: 512)")
    s.add_argument("--height", type=_positive_int("--height"), metavar="H", help="image height (preset: 512)")
    p = g.add_argument_group("prompts")
    p.add_argument(
        "--prompt",
        metavar="TEMPLATE",
        help='prompt template with {class}, {synset} (default: "' + PAPER_PROMPT.replace("%", "%%") + '")',
    )
    p.add_argument("--negative-prompt", metavar="TEXT", help="negative prompt (default: 3D-DST's)")
    p.add_argument(
        "--captions",
        metavar="FILE",
        help="captions per class or synset (.csv/.jsonl) or one prompt a line (.txt); each image's is "
        "chosen from its seed",
    )
    x = g.add_argument_group("generation run")
    x.add_argument("--images-per-view", type=_positive_int("--images-per-view"), default=1, metavar="K")
    x.add_argument(
        "--batch-size",
        type=_positive_int("--batch-size"),
        default=4,
        metavar="B",
        help="images per denoising batch (halved automatically when out of memory)",
    )
    x.add_argument(
        "--batching",
        choices=("exact", "fused"),
        default="exact",
        help="exact: each image computed as if alone, so a seed gives the same pixels in any batch (default); "
        "fused: one batch per network call, faster on a GPU, pixels may differ by a level",
    )
    x.add_argument(
        "--device", type=_device, default="auto", help="auto (CUDA if any), cpu, cuda, cuda:N, mps"
    )
    x.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: fp16 on a GPU, fp32 on the CPU")
    x.add_argument(
        "--python",
        metavar="PATH",
        help="the worker's Python, with torch and diffusers (default: $DST3D_WORKER_PYTHON or this one)",
    )
    if common:
        x.add_argument("--seed", type=int, default=0, help="run seed; each image's seed derives from it")
        x.add_argument(
            "--shard",
            type=_shard,
            default=Shard(),
            metavar="I/N",
            help="generate only shard I of N (0 <= I < N)",
        )
        x.add_argument(
            "--allow-mixed", action="store_true", help="write into a dataset made with other settings"
        )
        x.add_argument("--quiet", action="store_true", help="no progress bar")


# ----------------------------------------------------------------------------------------- planning


def settings_from_args(args: argparse.Namespace) -> RenderSettings:
    """RenderSettings from the parsed options."""
    if args.distance is not None:
        distance = Distance("fixed", args.distance)
    elif args.random_distance is not None:
        try:
            distance = Distance("random", args.random_distance)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    elif args.fit is None and args.cad_csv is not None:
        # 3D-DST's catalogue gives each model its camera distance (ModelJob.distance_scale).
        distance = Distance("fixed", 1.0)
    else:
        distance = Distance("fit", args.fit if args.fit is not None else DEFAULT_FIT)
    spec = SamplingSpec(parse_strategy(args.sampling), distance, args.theta_std * DEG)
    width, height = args.resolution
    return RenderSettings(
        width=width,
        height=height,
        sampling=spec,
        edges=args.edges,
        seed=args.seed,
        keep_renders=not args.no_renders,
        shaded_samples=args.samples,
    )


def models_from_args(args: argparse.Namespace) -> list[ModelJob]:
    """The run's models, from --cad and --cad-csv."""
    models: list[ModelJob] = []
    if args.cad_csv is None and (args.cad_root or args.synsets):
        raise UsageError("--cad-root and --synsets go with --cad-csv")
    for path in args.cad:
        models.append(
            ModelJob(
                class_name=args.class_name or "object",
                model_id=model_id_from_path(path),
                cad_path=str(path),
                synset=args.synset,
                forward=args.forward,
                up=args.up,
                azimuth_offset=args.azimuth_offset * DEG,
                elevation_offset=args.elevation_offset * DEG,
            )
        )
    if args.cad_csv is not None:
        if not args.cad_root:
            raise UsageError("--cad-csv needs --cad-root DIR (where its models are)")
        models.extend(catalog.jobs_from_catalog(args.cad_csv, args.cad_root, args.synsets, args.class_name))
    if not models:
        raise UsageError("no models: give --cad PATH or --cad-csv CSV --cad-root DIR")
    try:
        check_unique_ids(models)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return models


def views_per_model(args: argparse.Namespace) -> int:
    """--views, defaulting to the grid's size for grid sampling."""
    if args.views is not None:
        return args.views
    grid = parse_strategy(args.sampling).grid_size
    return grid if grid is not None else 24


# ----------------------------------------------------------------------------------------- workers


@dataclass
class _Worker:
    """A running render worker and what it is doing."""

    index: int
    process: subprocess.Popen
    fd: int
    reader: LineReader = field(default_factory=LineReader)
    task: Task | None = None
    log: Path | None = None


def worker_command(script: Path, fd: int) -> list[str]:
    """How to start a render worker: Blender itself when we run inside Blender, else this Python."""
    bpy = sys.modules.get("bpy")
    binary = getattr(getattr(bpy, "app", None), "binary_path", "") if bpy else ""
    if binary and Path(binary).name.lower().startswith("blender") and os.access(binary, os.X_OK):
        return [
            binary,
            "-b",
            "--factory-startup",
            "-noaudio",
            "-P",
            str(script),
            "--",
            "_worker",
            "--fd",
            str(fd),
        ]
    return [sys.executable, str(script), "_worker", "--fd", str(fd)]


class RenderRun:
    """Runs the tasks of one render stage over K workers, appending records as views complete."""

    def __init__(
        self,
        dataset: Dataset,
        settings: RenderSettings,
        models: Sequence[ModelJob],
        tasks: list[Task],
        workers: int,
        script: Path,
        progress: Progress,
        shard: Shard,
    ) -> None:
        self.shard = shard
        self.dataset = dataset
        self.settings = settings
        self.models = list(models)
        self.queue = list(tasks)
        self.workers_wanted = max(1, min(workers, len(tasks)))
        self.script = script
        self.progress = progress
        self.failed: dict[str, str] = {}  # model id -> reason
        self.written = 0
        self.threads = max(1, (os.cpu_count() or 1) // self.workers_wanted)
        self.selector = selectors.DefaultSelector()
        self.workers: list[_Worker] = []
        self._next_index = 0

    def failed_key(self, model: ModelJob) -> str:
        return f"{model.class_key}/{model.model_id}"

    def _start_worker(self) -> _Worker:
        read_fd, write_fd = os.pipe()
        index = self._next_index
        self._next_index += 1
        log = self.dataset.root / "logs" / f"render-shard{self.shard.index}-worker{index}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as log_file:
            process = subprocess.Popen(
                worker_command(self.script, write_fd),
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                start_new_session=True,  # Ctrl-C goes to the parent, which stops the workers
            )
        os.close(write_fd)
        worker = _Worker(index, process, read_fd, log=log)
        self._send(
            worker,
            {
                "type": "init",
                "settings": self.settings.as_dict(),
                "out": str(self.dataset.root),
                "threads": self.threads,
            },
        )
        self.selector.register(read_fd, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        return worker

    def _send(self, worker: _Worker, message: dict) -> None:
        try:
            worker.process.stdin.write(encode(message))
            worker.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # its end shows up as EOF on its pipe

    def _next_task(self, worker: _Worker) -> None:
        while self.queue:
            task = self.queue.pop(0)
            model = self.models[task.model]
            if self.failed_key(model) in self.failed:
                self.progress.update(0, failed=len(task.views))
                continue
            worker.task = task
            self._send(worker, {"type": "task", "model": model.as_dict(), "views": list(task.views)})
            return
        worker.task = None
        self._send(worker, {"type": "exit"})

    def _handle(self, worker: _Worker, message: dict) -> None:
        kind = message.get("type")
        if kind in ("ready", "task_done"):
            self._next_task(worker)
        elif kind == "view":
            self.dataset.append(ANNOTATIONS, [message["record"]])
            self.written += 1
            if worker.task is not None:
                worker.task = Task(worker.task.model, worker.task.views[1:])
            self.progress.update(1)
        elif kind == "model_error":
            model = self.models[worker.task.model] if worker.task else None
            key = self.failed_key(model) if model else message.get("model_id", "?")
            self.failed.setdefault(key, message.get("error", "unknown error"))
            if worker.task is not None:
                self.progress.update(0, failed=len(worker.task.views))
                worker.task = Task(worker.task.model, ())
        elif kind == "fatal":
            raise Dst3dError(f"render worker: {message.get('error')}")

    def _worker_ended(self, worker: _Worker) -> None:
        self.selector.unregister(worker.fd)
        os.close(worker.fd)
        code = worker.process.wait()
        self.workers.remove(worker)
        if worker.task is not None and worker.task.views:
            model = self.models[worker.task.model]
            reason = (
                f"{model.cad_path}: the render worker crashed (exit code {code}) on this model; "
                f"see {worker.log}"
            )
            self.failed.setdefault(self.failed_key(model), reason)
            self.progress.update(0, failed=len(worker.task.views))
        if self.queue:
            self._start_worker()

    def run(self) -> None:
        """Render everything; returns when every task is done or failed."""
        skipped = [t for t in self.queue if self.failed_key(self.models[t.model]) in self.failed]
        self.queue = [t for t in self.queue if t not in skipped]
        self.progress.update(0, failed=sum(len(t.views) for t in skipped))
        self.workers_wanted = min(self.workers_wanted, len(self.queue))
        for _ in range(self.workers_wanted):
            self._start_worker()
        try:
            while self.workers:
                for key, _ in self.selector.select(timeout=1.0):
                    worker: _Worker = key.data
                    data = os.read(worker.fd, 1 << 16)
                    if not data:
                        self._worker_ended(worker)
                        continue
                    for message in worker.reader.feed(data):
                        self._handle(worker, message)
        finally:
            self.stop()

    def stop(self) -> None:
        """End every worker (used on Ctrl-C and errors too)."""
        for worker in list(self.workers):
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in list(self.workers):
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.fd)
            os.close(worker.fd)
        self.workers.clear()


# ----------------------------------------------------------------------------------------- stages


def run_render(args: argparse.Namespace, script: Path) -> int:
    """The render stage; returns the exit code."""
    settings = settings_from_args(args)
    models = models_from_args(args)
    views = views_per_model(args)
    dataset = Dataset.open(
        Path(args.out),
        "render",
        settings.as_dict(),
        allow_mixed=args.allow_mixed,
        tool_version=__version__,
        depth=DEPTH_DESCRIPTION,
    )
    dataset.add_classes({m.class_key: {"name": m.class_name, "synset": m.synset} for m in models})
    done = dataset.completed_ids(ANNOTATIONS)
    pending = pending_views(models, views, args.shard, done)
    total = sum(len(p) for p in pending)
    owned = sum(1 for m in models for v in range(views) if args.shard.owns(m.annotation_id(v)))
    skipped = owned - total
    tasks = plan_tasks(pending, args.workers)
    print(
        f"dst3d render: {len(models)} model(s) x {views} views, shard {args.shard.index}/{args.shard.count}: "
        f"{total} to render, {skipped} already done -> {dataset.root}",
        file=sys.stderr,
    )
    progress = Progress(total, "views", enabled=not args.quiet)
    start = time.monotonic()
    run = RenderRun(dataset, settings, models, tasks, args.workers, script, progress, args.shard)
    for model, views_left in zip(models, pending, strict=True):
        if views_left:  # a file that cannot be a model never reaches Blender
            try:
                check_cad_file(model.cad_path)
            except Dst3dError as exc:
                run.failed[run.failed_key(model)] = str(exc)
    try:
        run.run()
    except KeyboardInterrupt:
        progress.close()
        print(
            f"dst3d render: interrupted after {run.written} new views; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    progress.close()
    elapsed = time.monotonic() - start
    rate = run.written / elapsed if elapsed > 0 else 0.0
    print(
        f"dst3d render: {run.written} views written, {skipped} skipped (done before), "
        f"{len(run.failed)} model(s) failed, in {format_duration(elapsed)} ({rate:.2f} views/s)",
        file=sys.stderr,
    )
    for _key, reason in sorted(run.failed.items()):
        print(f"dst3d: error: {reason}", file=sys.stderr)
    return 1 if run.failed else 0


MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def _check_model_path(option: str, value: str | None) -> None:
    """A --pipeline/--controlnet that looks like a path must exist (a hub id is checked by the worker)."""
    if value is None or value in PIPELINE_PRESETS or Path(value).expanduser().exists():
        return
    if (
        value.lower().endswith(MODEL_FILE_SUFFIXES)
        or value.startswith((".", "/", "~", "\\"))
        or (len(value) > 1 and value[1] == ":")
    ):
        raise UsageError(f"{option} {value}: no such file or folder")


def generation_settings_from_args(args: argparse.Namespace) -> GenerationSettings:
    """GenerationSettings from the parsed options (a preset with overrides)."""
    _check_model_path("--pipeline", args.pipeline)
    _check_model_path("--controlnet", args.controlnet)
    if args.captions is not None and not Path(args.captions).is_file():
        raise UsageError(f"--captions {args.captions}: no such file")
    return settings_from_preset(
        args.preset,
        pipeline=args.pipeline,
        controlnet=args.controlnet,
        scheduler=args.scheduler,
        steps=args.steps,
        guidance=args.guidance,
        control_scale=args.control_scale,
        eta=args.eta,
        width=args.width,
        height=args.height,
        seed=args.seed,
        dtype=args.dtype,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        captions=args.captions,
        lora=args.lora,
    )


def _skipped_hint(args: argparse.Namespace, reason: str) -> str:
    command = f"python tools/dst3d_batch.py generate --out {args.out}"
    if args.pipeline != DEFAULT_PIPELINE:
        command += f" --pipeline {args.pipeline}"
    return (
        f"dst3d run: generation skipped: {reason}\n"
        f"dst3d run: the annotated control images are in {args.out}; to generate the images, run on a "
        f"machine with a CUDA GPU and the model weights:\n    {command}"
    )


def run_generate(args: argparse.Namespace, *, skip_unavailable: bool = False) -> int:
    """The generate stage; returns the exit code. With `skip_unavailable` (the `run` stage), missing
    weights, torch or GPU end it with a message and exit 0: the rendered data is complete."""
    settings = generation_settings_from_args(args)
    prompts = PromptSource.load(settings.prompt, settings.negative_prompt, settings.captions)
    options = RunOptions(
        images_per_view=args.images_per_view,
        batch_size=args.batch_size,
        device=args.device,
        allow_pickle=args.allow_pickle,
        allow_mixed=args.allow_mixed,
        shard=args.shard,
        base_config=args.base_config,
        batching=args.batching,
    )
    out = Path(args.out)
    client = WorkerClient(
        WorkerConfig(python=args.python, log_path=out / "logs" / f"generate-{os.getpid()}.log")
    )
    progress: Progress | None = None

    def log(message: str) -> None:
        if progress is not None:
            progress.clear()
        print(f"dst3d generate: {message}", file=sys.stderr)

    def step(done: int, steps: int) -> None:
        if progress is not None:
            progress.set_note(f"step {done}/{steps}")

    def images(n: int) -> None:
        if progress is not None:
            progress.update(n)

    run = GenerateRun(out, settings, prompts, options, client, log=log, on_images=images, on_step=step)
    tiny = run.request["base"] == TINY
    print(
        f"dst3d generate: {len(run.annotations)} views x {args.images_per_view} image(s), shard "
        f"{args.shard.index}/{args.shard.count}: {run.total} to generate, {run.skipped} already done -> {out}",
        file=sys.stderr,
    )
    try:
        while not run.poll(0.2):
            if progress is None and run.state == "generating":
                progress = Progress(run.total, "images", enabled=not args.quiet)
    except KeyboardInterrupt:
        run.cancel()
        client.release()
        if progress is not None:
            progress.close()
        print(
            f"dst3d generate: interrupted after {run.written} new images; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    finally:
        client.release()
    if progress is not None:
        progress.close()
    if run.state == "unavailable" and skip_unavailable:
        print(_skipped_hint(args, str(run.error)), file=sys.stderr)
        return 0
    if run.error is not None:
        print(f"dst3d: error: {run.error}", file=sys.stderr)
        return 2 if run.error.kind == "bad_input" else 1
    rate = run.written / run.elapsed if run.elapsed > 0 else 0.0
    print(
        f"dst3d generate: {run.written} images written, {run.skipped} skipped (done before), in "
        f"{format_duration(run.elapsed)} ({rate:.2f} images/s)" + (" [tiny: noise images]" if tiny else ""),
        file=sys.stderr,
    )
    return 0


def run_all(args: argparse.Namespace, script: Path) -> int:
    """The `run` stage: render, then generate (skipped with a message where it cannot run)."""
    code = run_render(args, script)
    if code != 0:
        return code
    return run_generate(args, skip_unavailable=True)


def run_worker(argv: Sequence[str]) -> int:
    """The hidden `_worker` stage: serve render tasks (imports bpy)."""
    parser = _Parser(prog=f"{PROG} _worker")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(list(argv))
    from .blender.render_worker import serve

    try:
        return serve(sys.stdin.buffer, args.fd)
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str], script: Path) -> int:
    """Entry point of tools/dst3d_batch.py; returns the exit code."""
    argv = list(argv)
    if argv[:1] == ["_worker"]:
        return run_worker(argv[1:])
    try:
        args = build_parser().parse_args(argv)
        if args.stage == "render":
            return run_render(args, script)
        if args.stage == "generate":
            return run_generate(args)
        if args.stage == "run":
            return run_all(args, script)
        if args.stage in kcf_stages.STAGES:
            return kcf_stages.STAGES[args.stage](args)
        raise UsageError(f"unknown stage {args.stage!r}")
    except Dst3dError as exc:
        print(f"dst3d: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # settings validation (e.g. RenderSettings) names the option
        print(f"dst3d: error: {exc}", file=sys.stderr)
        return 2
