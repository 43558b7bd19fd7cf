"""Seconds per view of the Blender-rendered edge modes (Freestyle lines, 3D-DST's shaded render).

    .venv/bin/python -m tools.bench_scene_render [--size 512] [--views 4] [--samples 32] [--threads N]

Meshes: Suzanne with one Catmull-Clark level (3,936 triangles), and the same surface cut into
25 times as many faces (98,400 triangles): the same lines, 25 times the geometry. Per mesh and
mode: the set-up (SceneRenderer()), the first view, and the mean of the following views.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time


def monkey(cuts: int):
    """A fresh scene holding Suzanne, one subdivision level, then `cuts` extra cuts per edge."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add(size=1.0)
    obj = bpy.context.active_object
    modifier = obj.modifiers.new("subdivision", "SUBSURF")
    modifier.levels = modifier.render_levels = 1
    bpy.ops.object.modifier_apply(modifier=modifier.name)
    if cuts:
        bpy.ops.object.mode_set(mode="EDIT")
        bpy.ops.mesh.select_all(action="SELECT")
        bpy.ops.mesh.subdivide(number_cuts=cuts)
        bpy.ops.object.mode_set(mode="OBJECT")
    triangles = sum(len(p.vertices) - 2 for p in obj.data.polygons)
    return bpy.context.scene, obj, triangles


def bench(mode: str, cuts: int, args: argparse.Namespace) -> dict:
    from dst3d_addon.blender.scene_render import SceneRenderer
    from dst3d_addon.core.camera import Intrinsics, Pose

    scene, obj, triangles = monkey(cuts)
    intr = Intrinsics.from_lens(args.size, args.size)
    poses = [
        Pose(2 * math.pi * k / (args.views + 1), 0.5 * math.sin(k), 0.3 * math.cos(k), 2.2)
        for k in range(args.views + 1)
    ]
    start = time.perf_counter()
    renderer = SceneRenderer(scene, [obj], intr, mode, samples=args.samples, threads=args.threads)
    setup = time.perf_counter() - start
    try:
        start = time.perf_counter()
        renderer.render(poses[0])
        first = time.perf_counter() - start
        start = time.perf_counter()
        for pose in poses[1:]:
            renderer.render(pose)
        rest = (time.perf_counter() - start) / args.views
    finally:
        renderer.close()
    return {"triangles": triangles, "setup": setup, "first": first, "rest": rest}


def report(line: str) -> None:
    """Figures go to stderr: Blender prints its own progress on stdout."""
    print(line, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image width and height (px)")
    parser.add_argument("--views", type=int, default=4, help="views after the first, per mesh and mode")
    parser.add_argument("--samples", type=int, default=32, help="Cycles samples of the shaded mode")
    parser.add_argument("--threads", type=int, default=None, help="render threads (default: all cores)")
    args = parser.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="dst3d-bench-"))
    report(
        f"{args.size}x{args.size}, {os.cpu_count()} cores, threads {args.threads or 'auto'}; "
        f"shaded = Cycles {args.samples} spp + OpenImageDenoise"
    )
    for cuts in (0, 4):
        for mode in ("freestyle", "shaded"):
            r = bench(mode, cuts, args)
            report(
                f"  {r['triangles']:>7,} triangles  {mode:9s}: {r['rest']:6.2f} s/view "
                f"(first view {r['first']:5.2f} s, set-up {r['setup']:5.2f} s)"
            )


if __name__ == "__main__":
    main()
