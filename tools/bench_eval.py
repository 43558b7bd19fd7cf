"""Does the filter buy back what wrong labels cost? A CPU experiment anyone can rerun (minutes).

    python -m tools.bench_eval [--work runs/bench_eval] [--per-class 6] [--test-models 2] [--views 40]
        [--size 64] [--epochs 20] [--kcf-epochs 20] [--folds 4] [--keep 0.75] [--seeds 0 1 2] [--threads 2]

1. Procedural models (`tools/bench_models.py`): two classes (car, chair), `--per-class` models
   each; the last `--test-models` of each class are held out.
2. Renders of the kept models (`train/`) and of the held-out ones (`test/`), `--views` views a
   model at `--size` px, 3D-DST's sampling strategy 3 (all azimuths, elevation ~ N(30, 20 deg)).
3. Two training sets: `clean/` (a copy of train/) and `planted/`, where a seeded quarter of each
   class's views have their azimuth label turned by 180 degrees, R and C turned with it
   (shared/spec/kcf-tests.md: plain KCF judges the images it trains on, so a wrong label is a
   fair stand-in for a wrong generated image). Which views were turned is written only to
   `<work>/planted.json`, outside every dataset; the images, masks and boxes stay true, and every
   record is rewritten the same way, so nothing in the dataset tells the turned ones apart.
4. For each training set: `eval` on test/ with every image, then `kcf` + `filter --keep-fraction`
   and `eval` again with the kept images; KCF's ROC AUC for the planted labels and the share of
   them the filter kept. As a control, `eval` with as many images kept at random (per class, as
   the filter keeps them): the filter's choice against its mere size.
5. The whole experiment runs once per `--seeds` value (the seed of the models' proportions is fixed;
   the seed picks the planted views, the folds, the initialisation and the batch order), and the
   table gives the mean and the spread.

Every stage is the batch script's own (`cli.main`), so the work folder resumes like any dataset:
run the same command again and it redoes only what is missing. It prints a Markdown table and
writes `<work>/bench_eval.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from dst3d_addon import cli
from dst3d_addon.core.camera import Intrinsics, Pose, camera_record
from dst3d_addon.core.dataset import ANNOTATIONS
from dst3d_addon.core.files import read_records, write_bytes_atomic
from dst3d_addon.core.keep import KEEP, select_kept, write_keep
from dst3d_addon.core.seeds import derive_seed
from dst3d_addon.kcf.metrics import roc_auc
from tools.bench_models import CLASSES, make_models

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "dst3d_batch.py"


def stage(*argv: object) -> None:
    """Run one stage of the batch script in this process; stop the bench if it fails."""
    code = cli.main([str(a) for a in argv], SCRIPT)
    if code != 0:
        raise SystemExit(f"bench_eval: {argv[0]} failed with exit status {code}")


def render(out: Path, models: dict[str, list[Path]], args: argparse.Namespace) -> None:
    for cls, paths in models.items():
        cads = [x for p in paths for x in ("--cad", p)]
        stage(
            "render", *cads, "--class-name", cls, "--views", args.views, "--resolution", args.size,
            "--sampling", "3", "--out", out, "--workers", args.threads, "--quiet",
        )  # fmt: skip


def rewrite_records(out: Path, turned: set[str]) -> None:
    """Rewrite every record of `out`, turning the azimuth of the views in `turned` by 180 degrees
    (camera recomputed from the pose, as for the others): R' = R diag(-1, -1, 1), C' = diag(-1, -1, 1) C."""
    lines = []
    for r in read_records(out / ANNOTATIONS):
        p = r["pose"]
        azimuth = p["azimuth"] + (math.pi if r["id"] in turned else 0.0)
        pose = Pose(
            math.remainder(azimuth, 2 * math.pi) % (2 * math.pi), p["elevation"], p["theta"], p["distance"]
        )
        cam = r["camera"]
        intr = Intrinsics(cam["width"], cam["height"], cam["viewport"], tuple(cam["principal"]))
        lines.append(json.dumps({**r, "pose": pose.as_dict(), "camera": camera_record(pose, intr)}) + "\n")
    write_bytes_atomic(out / ANNOTATIONS, "".join(lines).encode("utf-8"))


def pick_planted(train: Path, seed: int, fraction: float = 0.25) -> list[str]:
    """A seeded `fraction` of each class's view ids."""
    ids = sorted(r["id"] for r in read_records(train / ANNOTATIONS))
    chosen = []
    for cls in sorted({i.split("/")[0] for i in ids}):
        group = [i for i in ids if i.split("/")[0] == cls]
        rng = np.random.default_rng(derive_seed("bench-eval-plant", seed, cls))
        chosen += rng.choice(group, size=round(fraction * len(group)), replace=False).tolist()
    return sorted(chosen)


