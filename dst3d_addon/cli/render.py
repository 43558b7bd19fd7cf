"""The render stage's door: its options, and the run that plans the views and hands them to the
render pool (`render_pool.py`); also the hidden `_worker` stage each render worker runs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from ..core import catalog
from ..core.cad_files import check_cad_file
from ..core.errors import Dst3dError
from ..core.files import remove_stale_temps
from ..core.ids import is_id_part
from ..core.progress import Progress, format_duration
from ..core.render_plan import MAX_VIEWS, ModelJob, Shard, model_id_from_path, plan_render, unique_models
from ..core.render_settings import (
    AXES,
    DEFAULT_FIT,
    DEFAULT_RESOLUTION,
    DEFAULT_VIEWS,
    EDGE_MODES,
    RenderSettings,
)
from ..core.sampling import DEG, STRATEGIES, Distance, SamplingSpec, parse_strategy
from ..core.synsets import synset_name
from ..core.worker_pipe import Channel
from .cluster import add_ray_option, join, leave, render_pool_options
from .options import (
    PROG,
    Parser,
    UsageError,
    cli_text,
    fail,
    finite_float,
    parse_resolution,
    positive_float,
    positive_int,
    say,
    seed,
    shard,
    strategy,
)
from .render_pool import DEFAULT_MODEL_TIMEOUT, RenderRun

#: What one render worker (a Blender process) takes in memory, for capping --workers.
WORKER_MEMORY = 300 * 2**20


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
    src.add_argument("--azimuth-offset", type=finite_float("--azimuth-offset"), default=0.0, metavar="DEG")
    src.add_argument(
        "--elevation-offset", type=finite_float("--elevation-offset"), default=0.0, metavar="DEG"
    )

    v = r.add_argument_group("views")
    v.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    v.add_argument(
        "--views",
        type=positive_int("--views", most=MAX_VIEWS),
        default=None,
        metavar="N",
        help=f"views per model (default {DEFAULT_VIEWS}, or the grid's size)",
    )
    v.add_argument(
        "--seed", type=seed("--seed"), default=0, help="run seed; each view's seed derives from it"
    )
    v.add_argument("--resolution", type=parse_resolution, default=DEFAULT_RESOLUTION, metavar="W[xH]")
    v.add_argument(
        "--sampling", type=strategy, default="1", help="; ".join(f"{k}: {d}" for k, d in STRATEGIES.items())
    )
    v.add_argument(
        "--theta-std",
        type=finite_float("--theta-std"),
        default=0.0,
        metavar="DEG",
        help="in-plane rotation ~ N(0, DEG) (3D-DST: 0)",
    )
    dist = v.add_mutually_exclusive_group()
    dist.add_argument("--distance", type=positive_float("--distance"), metavar="D", help="fixed distance")
    dist.add_argument(
        "--random-distance",
        type=positive_float("--random-distance"),
        metavar="D",
        help="3D-DST's random distance: truncated normal, mean D, sd 0.5, in [D-0.5, D+1.5]",
    )
    dist.add_argument(
        "--fit",
        type=positive_float("--fit"),
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
        type=positive_int("--samples", most=65_536),
        default=32,
        help="Cycles samples for --edges canny-shaded (default 32, as 3D-DST)",
    )
    o.add_argument("--no-renders", action="store_true", help="do not keep renders/<id>.png")
    o.add_argument("--allow-mixed", action="store_true", help="write into a dataset made with other settings")

    x = r.add_argument_group("execution")
    x.add_argument(
        "--shard",
        type=shard,
        default=Shard(),
        metavar="I/N",
        help="render only shard I of N (0 <= I < N); every shard may write the same --out",
    )
    x.add_argument(
        "--workers",
        type=positive_int("--workers"),
        default=1,
        metavar="K",
        help="parallel Blender processes (default 1; capped to the cores and free memory); with --ray, "
        "render actors (default: one per CPU of the cluster)",
    )
    x.add_argument(
        "--model-timeout",
        type=positive_float("--model-timeout"),
        default=DEFAULT_MODEL_TIMEOUT,
        metavar="S",
        help=f"a model whose import or view sends nothing for S seconds fails alone (default {DEFAULT_MODEL_TIMEOUT:g})",
    )
    x.add_argument("--quiet", action="store_true", help="no progress bar")
    add_ray_option(x)


def settings_from_args(args: argparse.Namespace) -> RenderSettings:
    """RenderSettings from the parsed options."""
    if args.distance is not None:
        distance = Distance("fixed", args.distance)
    elif args.random_distance is not None:
        try:
            distance = Distance("random", args.random_distance)
        except ValueError as exc:
            raise UsageError(cli_text(exc)) from None
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


def check_model_options(args: argparse.Namespace) -> None:
    """Refuse --class-name, --synset, --forward and --up values that could not make a model, before
    any work (each would otherwise fail in every worker)."""
    if args.forward.lstrip("-") == args.up.lstrip("-"):
        raise UsageError(
            f"--up {args.up}: parallel to --forward {args.forward}; the up axis must be perpendicular to the front"
        )
    for option, value in (("--class-name", args.class_name), ("--synset", args.synset)):
        if value is not None and not value.strip():
            raise UsageError(f"--{option[2:]} {value!r}: must not be empty")
    key_option, key = ("--synset", args.synset) if args.synset else ("--class-name", args.class_name)
    if key is not None and not is_id_part(key):
        hint = "" if args.synset else "; or give --synset, which then names them"
        raise UsageError(
            f"{key_option} {key!r}: it names the dataset's folders, so use letters, digits and . _ + - "
            f"(not starting with '.'){hint}"
        )


def models_from_args(args: argparse.Namespace, missing: list[str] | None = None) -> list[ModelJob]:
    """The run's models, from --cad and --cad-csv (catalogue models that cannot be found go to
    `missing` when given, else refuse the run)."""
    models: list[ModelJob] = []
    check_model_options(args)
    if args.cad_csv is None and (args.cad_root or args.synsets):
        raise UsageError("--cad-root and --synsets go with --cad-csv")
    for path in args.cad:
        models.append(
            ModelJob(
                class_name=args.class_name or synset_name(args.synset) or "object",
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
        models.extend(
            catalog.jobs_from_catalog(args.cad_csv, args.cad_root, args.synsets, args.class_name, missing)
        )
    if not models and not missing:
        raise UsageError("no models: give --cad PATH or --cad-csv CSV --cad-root DIR")
    try:
        models, again = unique_models(models)
    except ValueError as exc:
        raise UsageError(cli_text(exc)) from None
    for model in again:
        say(f"dst3d render: warning: {model.cad_path} is given more than once; rendering it once")
    return models


def views_per_model(args: argparse.Namespace) -> int:
    """--views, defaulting to the grid's size for grid sampling (at most MAX_VIEWS either way)."""
    if args.views is not None:
        if args.views > MAX_VIEWS:
            raise UsageError(f"--views {args.views}: at most {MAX_VIEWS:,} views per model")
        return args.views
    grid = parse_strategy(args.sampling).grid_size
    if grid is not None and grid > MAX_VIEWS:
        raise UsageError(
            f"--sampling {args.sampling}: {grid:,} grid cells; at most {MAX_VIEWS:,} views per model"
        )
    return grid if grid is not None else DEFAULT_VIEWS


