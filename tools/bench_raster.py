"""Time the numpy rasteriser and the control images on UV spheres of ~5k and ~100k triangles.

Run from the repository root:  python -m tools.bench_raster [--size 512] [--repeat 10]

The sphere fills about half the image area, seen from a few poses; the figures are the median
and the best time per view, in milliseconds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np

from dst3d_addon.core.camera import Intrinsics, Pose, extrinsics
from dst3d_addon.core.control import canny, geometry_edges, shaded_image
from dst3d_addon.core.raster import rasterize


def uv_sphere(n_lat: int, n_lon: int, radius: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, faces (2 n_lon (n_lat - 1) triangles) and unit normals of a UV sphere."""
    th = np.linspace(0.0, math.pi, n_lat + 1)[1:-1]
    ph = np.linspace(0.0, 2 * math.pi, n_lon, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    ring = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
    normals = np.vstack([[0.0, 0.0, 1.0], ring, [0.0, 0.0, -1.0]])
    i = np.arange(n_lat - 2)[:, None]
    j = np.arange(n_lon)[None, :]
    a = 1 + i * n_lon + j
    b = 1 + i * n_lon + (j + 1) % n_lon
    c, d = a + n_lon, b + n_lon
    body = [np.stack([a, c, d], -1).reshape(-1, 3), np.stack([a, d, b], -1).reshape(-1, 3)]
    top = np.stack([np.zeros(n_lon, int), a[0], b[0]], -1)
    bottom = np.stack([np.full(n_lon, len(normals) - 1), d[-1], c[-1]], -1)
    return normals * radius, np.concatenate([top, *body, bottom]), normals


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, best) wall time of fn() in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image width and height (px)")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per pose")
    args = parser.parse_args()

    intr = Intrinsics.from_lens(args.size, args.size)
    # A sphere of radius 0.5 covering half the image: its angular radius a with tan a = r_px / M.
    r_px = args.size * math.sqrt(0.5 / math.pi)
    distance = 0.5 / math.sin(math.atan(r_px / intr.viewport))
    poses = [Pose(0.3, 0.2, 0.1, distance), Pose(2.0, -0.6, -0.7, distance), Pose(-1.2, 1.1, 0.4, distance)]

    print(
        f"{args.size}x{args.size}, sphere at distance {distance:.3f}, {args.repeat} runs x {len(poses)} poses"
    )
    print(f"{'mesh':>16} {'step':>26} {'median ms':>10} {'best ms':>9}")
    for n_lat, n_lon in ((36, 72), (158, 316)):
        V, F, N = uv_sphere(n_lat, n_lon)
        label = f"{len(F)} tris"
        rows: dict[str, list[tuple[float, float]]] = {}
        coverage = []
        for pose in poses:
            R, C = extrinsics(pose)
            flat = rasterize(V, F, R, C, intr)
            smooth = rasterize(V, F, R, C, intr, N)
            coverage.append(flat.mask.mean())
            shaded = shaded_image(smooth)
            steps = {
                "rasterize": lambda V=V, F=F, R=R, C=C: rasterize(V, F, R, C, intr),
                "rasterize + vertex normals": lambda V=V, F=F, N=N, R=R, C=C: rasterize(V, F, R, C, intr, N),
                "geometry_edges": lambda r=flat: geometry_edges(r),
                "shaded_image": lambda r=smooth: shaded_image(r),
                "canny(shaded)": lambda s=shaded: canny(s),
            }
            for name, fn in steps.items():
                rows.setdefault(name, []).append(timed(fn, args.repeat))
        for name, results in rows.items():
            median = statistics.median(m for m, _ in results)
            best = min(b for _, b in results)
            print(f"{label:>16} {name:>26} {median:10.1f} {best:9.1f}")
        print(f"{'':>16} {'(image covered)':>26} {100 * statistics.mean(coverage):9.1f}%")


if __name__ == "__main__":
    main()