def keep_random(folder: Path, seed: int, fraction: float) -> None:
    """Replace the folder's keep set by a seeded random one of the filter's size (per class)."""
    entries = json.loads((folder / "kcf.json").read_text())["images"]
    rng = np.random.default_rng(derive_seed("bench-eval-random-keep", seed))
    scored = [{**e, "score": float(x)} for e, x in zip(entries, rng.random(len(entries)), strict=True)]
    write_keep(folder, select_kept(scored, keep_fraction=fraction, per_class=True))


def training(args: argparse.Namespace, seed: int, epochs: int) -> list[object]:
    return [
        "--backbone", "resnet-tiny", "--pretrained", "none", "--image-size", args.size, "--epochs", epochs,
        "--batch-size", 16, "--optimizer", "adamw", "--lr", 0.003, "--seed", seed, "--threads", args.threads,
        "--device", "cpu", "--quiet",
    ]  # fmt: skip


def evaluate(train: Path, test: Path, to: Path, args: argparse.Namespace, seed: int, *extra: object) -> dict:
    stage(
        "eval", "--train", train, "--train-images", "renders", "--test", test, "--test-images", "renders",
        "--to", to, *training(args, seed, args.epochs), *extra,
    )  # fmt: skip
    results = json.loads((to / "results.json").read_text())
    return {
        "overall": results["overall"],
        "classes": results["classes"],
        "train_objects": len(json.loads((to / "job.json").read_text())["train"]["files"]),
    }


def one_seed(work: Path, train: Path, test: Path, args: argparse.Namespace, seed: int) -> dict:
    """The four evals and two KCF runs of one seed."""
    base = work / f"seed{seed}"
    planted_file = base / "planted.json"
    sets = {"clean": base / "clean", "planted": base / "planted"}
    for name, folder in sets.items():
        if not (folder / ANNOTATIONS).is_file():
            shutil.copytree(train, folder, ignore=shutil.ignore_patterns(".*"))
            turned = pick_planted(train, seed) if name == "planted" else []
            rewrite_records(folder, set(turned))
            if name == "planted":
                base.mkdir(parents=True, exist_ok=True)
                planted_file.write_text(json.dumps(turned, indent=0))
    turned = set(json.loads(planted_file.read_text()))
    row: dict[str, dict] = {}
    for name, folder in sets.items():
        row[name] = evaluate(folder, test, base / f"eval-{name}", args, seed, "--all")
        stage(
            "kcf", "--out", folder, "--images", "renders", "--folds", args.folds,
            *training(args, seed, args.kcf_epochs),
        )  # fmt: skip
        stage("filter", "--out", folder, "--keep-fraction", args.keep)
        kcf = json.loads((folder / "kcf.json").read_text())
        kept = [json.loads(line)["id"] for line in (folder / "keep.jsonl").read_text().splitlines()]
        filtered = evaluate(folder, test, base / f"eval-{name}-filtered", args, seed)
        wrong = turned if name == "planted" else set()
        filtered["kept_planted"] = sum(i in wrong for i in kept) / len(kept)
        if name == "planted":
            filtered["auc"] = roc_auc(
                [e["score"] for e in kcf["images"]], [e["id"] in turned for e in kcf["images"]]
            )
        row[f"{name}+filter"] = filtered
        # The control: as many images kept at random (per class, as the filter keeps them).
        rnd = base / f"{name}-random"
        if not (rnd / KEEP).is_file():
            shutil.copytree(folder, rnd, ignore=shutil.ignore_patterns(".*", "logs"))
            keep_random(rnd, seed, args.keep)
        randomly = evaluate(rnd, test, base / f"eval-{name}-random", args, seed)
        kept = [json.loads(line)["id"] for line in (rnd / KEEP).read_text().splitlines()]
        randomly["kept_planted"] = sum(i in wrong for i in kept) / len(kept)
        row[f"{name}+random"] = randomly
    row["planted"]["kept_planted"] = len(turned) / row["planted"]["train_objects"]
    row["clean"]["kept_planted"] = 0.0
    return row


