"""The generate and run stages' door: their options, and the loop that drives the generate
stage (`generation/run.py`) with a progress bar, Ctrl-C and one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from dataclasses import replace
from pathlib import Path

from ..core.cluster import device_on_actor, sub_shard
from ..core.dataset import ANNOTATIONS, DATASET_JSON, Dataset
from ..core.files import remove_stale_temps
from ..core.generation_plan import MAX_IMAGES_PER_VIEW
from ..core.generation_settings import (
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
from ..core.progress import Progress, format_duration
from ..core.prompt_table import PROMPTS_FILE, load_prompt_file, merge_prompt_file
from ..core.prompts import PAPER_PROMPT, PromptSource
from ..core.render_plan import Shard
from ..generation.client import WorkerClient, WorkerConfig
from ..generation.errors import GenerationError
from ..generation.fleet import GenerateFleet
from ..generation.run import GenerateRun, RunOptions, Unavailable, pipeline_request
from .cluster import add_ray_option, generation_workers, join, leave
from .options import UsageError, cli_text, device, fail, finite_float, positive_int, say, seed, shard


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
    s.add_argument("--steps", type=positive_int("--steps"), metavar="N")
    s.add_argument("--guidance", type=finite_float("--guidance"), metavar="G")
    s.add_argument("--control-scale", type=finite_float("--control-scale"), metavar="S")
    s.add_argument("--eta", type=finite_float("--eta"), metavar="E", help="DDIM's eta (3D-DST: 1.0)")
    s.add_argument("--width", type=positive_int("--width"), metavar="W", help="image width (preset: 512)")
    s.add_argument("--height", type=positive_int("--height"), metavar="H", help="image height (preset: 512)")
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
    p.add_argument(
        "--prompts",
        metavar="FILE",
        help="prompts and negative prompts per class, synset or model id (.json or .csv), written into "
        "the dataset's prompts.jsonl; each image's prompt is chosen from its model's, else its class's",
    )
    x = g.add_argument_group("generation run")
    x.add_argument(
        "--images-per-view",
        type=positive_int("--images-per-view", most=MAX_IMAGES_PER_VIEW),
        default=1,
        metavar="K",
    )
    x.add_argument(
        "--batch-size",
        type=positive_int("--batch-size", most=1024),
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
    x.add_argument("--device", type=device, default="auto", help="auto (CUDA if any), cpu, cuda, cuda:N, mps")
    x.add_argument("--dtype", choices=tuple(DTYPES), default="auto", help=f"auto: {DTYPES['auto']}")
    x.add_argument(
        "--python",
        metavar="PATH",
        help="the worker's Python, with torch and diffusers (default: $DST3D_WORKER_PYTHON or this one)",
    )
    if common:
        x.add_argument(
            "--seed", type=seed("--seed"), default=0, help="run seed; each image's seed derives from it"
        )
        x.add_argument(
            "--shard",
            type=shard,
            default=Shard(),
            metavar="I/N",
            help="generate only shard I of N (0 <= I < N)",
        )
        x.add_argument(
            "--allow-mixed", action="store_true", help="write into a dataset made with other settings"
        )
        x.add_argument("--quiet", action="store_true", help="no progress bar")
        add_ray_option(x)


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
    for option, value in (("--captions", args.captions), ("--prompts", args.prompts)):
        if value is not None and not Path(value).is_file():
            raise UsageError(f"{option} {value}: no such file")
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


#: Where dataset.json keeps the generation options of a `run` whose generation was skipped.
PENDING = "pending_generate"


def _generation_actions() -> list[argparse.Action]:
    """The generation options (those `run` and `generate` share), from the parser itself."""
    parser = argparse.ArgumentParser(add_help=False)
    add_generation_options(parser, common=False)
    return [a for a in parser._actions if a.option_strings]


def _command(args: argparse.Namespace) -> str:
    """The `generate` command that makes what this run's generation options ask for."""
    words = ["python", "tools/dst3d_batch.py", "generate", "--out", str(args.out)]
    for action in _generation_actions():
        value = getattr(args, action.dest)
        if value == action.default or value is None:
            continue
        option = action.option_strings[0]
        words += [option] if action.nargs == 0 else [option, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def remember_generation(args: argparse.Namespace) -> None:
    """Keep the generation options in dataset.json, so that `generate --out DIR` alone uses them."""
    values = {a.dest: getattr(args, a.dest) for a in _generation_actions()}
    Dataset(Path(args.out), "generate", {}).update_info(lambda info: info.__setitem__(PENDING, values))


def recall_generation(args: argparse.Namespace) -> list[str]:
    """Take the options a skipped run kept for those not given now; returns their option names."""
    try:
        info = json.loads((Path(args.out) / DATASET_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    kept = info.get(PENDING) if isinstance(info, dict) else None
    if not isinstance(kept, dict):
        return []
    given = getattr(args, "given", frozenset())
    taken = []
    for action in _generation_actions():
        wanted = kept.get(action.dest, getattr(args, action.dest))
        if not given.intersection(action.option_strings) and getattr(args, action.dest) != wanted:
            setattr(args, action.dest, wanted)
            taken.append(action.option_strings[0])
    return taken


def _skipped_hint(args: argparse.Namespace, reason: str) -> str:
    return (
        f"dst3d run: generation skipped: {reason}\n"
        f"dst3d run: the annotated control images are in {args.out}; to generate the images, run on a "
        f"machine with a CUDA GPU and the model weights:\n    {_command(args)}\n"
        f"dst3d run: (dataset.json keeps these options: `generate --out {args.out}` alone uses them)"
    )


def run_options(args: argparse.Namespace) -> RunOptions:
    """RunOptions from the parsed options."""
    return RunOptions(
        images_per_view=args.images_per_view,
        batch_size=args.batch_size,
        device=args.device,
        allow_pickle=args.allow_pickle,
        allow_mixed=args.allow_mixed,
        shard=args.shard,
        base_config=args.base_config,
        batching=args.batching,
    )


def prepare_generation(
    args: argparse.Namespace, *, skip_unavailable: bool
) -> tuple[GenerationSettings, PromptSource, RunOptions]:
    """The generation's settings, prompts and run options (a skipped run's options recalled for
    `generate`, a --prompts file merged into the dataset)."""
    if not skip_unavailable:
        taken = recall_generation(args)
        if taken:
            say(f"dst3d generate: using {', '.join(taken)} as the skipped run gave them (dataset.json)")
    settings = generation_settings_from_args(args)
    prompts = PromptSource.load(settings.prompt, settings.negative_prompt, settings.captions)
    if args.prompts is not None and (Path(args.out) / ANNOTATIONS).is_file():
        merge_prompts(Path(args.out), args.prompts)
    return settings, prompts, run_options(args)


class GenerateView:
    """The generate stage as the terminal shows it: log lines, the denoising step, and one
    progress bar of images (with a note the `run` stage sets: how far the render is)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.note = ""
        self.first_image: float | None = None  # when the first images were written (time.monotonic())

    def log(self, message: str) -> None:
        if self.progress is not None:
            self.progress.clear()
        say(f"dst3d generate: {message}")

    def step(self, done: int, steps: int) -> None:
        if self.progress is not None:
            self.progress.set_note(", ".join(n for n in (self.note, f"step {done}/{steps}") if n))

    def images(self, n: int) -> None:
        if self.first_image is None and n > 0:
            self.first_image = time.monotonic()
        if self.progress is not None:
            self.progress.update(n)

    def follow(self, run: GenerateRun | GenerateFleet) -> None:
        """Start the bar once images are being made; keep its total up to date."""
        if self.progress is None and run.state == "generating":
            self.progress = Progress(run.total, "images", enabled=not self.quiet)
        if self.progress is not None:
            self.progress.total = run.total

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def no_gpu(base: str) -> Unavailable:
    """Why a cluster without GPUs generates nothing (unless asked to use its CPUs)."""
    return Unavailable(
        f"the Ray cluster has no GPU; {base} on the CPU takes minutes per image, so nothing was "
        f"generated (pass --device cpu to run it on the cluster's CPUs anyway)"
    )


def make_generation(
    args: argparse.Namespace,
    settings: GenerationSettings,
    prompts: PromptSource,
    options: RunOptions,
    cluster: object,
    view: GenerateView,
    *,
    following: bool = False,
) -> GenerateRun | GenerateFleet:
    """The generate run: one local worker, or with a `cluster` one worker per GPU of the
    cluster (each a GenerateRun on its part of --shard, see generation/fleet.py). Unavailable when
    the cluster has no GPU and the model needs one."""
    out = Path(args.out)
    if (out / "images").is_dir():  # a killed worker's half-written images (its pid is gone)
        removed = remove_stale_temps(out / "images")
        if removed:
            view.log(f"removed {removed} temporary file(s) a stopped run left behind")
    callbacks = {"on_images": view.images, "on_step": view.step, "following": following}
    if cluster is None:
        client = WorkerClient(
            WorkerConfig(python=args.python, log_path=out / "logs" / f"generate-{os.getpid()}.log")
        )
        return GenerateRun(out, settings, prompts, options, client, log=view.log, **callbacks)
    base = pipeline_request(settings, options)["base"]
    count, factory = generation_workers(cluster, options.device, base == TINY)
    if count == 0:
        raise no_gpu(base)
    runs: list[GenerateRun] = []
    try:
        for k in range(count):
            config = WorkerConfig(
                python=args.python,
                log_path=out / "logs" / f"generate-{os.getpid()}-{k}.log",
                process_factory=factory,
            )
            part = replace(
                options, shard=sub_shard(options.shard, k, count), device=device_on_actor(options.device)
            )
            log = view.log if count == 1 else (lambda message, k=k: view.log(f"worker {k}: {message}"))
            runs.append(GenerateRun(out, settings, prompts, part, WorkerClient(config), log=log, **callbacks))
    except BaseException:
        for run in runs:
            run.close()
        raise
    view.log(f"{count} worker(s) on the cluster, each with its own part of the views")
    return GenerateFleet(runs)


def run_generate(args: argparse.Namespace, *, skip_unavailable: bool = False) -> int:
    """The generate stage; returns the exit code. With `skip_unavailable` (the `run` stage), missing
    weights, torch or GPU end it with a message and exit 0: the rendered data is complete, and the
    generation options are kept for a later `generate`. With --ray, on the cluster's GPUs."""
    settings, prompts, options = prepare_generation(args, skip_unavailable=skip_unavailable)
    out = Path(args.out)
    cluster = join(args, "generate")
    view = GenerateView(args.quiet)
    try:
        try:
            run = make_generation(args, settings, prompts, options, cluster, view)
        except Unavailable as exc:
            return report_generation(args, None, exc, skip_unavailable=skip_unavailable)
        say(
            f"dst3d generate: {len(run.views)} views x {args.images_per_view} image(s), shard "
            f"{args.shard.index}/{args.shard.count}: {run.total} to generate, {run.skipped} already done -> {out}"
        )
        try:
            while not run.poll(0.2):
                view.follow(run)
        except KeyboardInterrupt:
            run.cancel()
            close_generation(run)
            view.close()
            say(
                f"dst3d generate: interrupted after {run.written} new images; run the same command again to resume"
            )
            return 130
        finally:
            close_generation(run)
        view.close()
        return report_generation(args, run, run.error, skip_unavailable=skip_unavailable)
    finally:
        leave(cluster)


def close_generation(run: GenerateRun | GenerateFleet) -> None:
    """Release the worker(s) the run uses."""
    if isinstance(run, GenerateFleet):
        run.close()
    else:
        run.client.release()


def report_generation(
    args: argparse.Namespace,
    run: GenerateRun | GenerateFleet | None,
    error: GenerationError | None,
    *,
    skip_unavailable: bool,
) -> int:
    """Say how the generation ended; returns the exit code."""
    unavailable = isinstance(error, Unavailable) if run is None else run.state == "unavailable"
    if unavailable and skip_unavailable:
        remember_generation(args)
        say(_skipped_hint(args, cli_text(error)))
        return 0
    if error is not None:
        fail(error)
        return 2 if error.kind == "bad_input" else 1
    assert run is not None
    tiny = run.request["base"] == TINY
    rate = run.written / run.elapsed if run.elapsed > 0 else 0.0
    say(
        f"dst3d generate: {run.written} images written, {run.skipped} skipped (done before), in "
        f"{format_duration(run.elapsed)} ({rate:.2f} images/s)" + (" [tiny: noise images]" if tiny else "")
    )
    return 0


def merge_prompts(out: Path, path: str) -> None:
    """Write a --prompts file's groups into the dataset's prompts.jsonl (PromptError: nothing written)."""
    groups, unmatched = merge_prompt_file(out, load_prompt_file(path), f"file:{Path(path).name}")
    for line in unmatched:
        say(f"dst3d generate: warning: --prompts {line}; left out")
    count = sum(len(g.prompts) for g in groups)
    say(
        f"dst3d generate: --prompts {path}: {count} prompts for {len(groups)} classes or models -> {out / PROMPTS_FILE}"
    )
