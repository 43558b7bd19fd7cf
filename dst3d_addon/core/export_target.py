"""The export's target folder as the formats write it: images copied or hard-linked, other files
written, each atomically and only when it is not there already, so a rerun resumes (pure)."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import setting
from .export_plan import ExportError
from .files import temp_name, write_bytes_atomic
from .samples import Sample


class Target:
    """The export folder: images copied or hard-linked, other files written, all atomically and each
    only when it is not there already (resume)."""

    def __init__(self, root: Path, dataset: Path, link: bool) -> None:
        self.root = root
        self.dataset = dataset
        self.link = link
        self.copied = 0
        self.linked = 0
        self.unchanged = 0

    def path(self, rel: str) -> Path:
        return self.root.joinpath(*rel.split("/"))

    def source(self, rel: str) -> Path:
        """A file of the dataset."""
        return self.dataset.joinpath(*rel.split("/"))

    def image(self, sample: Sample, rel: str) -> None:
        """Put the sample's image at `rel`: a hard link with `link`, else a copy (its time kept, so a
        rerun can tell an up-to-date copy by size and time without reading it)."""
        src, dst = self.source(sample.file), self.path(rel)
        stat = src.stat()
        if dst.exists():
            there = dst.stat()
            if os.path.samestat(stat, there) or (
                there.st_size == stat.st_size and there.st_mtime_ns == stat.st_mtime_ns
            ):
                self.unchanged += 1
                return
        dst.parent.mkdir(parents=True, exist_ok=True)
        if self.link:
            tmp = temp_name(dst)
            try:
                os.link(src, tmp)
            except OSError as err:
                if err.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise ExportError(
                        f"{setting('link')}: cannot hard-link {src} into {self.root} ({err.strerror}); "
                        f"drop {setting('link')} to copy"
                    ) from None
                raise
            os.replace(tmp, dst)
            self.linked += 1
            return
        write_bytes_atomic(dst, src.read_bytes())
        os.utime(dst, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        self.copied += 1

    def file(self, rel: str, data: bytes) -> None:
        """Write `data` at `rel` unless the file there already holds exactly these bytes."""
        dst = self.path(rel)
        if dst.is_file() and dst.stat().st_size == len(data) and dst.read_bytes() == data:
            return
        write_bytes_atomic(dst, data)

    def has(self, rel: str) -> bool:
        return self.path(rel).is_file()


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def jsonl_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """JSON lines (one compact object a line)."""
    return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows).encode("utf-8")