def worker_count(wanted: int) -> int:
    """--workers, capped to what this machine can hold (each render worker is a Blender process of
    about 300 MB, and more workers than cores only share them); says so when it caps."""
    cores = os.cpu_count() or 1
    available = memory_available()
    by_memory = max(1, int(available // WORKER_MEMORY)) if available else wanted
    workers = min(wanted, cores, by_memory)
    if workers < wanted:
        reason = f"{cores} cores" if workers == cores else f"{available / 2**30:.1f} GiB of free memory"
        say(f"dst3d render: --workers {wanted}: using {workers}, as this machine has {reason}")
    return workers


def memory_available() -> float | None:
    """Bytes of memory this machine has free now (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


RenderInputs = tuple[RenderSettings, list[ModelJob], int, list[str]]


def render_inputs(args: argparse.Namespace) -> RenderInputs | None:
    """(settings, models, views per model, catalogue models not found) from the options; None,
    after a line for each, when every catalogue model is missing (exit status 1)."""
    settings = settings_from_args(args)
    missing: list[str] = []
    models = models_from_args(args, missing)
    views = views_per_model(args)
    if not models:
        for line in missing:
            fail(line)
        return None
    return settings, models, views, missing


def run_render(args: argparse.Namespace, script: Path | None) -> int:
    """The render stage; returns the exit code (on the cluster `--ray` names, if given)."""
    inputs = render_inputs(args)
    if inputs is None:
        return 1
    cluster = join(args, "render")
    try:
        return render_views(args, script, *inputs, cluster)
    finally:
        leave(cluster)


def render_views(
    args: argparse.Namespace,
    script: Path | None,
    settings: RenderSettings,
    models: list[ModelJob],
    views: int,
    missing: list[str],
    cluster: object,
    *,
    pool: dict | None = None,
    runner: Callable[[RenderRun, Progress], None] | None = None,
) -> int:
    """Plan and render, then report. `pool`: RenderRun's worker keywords (default: this machine's,
    or the cluster's); `runner` runs the RenderRun instead of `run.run()` (the pipelined `run`
    stage, which generates while it renders)."""
    plan = plan_render(
        args.out,
        settings.as_dict(),
        models,
        views,
        args.shard,
        tool_version=__version__,
        allow_mixed=args.allow_mixed,
    )
    say(
        f"dst3d render: {len(models)} model(s) x {views} views, shard {args.shard.index}/{args.shard.count}: "
        f"{plan.total} to render, {plan.skipped} already done -> {plan.dataset.root}"
    )
    removed = remove_stale_temps(plan.dataset.root)
    if removed:
        say(f"dst3d render: removed {removed} temporary file(s) a stopped run left behind")
    progress = Progress(plan.total, "views", enabled=not args.quiet)
    start = time.monotonic()
    if pool is not None:
        pass
    elif cluster is not None:
        pool = render_pool_options(cluster, args)
    else:
        pool = {"workers": worker_count(args.workers) if plan.total else 1}
    run = RenderRun(
        plan, settings, script=script, progress=progress, model_timeout=args.model_timeout, **pool
    )
    for index, model in enumerate(models):
        if next(plan.views_of(index), None) is None:
            continue
        try:  # a file that cannot be a model never reaches Blender, and fails alone
            check_cad_file(model.cad_path)
        except Dst3dError as exc:
            run.fail_model(index, cli_text(exc))
        except (OSError, RecursionError, MemoryError, ValueError) as exc:
            run.fail_model(index, f"{model.cad_path}: cannot be checked ({type(exc).__name__}: {exc})")
    try:
        if runner is not None:
            runner(run, progress)
        else:
            run.run()
    except KeyboardInterrupt:
        progress.close()
        say(f"dst3d render: interrupted after {run.written} new views; run the same command again to resume")
        return 130
    progress.close()
    elapsed = (run.ended or time.monotonic()) - start  # the pipelined run generates after it
    rate = run.written / elapsed if elapsed > 0 else 0.0
    duplicates = run.records.duplicates
    duplicates = f", {duplicates} already written by another run" if duplicates else ""
    lost = f", {run.lost} handed out again after their worker was lost" if run.lost else ""
    say(
        f"dst3d render: {run.written} views written, {plan.skipped} skipped (done before){duplicates}, "
        f"{len(run.failed) + len(missing)} model(s) failed{lost}, in {format_duration(elapsed)} ({rate:.2f} views/s)"
    )
    for key, warnings in sorted(run.warnings.items()):
        for warning in warnings:
            say(f"dst3d: warning: {key}: {warning}")
    for _key, reason in sorted(run.failed.items()):
        fail(reason)
    for line in missing:
        fail(line)
    return 1 if run.failed or missing else 0


def run_worker(argv: Sequence[str]) -> int:
    """The hidden `_worker` stage: serve render tasks (imports bpy) over the worker pipe."""
    Parser(prog=f"{PROG} _worker").parse_args(list(argv))
    channel = Channel.take_stdout()  # before bpy prints anything
    from ..blender.render_worker import serve

    try:
        return serve(sys.stdin.buffer, channel)
    except KeyboardInterrupt:
        return 130
