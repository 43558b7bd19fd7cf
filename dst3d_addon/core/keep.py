"""The kept set of a filtered dataset (keep.jsonl): which images a KCF filter let through.

The filter never deletes or rewrites a file: it writes keep.jsonl, one record per kept image
({"file", "id", "k", "score"}), and records the rule and the judged kind of image in
dataset.json (stages.filter). Loaders and exporters that find a keep set use only what it keeps;
an image the filter never judged (added after it ran) is not kept.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .dataset import DATASET_JSON
from .errors import DatasetError, SettingError, setting
from .files import read_records, write_bytes_atomic

KEEP = "keep.jsonl"
FILTER_STAGE = "filter"


@dataclass(frozen=True)
class KeepSet:
    """The kept images: `images` is the kind judged (generated, renders or control)."""

    images: str
    files: frozenset[str]
    ids: frozenset[str]
    pairs: frozenset[tuple[str, int | None]]

    def keeps(self, record: Mapping) -> bool:
        """Whether an annotation record (renders/control) or a generation record (generated) is kept.

        For a keep set of generated images an annotation record is kept when at least one of its
        generated images is; for renders or control images a generation record is kept when its
        view is.
        """
        rid = record.get("id")
        if "k" in record and "files" not in record:  # a generation record
            if self.images == "generated":
                return (rid, record.get("k")) in self.pairs
            return rid in self.ids
        return rid in self.ids


def select_kept(
    entries: Sequence[Mapping],
    *,
    keep_fraction: float | None = None,
    max_score: float | None = None,
    per_class: bool = True,
) -> list[Mapping]:
    """The entries (kcf.json images: file, class, score) a filter keeps, in their given order.

    `keep_fraction` keeps the ceil(F * n) lowest scores (per class when `per_class`; ties go by
    file name); `max_score` keeps every score <= S, and must keep one at least (a filter that
    empties the dataset is a mistake). Exactly one of the two must be given.
    """
    if (keep_fraction is None) == (max_score is None):
        raise ValueError("give exactly one of keep_fraction and max_score")
    if max_score is not None:
        kept = [e for e in entries if float(e["score"]) <= max_score]
        if entries and not kept:
            lowest = min(float(e["score"]) for e in entries)
            raise SettingError(
                f"{setting('max_score')} {max_score:g}: keeps no image (the lowest score is {lowest:.4g})"
            )
        return kept
    if not 0.0 < keep_fraction <= 1.0:
        raise SettingError(f"{setting('keep_fraction')} {keep_fraction}: must be in (0, 1]")
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        groups.setdefault(str(e.get("class", "")) if per_class else "", []).append(i)
    kept: set[int] = set()
    for members in groups.values():
        n = math.ceil(keep_fraction * len(members) - 1e-9)
        ranked = sorted(members, key=lambda i: (float(entries[i]["score"]), str(entries[i]["file"])))
        kept.update(ranked[:n])
    return [e for i, e in enumerate(entries) if i in kept]


def write_keep(out: str | os.PathLike, kept: Iterable[Mapping]) -> Path:
    """Write keep.jsonl atomically (the whole file at once; a previous keep set is replaced)."""
    lines = [
        json.dumps(
            {"file": e["file"], "id": e["id"], "k": e.get("k"), "score": float(e["score"])}, allow_nan=False
        ).encode("utf-8")
        + b"\n"
        for e in sorted(kept, key=lambda e: str(e["file"]))
    ]
    path = Path(out) / KEEP
    write_bytes_atomic(path, b"".join(lines))
    return path


def load_keep(out: str | os.PathLike) -> KeepSet | None:
    """The dataset's keep set, or None when it was never filtered."""
    root = Path(out)
    path = root / KEEP
    if not path.is_file():
        return None
    try:
        info = json.loads((root / DATASET_JSON).read_text(encoding="utf-8"))
        images = info["stages"][FILTER_STAGE]["images"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DatasetError(
            f"{path}: dataset.json has no filter stage saying which images were judged; rerun the filter"
        ) from None
    records = read_records(path)
    return KeepSet(
        images=str(images),
        files=frozenset(str(r.get("file")) for r in records),
        ids=frozenset(str(r.get("id")) for r in records),
        pairs=frozenset((str(r.get("id")), r.get("k")) for r in records),
    )


def filter_records(records: Iterable[Mapping], keep: KeepSet | None) -> list:
    """The records a keep set keeps (all of them when `keep` is None), in their order."""
    if keep is None:
        return list(records)
    return [r for r in records if keep.keeps(r)]
