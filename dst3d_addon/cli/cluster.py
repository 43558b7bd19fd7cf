"""`--ray [ADDRESS]` for the render, generate, run and kcf stages: its option and joining the cluster.

Without the option nothing here imports Ray. Ray never runs in Blender's process: a batch script
started by a Blender binary is told to run under a Python that has Ray instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ..core.cluster import FoldPlacement, parse_ray, place_folds
from .options import PROG, UsageError, cli_text, say
from .render_pool import blender_binary

#: The Ray the project is tested with (requirements.txt).
RAY_PIN = "ray==2.60.0"


def add_ray_option(group: argparse._ActionsContainer) -> None:
    """The `--ray` option (a stage's execution group)."""
    group.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster: auto (default: the cluster's RAY_ADDRESS), HOST:PORT, ray://HOST:PORT, "
        "or local (start Ray on this machine); --out must be a folder every node sees",
    )


def ray_modules() -> tuple[ModuleType, ModuleType]:
    """(cluster.connect, cluster.remote_process), or UsageError naming --ray when Ray is missing."""
    if blender_binary():
        raise UsageError(
            f"--ray: Ray does not run inside Blender; run the batch script with a Python that has Ray and "
            f"the bpy module (python tools/{PROG} ...)"
        )
    try:
        from ..cluster import connect, remote_process
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "ray"
        raise UsageError(
            f"--ray: this Python ({sys.executable}) cannot import {missing} ({exc}); install it "
            f"(pip install {RAY_PIN}), or run without --ray"
        ) from None
    return connect, remote_process


def join(args: argparse.Namespace, stage: str, *, gpus: int | None = None) -> Any:
    """Join the cluster `--ray` names (None without the option) after checking that every node
    sees `--out`; says which cluster it joined. `gpus` is what a local instance declares."""
    if getattr(args, "ray", None) is None:
        return None
    try:
        target = parse_ray(args.ray, os.environ)
    except ValueError as exc:
        raise UsageError(cli_text(exc)) from None
    connect, _ = ray_modules()
    cluster = connect.connect(target, gpus=gpus)
    connect.check_shared(cluster, Path(args.out))
    say(f"dst3d {stage}: on {cluster.describe()}")
    return cluster


def leave(cluster: Any) -> None:
    """Leave the cluster `join` joined (nothing without one)."""
    if cluster is not None:
        connect, _ = ray_modules()
        connect.disconnect()


#: Times a model's views go to another worker after theirs was lost, before the model fails.
RETRIES = 2


def render_pool_options(cluster: Any, args: argparse.Namespace, reserved: int = 0) -> dict[str, Any]:
    """RenderRun's keywords for a run on `cluster`: one single-threaded worker per CPU of the
    cluster less `reserved` (those other workers hold), or `--workers K` of them; started on the
    cluster, retried elsewhere when lost."""
    _, remote_process = ray_modules()
    given = "--workers" in getattr(args, "given", ())
    workers = args.workers if given else max(1, cluster.slots("CPU") - reserved)
    return {
        "workers": workers,
        "process_factory": remote_process.remote_factory(remote_process.Placement(cpus=1)),
        "retries": RETRIES,
        "threads": 1,
    }


def kcf_pool_options(cluster: Any, device: str, threads: int | None) -> tuple[FoldPlacement, dict[str, Any]]:
    """Where the kcf stage's folds go on `cluster` (a worker per fold, a GPU each when the cluster
    has them, else `threads` CPUs: core/cluster.py's `place_folds`), and KcfRun's keywords for it:
    as many workers at once as the cluster has slots, started on the cluster, started again when lost."""
    _, remote_process = ray_modules()
    nodes = [{k: float(v) for k, v in node.get("Resources", {}).items()} for node in cluster.nodes]
    placement = place_folds(nodes, device, threads)
    factory = remote_process.remote_factory(
        remote_process.Placement(cpus=placement.cpus, gpus=placement.gpus)
    )
    return placement, {"workers": placement.workers, "process_factory": factory, "retries": RETRIES}


def generation_workers(cluster: Any, device: str, tiny: bool) -> tuple[int, Any]:
    """(how many generation workers, their process factory) for a run on `cluster`: one per GPU
    (a CPU and a GPU each); one on a CPU with `--device cpu`, or for the tiny pipeline on a
    cluster without GPUs (it runs on the CPU anywhere). (0, None): there is nowhere to generate."""
    _, remote_process = ray_modules()
    gpus = cluster.slots("GPU")
    if device == "cpu" or (gpus == 0 and tiny and device == "auto"):
        return 1, remote_process.remote_factory(remote_process.Placement(cpus=1))
    if gpus == 0:
        return 0, None
    return gpus, remote_process.remote_factory(remote_process.Placement(cpus=1, gpus=1))
