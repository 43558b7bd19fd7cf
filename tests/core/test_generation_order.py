"""generations.jsonl's order once a run completes: by view id, then k as a number."""

from __future__ import annotations

import json

from dst3d_addon.core.dataset import GENERATIONS, Dataset
from dst3d_addon.core.generation_plan import generation_order, sort_generations


def test_order_is_by_id_then_k_as_a_number():
    records = [{"id": i, "k": k} for i in ("c/m/000001", "c/m/000000", "c/m-2/000000") for k in (10, 2, 0)]
    ordered = sorted(records, key=generation_order)
    assert [(r["id"], r["k"]) for r in ordered] == [
        ("c/m-2/000000", 0), ("c/m-2/000000", 2), ("c/m-2/000000", 10),
        ("c/m/000000", 0), ("c/m/000000", 2), ("c/m/000000", 10),
        ("c/m/000001", 0), ("c/m/000001", 2), ("c/m/000001", 10),
    ]  # fmt: skip
    # '#' sorts below every character of an id, so an id that extends another comes after it
    assert generation_order({"id": "c/m/00000", "k": 999}) < generation_order({"id": "c/m/00000-", "k": 0})


def test_sort_rewrites_the_file_only_when_out_of_order(tmp_path):
    path = tmp_path / GENERATIONS
    lines = [json.dumps({"id": "c/m/000000", "k": k}) + "\n" for k in (1, 0)]
    path.write_text("".join(lines))
    dataset = Dataset(tmp_path, "generate", {})
    assert sort_generations(dataset) is True
    assert path.read_text() == lines[1] + lines[0]
    assert sort_generations(dataset) is False
    (tmp_path / "other").mkdir()
    assert sort_generations(Dataset(tmp_path / "other", "generate", {})) is False
    assert list((tmp_path / "other").iterdir()) == []  # no file, no lock file either
