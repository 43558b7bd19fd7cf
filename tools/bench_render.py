"""Benchmark of the render stage against 3D-DST's recipe, and of --workers scaling.

    .venv/bin/python -m tools.bench_render [--views 12] [--size 512] [--recipe-views 3]

Per view (control image + mask + depth + record, written to a dataset folder) on the sample
airliner and on a ~100k-triangle version of it, then 3D-DST's recipe on the same views (Cycles 32
samples with denoising, Canny 100/200 on the shaded render), and the ratio. Then the batch script
end to end with --workers 1..cores on the sample model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "assets" / "sample" / "airliner.glb"


def dense_copy(folder: Path) -> Path:
    """The sample airliner subdivided twice (about 86k triangles), as GLB."""
    import trimesh

    mesh = trimesh.load(SAMPLE, force="mesh")
    mesh = mesh.subdivide().subdivide()
    path = folder / "airliner_dense.glb"
    mesh.export(path)
    return path


def per_view(path: Path, views: int, recipe_views: int, size: int, folder: Path) -> dict:
    """Seconds per view of our canny path and of 3D-DST's recipe, on the same poses."""
    import bpy

    from dst3d_addon.blender.cad_import import import_cad
    from dst3d_addon.blender.scene_render import SceneRenderer
    from dst3d_addon.core import control, files
    from dst3d_addon.core.render_plan import ModelJob, model_id_from_path
    from dst3d_addon.core.render_settings import RenderSettings
    from dst3d_addon.core.sampling import Distance, SamplingSpec, parse_strategy
    from dst3d_addon.core.views import Mesh, render_view, view_pose

    bpy.ops.wm.read_factory_settings(use_empty=True)  # no default cube in the renders
    imported = import_cad(str(path))
    mesh = Mesh(imported.vertices, imported.faces, imported.to_object)
    job = ModelJob("airliner", model_id_from_path(path), str(path))
    spec = SamplingSpec(parse_strategy("1"), Distance("fit", 0.8))
    settings = RenderSettings(size, size, spec)
    out = folder / f"ours-{job.model_id}"

    render_view(out, settings, job, 0, mesh)  # warm-up (imports, allocations)
    start = time.perf_counter()
    for view in range(views):
        render_view(out, settings, job, view, mesh)
    ours = (time.perf_counter() - start) / views

    renderer = SceneRenderer(bpy.context.scene, [imported.object], settings.intrinsics, "shaded", samples=32)
    recipe_out = folder / f"recipe-{job.model_id}"
    start = time.perf_counter()
    for view in range(recipe_views):
        _, pose = view_pose(settings, job, view, mesh)
        image = renderer.render(pose)
        edges = control.canny(image)
        files.write_png(recipe_out / f"{view:06d}.png", edges)
    recipe = (time.perf_counter() - start) / recipe_views
    return {"triangles": len(mesh.faces), "ours": ours, "recipe": recipe}


def workers_scaling(views: int, size: int, folder: Path) -> list[tuple[int, float]]:
    """Views per second of the whole batch script (start-up included) for 1..cores workers."""
    cores = os.cpu_count() or 1
    rates = []
    for workers in sorted({1, *range(2, cores + 1)}):
        out = folder / f"workers-{workers}"
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "tools" / "dst3d_batch.py"),
                "render",
                "--cad",
                str(SAMPLE),
                "--out",
                str(out),
                "--views",
                str(views),
                "--resolution",
                str(size),
                "--workers",
                str(workers),
                "--quiet",
            ],
            check=True,
            capture_output=True,
        )
        rates.append((workers, views / (time.perf_counter() - start)))
    return rates


def report(line: str) -> None:
    """Figures go to stderr: Blender prints its own progress on stdout."""
    print(line, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=12, help="views per mesh for our path")
    parser.add_argument("--recipe-views", type=int, default=3, help="views per mesh for 3D-DST's recipe")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--scaling-views", type=int, default=384, help="views for the --workers runs")
    args = parser.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="dst3d-bench-"))
    with tempfile.TemporaryDirectory(prefix="dst3d-bench-") as tmp:
        folder = Path(tmp)
        meshes = [SAMPLE, dense_copy(folder)]
        report(f"render stage, {args.size}x{args.size}, per view (control + mask + depth + record written):")
        for path in meshes:
            r = per_view(path, args.views, args.recipe_views, args.size, folder)
            report(
                f"  {r['triangles']:>7,} triangles: ours {r['ours'] * 1000:7.1f} ms/view | "
                f"3D-DST recipe (Cycles 32 spp + denoise + Canny) {r['recipe']:6.2f} s/view | "
                f"ratio {r['recipe'] / r['ours']:6.1f}x"
            )
        report(f"batch script end to end ({args.scaling_views} views, start-up included):")
        base = None
        for workers, rate in workers_scaling(args.scaling_views, args.size, folder):
            base = base or rate
            report(f"  --workers {workers}: {rate:6.2f} views/s  ({rate / base:4.2f}x)")


if __name__ == "__main__":
    main()
