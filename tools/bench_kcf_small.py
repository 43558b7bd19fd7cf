"""Does KCF find planted errors on a small dataset, on a CPU? ROC AUC per mesh, view count and variant.

Run from the repository root:

    python -m tools.bench_kcf_small                       # chair and car, 50 and 200 views, all variants
    python -m tools.bench_kcf_small --meshes car --views 50 --variants content+renders \\
        --kcf-args "--epochs 40"                          # one cell, with other kcf options

For each procedural mesh of tools/bench_meshes.py (never used by a test) and each view count it
renders the views at 128 px (3D-DST's strategy 3: all azimuths, elevation ~ N(30, 20 deg)), picks a
seeded quarter of the views as errors, and runs the kcf stage as a user would, on copies of the
dataset, in these variants (tools/kcf_bench_data.py plants the errors):

- `labels`: the quarter's azimuth labels turned by 180 degrees; the renders judged (plain KCF);
- `content`: labels untouched, the quarter's stand-in "generated" images show the model turned by
  180 degrees; the generated images judged (plain KCF);
- `content+renders`: the same, each fold also training on the renders of every view
  (`--train-renders`).

It prints, per run, the ROC AUC of the scores against the planted errors (1 = every error ranked
above every right image, 0.5 = chance), the held-out accuracy at pi/6 against chance, the share of
errors left after `filter --keep-fraction 0.75`, and the time the kcf stage took.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dst3d_addon.kcf.metrics import roc_auc
from tools.bench_meshes import write_mesh
from tools.kcf_bench_data import SCRIPT, plant_content, render, turn_labels, view_ids, wrong_quarter

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("labels", "content", "content+renders")
SIZE = 128


def dataset(work: Path, mesh: str, views: int, seed: int) -> tuple[Path, Path, set[str]]:
    """(the rendered views, the same views of the model turned by 180 degrees, the planted quarter)."""
    base, turned = work / f"{mesh}-{views}" / "base", work / f"{mesh}-{views}" / "turned"
    obj = write_mesh(mesh, work / f"{mesh}.obj")
    if not (base / "annotations.jsonl").is_file():
        render(obj, mesh, base, views, SIZE)
    if not (turned / "annotations.jsonl").is_file():
        render(obj, mesh, turned, views, SIZE, azimuth_offset=180.0)
    return base, turned, wrong_quarter(view_ids(base), seed)


def run_variant(
    base: Path, turned: Path, wrong: set[str], variant: str, out: Path, kcf_args: list[str]
) -> dict:
    """Run kcf and filter on a fresh copy of `base` with the errors of `variant`; returns the figures."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out)
    if variant == "labels":
        turn_labels(out, wrong)
        images = ["--images", "renders"]
    else:
        plant_content(out, turned, wrong)
        images = [
            "--images",
            "generated",
            "--train-renders" if variant == "content+renders" else "--no-train-renders",
        ]
    command = [sys.executable, str(SCRIPT), "kcf", "--out", str(out), *images, "--device", "cpu", "--quiet"]
    start = time.monotonic()
    result = subprocess.run([*command, *kcf_args], capture_output=True, text=True, cwd=ROOT)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"kcf failed on {out}: {result.stderr.strip()}")
    kcf = json.loads((out / "kcf.json").read_text())
    images_ = kcf["images"]
    auc = roc_auc([e["score"] for e in images_], [e["id"] in wrong for e in images_])
    subprocess.run(
        [sys.executable, str(SCRIPT), "filter", "--out", str(out), "--keep-fraction", "0.75", "--force"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    kept = [json.loads(line) for line in (out / "keep.jsonl").read_text().splitlines()]
    folds = kcf["folds"]
    return {
        "auc": auc,
        "accuracy": [f["accuracy"]["pi_6"] for f in folds],
        "chance": [f.get("chance") for f in folds],
        "overall_accuracy": kcf["accuracy"]["pi_6"],
        "overall_chance": kcf.get("chance"),
        "learned": kcf.get("learned"),
        "wrong_kept": sum(k["id"] in wrong for k in kept) / max(1, len(kept)),
        "seconds": seconds,
        "settings": kcf["settings"],
        "warnings": [line for line in result.stderr.splitlines() if "warning" in line.lower()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", nargs="+", default=["chair", "car"])
    parser.add_argument("--views", nargs="+", type=int, default=[50, 200])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=7, help="which quarter of the views is wrong")
    parser.add_argument(
        "--kcf-args",
        default="--threads 1",
        help="more kcf options, one string (default --threads 1: on a shared machine, torch threads "
        "that wait for a core cost far more than they give)",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_kcf_small")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    kcf_args = shlex.split(args.kcf_args)
    print(
        f"kcf options: {' '.join(kcf_args) or '(defaults)'}; errors: a quarter of the views (seed {args.seed})"
    )
    print(f"{'mesh':8} {'views':>5} {'variant':16} {'AUC':>6} {'acc@pi/6':>9} {'chance':>7} "
          f"{'wrong kept':>10} {'time':>7}")  # fmt: skip
    rows = []
    for mesh in args.meshes:
        for views in args.views:
            base, turned, wrong = dataset(args.work, mesh, views, args.seed)
            for variant in args.variants:
                out = args.work / f"{mesh}-{views}" / variant.replace("+", "_")
                r = run_variant(base, turned, wrong, variant, out, kcf_args)
                flag = "" if r["learned"] else "  (did not learn: filter refuses without --force)"
                print(
                    f"{mesh:8} {views:5d} {variant:16} {r['auc']:6.3f} {100 * r['overall_accuracy']:8.1f}% "
                    f"{100 * r['overall_chance']:6.1f}% "
                    f"{100 * r['wrong_kept']:9.1f}% {r['seconds']:6.0f}s{flag}",
                    flush=True,
                )
                rows.append({"mesh": mesh, "views": views, "variant": variant, **r})
    if args.json:
        args.json.write_text(json.dumps({"kcf_args": kcf_args, "seed": args.seed, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
