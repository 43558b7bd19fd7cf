"""Print the scaling table (markdown): wall time, core- and GPU-hours and storage of a dataset on
1, 8 and 64 GPUs, and which stage is the bottleneck. The sums are `dst3d_addon/core/scaling.py`'s.

Run from the repository root:

    python -m tools.scaling_table                                   # 1,000 classes x 2,500 views
    python -m tools.scaling_table --render-ms 10700 --gpus 8 --cores-per-gpu 8 16 32   # 3D-DST's Cycles recipe
    python -m tools.scaling_table --generate-s 0.35 --gpus 4 32     # your own GPU's figure

The default inputs, and where each comes from:

- render: 80 ms per view per core, MEASURED on this project's 2-core CI-class machine (README,
  "Measured figures": the batch script end to end, `--workers 2` on 2 cores, 25.1 views/s, so
  79.7 ms per view per core; `tools/bench_render.py` gave 78.9 ms/view in one process for the
  85,568-triangle airliner and 32.3 ms for the 5,348-triangle sample). `--edges canny`, 512x512.
- generate: 0.58 s per image per GPU, PUBLISHED, NOT MEASURED here (no GPU has run this project
  yet): the diffusers documentation's "PyTorch 2.0" page reports 2.15 iterations/s for its
  SD 1.5 + ControlNet pipeline on an A100 at batch 16 (torch 2.0, fp16, SDPA, no torch.compile),
  that is 34.4 image-steps/s; 3D-DST's 20 DDIM steps make 20 / 34.4 = 0.58 s per image. The
  figure is the denoising loop (with guidance) only: text encoding and VAE decoding are not in it.
- bytes per view: 88,843, MEASURED: 20 views of assets/sample/airliner.glb at 512x512 (control
  3,768 + mask 3,097 + depth 67,387 + shaded render 13,339 + record 1,252; `--no-renders` saves
  the render's share).
- bytes per image: 587,055, MEASURED on the tiny pipeline's 512x512 PNGs (586,554) plus the
  generation record (501). Those images are noise, which compresses worse than a photograph, so
  take it as an upper bound for real images.
"""

from __future__ import annotations

import argparse

from dst3d_addon.core.scaling import Costs, Estimate, Job, cores_to_keep_up, estimate

#: Measured here (see the docstring): ms per view per core, bytes per view, bytes per image.
RENDER_MS = 80.0
VIEW_BYTES = 88_843
IMAGE_BYTES = 587_055
#: Published, not measured: the diffusers docs' A100 SD 1.5 + ControlNet figure, and 3D-DST's steps.
PUBLISHED_ITERATIONS_PER_S = 2.15
PUBLISHED_BATCH = 16
STEPS = 20
GENERATE_S = STEPS / (PUBLISHED_ITERATIONS_PER_S * PUBLISHED_BATCH)


def duration(hours: float) -> str:
    """A wall time as minutes, hours, or days with their hours."""
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d ({hours:,.0f} h)"


def size(n_bytes: float) -> str:
    """Decimal units, as disks are sold."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B"


def table(rows: list[Estimate]) -> str:
    """The markdown table of some estimates, one row each."""
    lines = [
        "| GPUs | CPU cores | render alone | generate alone | bottleneck | `run` (pipelined) "
        "| render, then generate | GPU-hours | core-hours | storage |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for e in rows:
        lines.append(
            f"| {e.job.gpus} | {e.job.cores} | {duration(e.render_hours)} | {duration(e.generate_hours)} "
            f"| {e.bottleneck} | **{duration(e.pipelined_hours)}** | {duration(e.sequential_hours)} "
            f"| {e.gpu_hours:,.0f} | {e.core_hours:,.0f} | {size(e.storage_bytes)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--views", type=int, default=2500, help="views per class")
    parser.add_argument("--images-per-view", type=int, default=1)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--cores-per-gpu", type=int, nargs="+", default=[8], help="render cores per GPU")
    parser.add_argument(
        "--render-ms", type=float, default=RENDER_MS, help="ms per view on one core (measured)"
    )
    parser.add_argument(
        "--generate-s",
        type=float,
        default=GENERATE_S,
        help="s per image on one GPU (default: published A100)",
    )
    parser.add_argument("--view-bytes", type=int, default=VIEW_BYTES, help="a view's files and record")
    parser.add_argument("--image-bytes", type=int, default=IMAGE_BYTES, help="an image and its record")
    args = parser.parse_args(argv)

    costs = Costs(args.render_ms / 1000, args.generate_s, args.view_bytes, args.image_bytes)
    rows = [
        estimate(Job(args.classes, args.views, gpus, cores, args.images_per_view), costs)
        for cores in args.cores_per_gpu
        for gpus in args.gpus
    ]
    published = " (published A100 figure, not measured)" if args.generate_s == GENERATE_S else ""
    print(
        f"{args.classes:,} classes x {args.views:,} views x {args.images_per_view} image(s) per view "
        f"= {rows[0].job.images:,} images; render {args.render_ms:g} ms/view per core, "
        f"generate {args.generate_s:.2f} s/image per GPU{published}, "
        f"{args.view_bytes:,} B per view + {args.image_bytes:,} B per image.\n"
    )
    print(table(rows))
    keep_up = cores_to_keep_up(costs, args.images_per_view)
    print(
        f"\nRender keeps up with generation from {keep_up:.2g} CPU cores per GPU; "
        "with fewer, render is the bottleneck."
    )


if __name__ == "__main__":
    main()
