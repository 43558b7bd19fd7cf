"""Datasets with planted errors for judging KCF (shared by tools/bench_kcf_small.py and tests/kcf).

Two ways to plant errors, as /work/shared/spec/kcf-tests.md asks:

- **Wrong labels** (`turn_labels`): a set of views gets its azimuth turned by 180 degrees, with
  camera.R and camera.C turned too. A fair test of plain KCF judging the renders; it leaks when the
  estimators also train on the renders, whose labels would then carry the planted error.
- **Wrong content** (`plant_content`): every record stays as it is, and each view gets a stand-in
  "generated" image: its own render for a right image, or, for a wrong one, the render of the same
  model turned by 180 degrees about its vertical axis (the render stage's --azimuth-offset 180,
  same seeds, so the same poses; the distance that frames it may differ a little). Either is then changed in appearance (a random background,
  colour, shift, scale, blur and noise), so no judged image equals a render pixel for pixel, as a
  diffusion model's image never does. The renders stay exact; only the judged images are wrong.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from dst3d_addon.core.camera import Intrinsics, Pose, camera_record
from dst3d_addon.core.dataset import ANNOTATIONS, GENERATIONS
from dst3d_addon.core.files import read_records, write_bytes_atomic
from dst3d_addon.core.seeds import derive_seed

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "dst3d_batch.py"


def render(
    cad: Path,
    name: str,
    out: Path,
    views: int,
    size: int,
    *,
    sampling: str = "3",
    azimuth_offset: float = 0.0,
) -> Path:
    """Render `views` views of `cad` (class `name`) at size x size into `out` with the batch script."""
    command = [
        sys.executable, str(SCRIPT), "render", "--cad", str(cad), "--class-name", name, "--views", str(views),
        "--resolution", str(size), "--sampling", sampling, "--azimuth-offset", str(azimuth_offset),
        "--out", str(out), "--quiet",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"render of {cad} failed: {result.stderr.strip()}")
    return out


def view_ids(out: Path) -> list[str]:
    """The view ids of a dataset, in record order."""
    return [r["id"] for r in read_records(out / ANNOTATIONS)]


def wrong_quarter(ids: list[str], seed: int = 7) -> set[str]:
    """A seeded quarter of the ids."""
    rng = np.random.default_rng(seed)
    return set(rng.choice(sorted(ids), size=len(ids) // 4, replace=False).tolist())


def turn_labels(out: Path, ids: set[str]) -> None:
    """Rewrite annotations.jsonl with the azimuth of `ids` turned by 180 degrees (camera recomputed)."""
    lines = []
    for r in read_records(out / ANNOTATIONS):
        if r["id"] in ids:
            p = r["pose"]
            pose = Pose(
                math.remainder(p["azimuth"] + math.pi, 2 * math.pi), p["elevation"], p["theta"], p["distance"]
            )
            cam = r["camera"]
            intr = Intrinsics(cam["width"], cam["height"], cam["viewport"], tuple(cam["principal"]))
            r = {**r, "pose": pose.as_dict(), "camera": camera_record(pose, intr)}
        lines.append(json.dumps(r) + "\n")
    write_bytes_atomic(out / ANNOTATIONS, "".join(lines).encode("utf-8"))


def restyle(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A render (BGR, grey object on black) and its mask, changed in appearance: tinted object on a
    random background (a colour gradient with noise), shifted and scaled a little, blurred, noisy."""
    h, w = mask.shape
    obj = image.astype(np.float32) * rng.uniform(0.55, 1.25, 3).astype(np.float32) + rng.uniform(-30, 30, 3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(direction) * xs + np.sin(direction) * ys) / max(h, w)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    background = c0 + (c1 - c0) * ramp[..., None]
    background += rng.normal(0, rng.uniform(3, 20), (h, w, 1))
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    out = alpha * obj + (1 - alpha) * background
    scale = rng.uniform(0.9, 1.1)
    tx, ty = rng.uniform(-w / 16, w / 16), rng.uniform(-h / 16, h / 16)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    m[:, 2] += (tx, ty)
    out = cv2.warpAffine(out, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out += rng.normal(0, 4, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def plant_content(out: Path, turned: Path, wrong: set[str], seed: int = 0) -> None:
    """Write one stand-in generated image per view of `out` (images/<id>_0.png, generations.jsonl).

    A view in `wrong` gets the render of `turned` (the same model rendered with --azimuth-offset 180
    and the same seeds), the others their own render; both are restyled. Records stay as they are.
    """
    source = {r["id"]: r for r in read_records(turned / ANNOTATIONS)}
    lines = []
    for r in read_records(out / ANNOTATIONS):
        root, rec = (turned, source[r["id"]]) if r["id"] in wrong else (out, r)
        if any(rec["pose"][k] != r["pose"][k] for k in ("azimuth", "elevation", "theta")):
            raise ValueError(f"{r['id']}: the turned dataset has another pose; render it with the same seed")
        image = cv2.imread(str(root / rec["files"]["render"]), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(root / rec["files"]["mask"]), cv2.IMREAD_GRAYSCALE)
        rng = np.random.default_rng(derive_seed("bench-restyle", seed, r["id"]))
        rel = f"images/{r['id']}_0.png"
        ok, data = cv2.imencode(".png", restyle(image, mask, rng))
        assert ok
        write_bytes_atomic(out / rel, data.tobytes())
        lines.append(json.dumps({"id": r["id"], "k": 0, "file": rel, "seed": 0, "prompt": "stand-in"}) + "\n")
    write_bytes_atomic(out / GENERATIONS, "".join(lines).encode("utf-8"))
