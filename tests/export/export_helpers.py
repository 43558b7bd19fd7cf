"""Helpers of the export tests: run the stage in-process, fingerprint folders, write a keep set."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from dst3d_addon import cli
from dst3d_addon.core.keep import write_keep
from tests.batch_script import SCRIPT


def export(*args: object) -> None:
    """`dst3d_batch.py export ARGS --quiet` in this process; it must succeed."""
    code = cli.main(["export", *map(str, args), "--quiet"], SCRIPT)
    assert code == 0


def digest_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (hidden lock files too: a refused run must not add one)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def keep_only(out: Path, ids: Iterable[str], images: str = "renders") -> None:
    """Give the dataset a keep set of these view ids, judged on `images` (as the filter stage would)."""
    kept = [{"file": f"renders/{i}.png", "id": i, "k": None, "score": 0.0} for i in sorted(ids)]
    write_keep(out, kept)
    info = json.loads((out / "dataset.json").read_text())
    info["stages"]["filter"] = {"images": images, "keep_fraction": 0.5, "max_score": None, "per_class": True}
    (out / "dataset.json").write_text(json.dumps(info))
