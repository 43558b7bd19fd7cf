"""The generate and run stages' door: their options, and the loop that drives the generate
stage (`generation/run.py`) with a progress bar, Ctrl-C and one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

from ..core.dataset import ANNOTATIONS, DATASET_JSON, Dataset
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
from ..generation.run import GenerateRun, RunOptions
from .options import UsageError, cli_text, device, fail, finite_float, positive_int, say, seed, shard
from .render import run_render


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


def run_generate(args: argparse.Namespace, *, skip_unavailable: bool = False) -> int:
    """The generate stage; returns the exit code. With `skip_unavailable` (the `run` stage), missing
    weights, torch or GPU end it with a message and exit 0: the rendered data is complete, and the
    generation options are kept for a later `generate`."""
    if not skip_unavailable:
        taken = recall_generation(args)
        if taken:
            say(f"dst3d generate: using {', '.join(taken)} as the skipped run gave them (dataset.json)")
    settings = generation_settings_from_args(args)
    prompts = PromptSource.load(settings.prompt, settings.negative_prompt, settings.captions)
    if args.prompts is not None and (Path(args.out) / ANNOTATIONS).is_file():
        merge_prompts(Path(args.out), args.prompts)
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
        say(f"dst3d generate: {message}")

    def step(done: int, steps: int) -> None:
        if progress is not None:
            progress.set_note(f"step {done}/{steps}")

    def images(n: int) -> None:
        if progress is not None:
            progress.update(n)

    run = GenerateRun(out, settings, prompts, options, client, log=log, on_images=images, on_step=step)
    tiny = run.request["base"] == TINY
    say(
        f"dst3d generate: {len(run.views)} views x {args.images_per_view} image(s), shard "
        f"{args.shard.index}/{args.shard.count}: {run.total} to generate, {run.skipped} already done -> {out}"
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
        say(
            f"dst3d generate: interrupted after {run.written} new images; run the same command again to resume"
        )
        return 130
    finally:
        client.release()
    if progress is not None:
        progress.close()
    if run.state == "unavailable" and skip_unavailable:
        remember_generation(args)
        say(_skipped_hint(args, cli_text(run.error)))
        return 0
    if run.error is not None:
        fail(run.error)
        return 2 if run.error.kind == "bad_input" else 1
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


def run_all(args: argparse.Namespace, script: Path | None) -> int:
    """The `run` stage: render, then generate (skipped with a message where it cannot run)."""
    if args.prompts is not None:  # a bad prompt file is refused before anything is rendered
        if not Path(args.prompts).is_file():
            raise UsageError(f"--prompts {args.prompts}: no such file")
        load_prompt_file(args.prompts)
    code = run_render(args, script)
    if code != 0:
        return code
    return run_generate(args, skip_unavailable=True)
