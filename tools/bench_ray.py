"""Benchmark: the render stage on Ray against the local process pool, on the same cores.

    python tools/bench_ray.py                       # 1200 views, 512 px, 3 rounds, a local Ray instance
    python tools/bench_ray.py --views 1000 --rounds 5
    python tools/bench_ray.py --address HOST:PORT   # also on a running cluster

Each round renders the sample airliner into a fresh folder with `--workers K` (K = this machine's
cores) and with `--ray local` (one actor per core), alternating, and reads the views/s each run
prints (from its first worker's start to its last record, so worker start-up counts, Ray's own
start does not) and the command's wall time (which counts it). The target of issue 14: Ray's
views/s within 15 % of the local pool's, i.e. the engine's overhead per view is small.
`--pipeline` also times `run --ray local` with the tiny pipeline: the time from the first
rendered view to the first generated image, which the run prints.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "dst3d_batch.py"
SAMPLE = ROOT / "assets" / "sample" / "airliner.glb"
RATE = re.compile(r"views written.*\(([\d.]+) views/s\)")
FIRST_IMAGE = re.compile(r"the first image came \S+ \(([\d.]+) s\) after the first rendered view")


def batch(
    stage: str, views: int, resolution: int, out: Path, extra: list[str], env: dict[str, str]
) -> tuple[str, float]:
    """(stderr, wall seconds) of one batch command on the sample model; stops the bench if it fails."""
    command = [sys.executable, str(SCRIPT), stage, "--cad", str(SAMPLE), "--views", str(views)]
    command += ["--resolution", str(resolution), "--out", str(out), "--quiet", *extra]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_ray: {stage} {' '.join(extra)} failed:\n{proc.stderr}")
    return proc.stderr, wall


def render(
    out: Path, views: int, resolution: int, extra: list[str], env: dict[str, str]
) -> tuple[float, float]:
    """(views/s the run prints, wall seconds of the command) of one render."""
    stderr, wall = batch("render", views, resolution, out, extra, env)
    match = RATE.search(stderr)
    if match is None:
        raise SystemExit(f"bench_ray: no rate in the output:\n{stderr}")
    return float(match.group(1)), wall


def pipeline(work: Path, views: int, env: dict[str, str]) -> tuple[float | None, float, str]:
    """(first image after the first view in s, wall s, the run's output) of `run --ray local`."""
    extra = ["--ray", "local", "--pipeline", "tiny", "--steps", "2", "--device", "cpu", "--batch-size", "2"]
    stderr, wall = batch("run", views, 128, work / "run", extra, env)
    match = FIRST_IMAGE.search(stderr)
    return (float(match.group(1)) if match else None), wall, stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=1200)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--address", help="also render on this running cluster (HOST:PORT)")
    parser.add_argument("--pipeline", action="store_true", help="also time `run --ray local` (tiny pipeline)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ways = {"local pool": ["--workers", str(args.workers)], "ray local": ["--ray", "local"]}
    if args.address:
        ways["ray cluster"] = ["--ray", args.address]
    rates: dict[str, list[float]] = {name: [] for name in ways}
    walls: dict[str, list[float]] = {name: [] for name in ways}
    print(
        f"bench_ray: {args.views} views of {SAMPLE.name} at {args.resolution} px, {args.rounds} rounds, "
        f"{os.cpu_count()} cores, --workers {args.workers}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="dst3d-bench-ray-") as work:
        for round_ in range(args.rounds):
            for name, extra in ways.items():
                rate, wall = render(
                    Path(work) / f"{name}-{round_}".replace(" ", "-"), args.views, args.resolution, extra, env
                )
                rates[name].append(rate)
                walls[name].append(wall)
                print(
                    f"  round {round_ + 1} {name:11s} {rate:7.2f} views/s, command {wall:6.1f} s", flush=True
                )
        base = statistics.median(rates["local pool"])
        print("median:")
        for name in ways:
            rate = statistics.median(rates[name])
            print(
                f"  {name:11s} {rate:7.2f} views/s ({rate / base:6.1%} of the local pool), "
                f"command {statistics.median(walls[name]):6.1f} s"
            )
        if args.pipeline:
            first, wall, stderr = pipeline(Path(work), 24, env)
            shown = f"{first:.1f} s" if first is not None else "not printed"
            print(
                f"run --ray local, 24 views, tiny pipeline: first image after the first view {shown}, command {wall:.1f} s"
            )
            if first is None:
                print(stderr)


if __name__ == "__main__":
    main()
