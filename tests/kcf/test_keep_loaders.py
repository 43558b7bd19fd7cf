"""Loaders respect the filter's keep set: researchers get only what it kept, the pipeline sees all."""

from __future__ import annotations

import json
from pathlib import Path

from dst3d_addon.core.generation_plan import load_generations
from dst3d_addon.core.keep import write_keep
from dst3d_addon.core.records import load_annotations


def _generation(ann_id: str, k: int) -> dict:
    return {
        "id": ann_id,
        "k": k,
        "file": f"images/{ann_id}_{k}.png",
        "seed": 1,
        "prompt": "p",
        "negative_prompt": "",
        "model": {"base": "tiny", "controlnet": "tiny", "scheduler": "ddim"},
        "steps": 2,
        "guidance": 9.0,
        "control_scale": 1.0,
        "width": 64,
        "height": 64,
    }


def test_loaders_keep_only_the_kept(small_copy: Path) -> None:
    out = small_copy
    views = load_annotations(out, as_numpy=False)
    ids = [v["id"] for v in views]
    lines = [json.dumps(_generation(i, k)) for i in ids for k in (0, 1)]
    (out / "generations.jsonl").write_text("\n".join(lines) + "\n")
    assert len(load_generations(out)) == 2 * len(ids)
    kept = [{"file": f"images/{ids[0]}_1.png", "id": ids[0], "k": 1, "score": 0.1}]
    kept += [{"file": f"images/{ids[2]}_0.png", "id": ids[2], "k": 0, "score": 0.2}]
    write_keep(out, kept)
    info = json.loads((out / "dataset.json").read_text())
    info["stages"]["filter"] = {"images": "generated"}
    (out / "dataset.json").write_text(json.dumps(info))
    assert [(r["id"], r["k"]) for r in load_generations(out)] == [(ids[0], 1), (ids[2], 0)]
    assert [r["id"] for r in load_annotations(out)] == [ids[0], ids[2]]
    assert len(load_annotations(out, respect_keep=False)) == len(ids)
    assert len(load_generations(out, respect_keep=False)) == 2 * len(ids)