def summary(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """`84.2` or `84.2 ± 1.3` (mean ± standard deviation over seeds)."""
    v = [x * scale for x in values]
    mean = statistics.fmean(v)
    return f"{mean:.{digits}f}" if len(v) < 2 else f"{mean:.{digits}f} ± {statistics.stdev(v):.{digits}f}"


LABELS = {
    "clean": "clean labels",
    "clean+filter": "clean labels, kcf + filter",
    "clean+random": "clean labels, as many kept at random",
    "planted": "a quarter of the azimuths wrong",
    "planted+filter": "a quarter wrong, kcf + filter",
    "planted+random": "a quarter wrong, as many kept at random",
}


def table(rows: list[dict]) -> str:
    head = (
        "| training data | images | wrong labels | Acc@π/6 (%) | "
        + " | ".join(f"{c} Acc@π/6" for c in CLASSES)
        + " | Acc@π/18 (%) | median error (°) |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for key, label in LABELS.items():
        runs = [r[key] for r in rows]
        lines.append(
            f"| {label} | {runs[0]['train_objects']} | {summary([r['kept_planted'] for r in runs])}% | "
            f"{summary([r['overall']['accuracy']['pi_6'] for r in runs])} | "
            + " | ".join(summary([r["classes"][c]["accuracy"]["pi_6"] for r in runs]) for c in CLASSES)
            + f" | {summary([r['overall']['accuracy']['pi_18'] for r in runs])} | "
            f"{summary([r['overall']['median_error_deg'] for r in runs], 1.0)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/bench_eval"))
    parser.add_argument("--per-class", type=int, default=6, help="models per class (default 6)")
    parser.add_argument("--test-models", type=int, default=2, help="held-out models per class (default 2)")
    parser.add_argument("--views", type=int, default=40, help="views a model (default 40)")
    parser.add_argument("--size", type=int, default=64, help="image size (default 64)")
    parser.add_argument("--epochs", type=int, default=20, help="eval training epochs (default 20)")
    parser.add_argument("--kcf-epochs", type=int, default=20, help="epochs per KCF fold (default 20)")
    parser.add_argument("--folds", type=int, default=4, help="KCF folds (default 4)")
    parser.add_argument("--keep", type=float, default=0.75, help="filter --keep-fraction (default 0.75)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    start = time.monotonic()
    work = args.work.resolve()
    models = make_models(work / "models", args.per_class, seed=0)
    cut = args.per_class - args.test_models
    train, test = work / "train", work / "test"
    render(train, {c: p[:cut] for c, p in models.items()}, args)
    render(test, {c: p[cut:] for c, p in models.items()}, args)
    rows = [one_seed(work, train, test, args, seed) for seed in args.seeds]
    minutes = (time.monotonic() - start) / 60
    auc = summary([r["planted+filter"]["auc"] for r in rows], 1.0, 3)
    text = table(rows)
    print(text)
    print(
        f"\nKCF's ROC AUC for the planted labels: {auc}. {len(args.seeds)} seed(s), {minutes:.1f} min. "
        f"Train: {args.per_class - args.test_models} models a class x {args.views} views; test: "
        f"{args.test_models} held-out models a class x {args.views} views; {args.size} px, resnet-tiny, "
        f"{args.epochs} epochs (KCF: {args.folds} folds x {args.kcf_epochs} epochs, keep {args.keep:g})."
    )
    (work / "bench_eval.json").write_text(
        json.dumps(
            {"settings": {k: str(v) for k, v in vars(args).items()}, "seeds": rows, "minutes": minutes},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
