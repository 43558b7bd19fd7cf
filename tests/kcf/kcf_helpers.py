"""Helpers of the KCF tests: render the sample airliner, corrupt labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dst3d_addon.core.camera import Intrinsics, Pose, camera_record
from dst3d_addon.core.dataset import ANNOTATIONS
from dst3d_addon.core.files import read_records, write_bytes_atomic
from tests.batch_script import SAMPLE, run_batch


def render(out: Path, views: int, size: int, sampling: str = "1") -> Path:
    result = run_batch(
        "render",
        "--cad",
        str(SAMPLE),
        "--class-name",
        "airliner",
        "--synset",
        "n02690373",
        "--views",
        str(views),
        "--resolution",
        str(size),
        "--sampling",
        sampling,
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    return out


def turn_azimuths(out: Path, ids: set[str]) -> None:
    """Rewrite annotations.jsonl with the azimuth of `ids` turned by 180 degrees (camera recomputed)."""
    records = read_records(out / ANNOTATIONS)
    lines = []
    for r in records:
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


def wrong_quarter(ids: list[str], seed: int = 7) -> set[str]:
    """A seeded quarter of the ids."""
    rng = np.random.default_rng(seed)
    return set(rng.choice(sorted(ids), size=len(ids) // 4, replace=False).tolist())
