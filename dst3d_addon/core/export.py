"""The export stage: a dataset folder's images and labels in another format, in a folder of their own.

Formats (each in its own module): `coco` (export_coco.py), `pascal3d` (export_pascal3d.py, over
pascal3d.py), `imagefolder` (export_imagefolder.py), `webdataset` (export_webdataset.py); the
settings, the chosen images and their labels are in export_plan.py, the target folder's atomic
writes in export_target.py, and this module runs them. The export takes one kind of image (generated, renders or control), respects the filter's keep set
unless told not to, and may hold out a fraction of each class's CAD models as a `val` split, so no
model sits on both sides.

The export never writes into the dataset. Its target gets `export.json` first (the settings and a
fingerprint of the chosen images) and every file through an atomic rename; a rerun of the same
command skips what is already there and rewrites the indexes to the same bytes, so a run killed
part-way and run again ends with the same files as one that was not. A target that holds another
export (other settings or other images) or other files is refused.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .export_coco import write_coco
from .export_imagefolder import write_imagefolder
from .export_pascal3d import write_pascal3d
from .export_plan import (
    FORMAT_PACKAGES,
    FORMATS,
    MANIFEST,
    MANIFEST_FORMAT,
    TO,
    ExportError,
    ExportPlan,
    ExportSettings,
    plan_export,
)
from .export_target import Target, json_bytes
from .export_webdataset import write_webdataset
from .files import locked, remove_stale_temps, write_json_atomic
from .packages import require

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportRun",
    "ExportSettings",
    "ExportSummary",
    "check_packages",
    "check_target",
    "plan_export",
]

#: Each format's writer: (plan, target, progress, note) -> notes for the summary.
WRITERS: dict[str, Callable[..., list[str]]] = {
    "coco": write_coco,
    "pascal3d": write_pascal3d,
    "imagefolder": write_imagefolder,
    "webdataset": write_webdataset,
}


def check_target(out: str | os.PathLike, to: str | os.PathLike) -> Path:
    """The export folder, refused (ExportError naming `to`) when it is the dataset, inside it or holds it."""
    dataset = Path(out).expanduser().resolve()
    target = Path(to).expanduser().resolve()
    if target == dataset or dataset in target.parents:
        raise ExportError(f"{TO} {to}: inside the dataset {dataset}; choose a folder outside it")
    if target in dataset.parents:
        raise ExportError(f"{TO} {to}: holds the dataset {dataset}; choose a folder outside it")
    if target.exists() and not target.is_dir():
        raise ExportError(f"{TO} {to}: is a file, not a folder")
    return target


def check_packages(fmt: str) -> None:
    """MissingPackage (one line naming the package) unless the format's packages import."""
    for module, package in FORMAT_PACKAGES.get(fmt, ()):
        require(module, package=package, purpose=f"the {fmt} format")


# --------------------------------------------------------------------------- the run


@dataclass
class ExportSummary:
    """What an export wrote: counts per split, how the images got there, what was left out."""

    format: str
    images: str
    to: Path
    counts: dict[str, dict[str, int]]
    copied: int
    linked: int
    unchanged: int
    empty: int
    unsplit_classes: list[str]
    notes: list[str]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "splits": self.counts,
            "left_out_empty_masks": self.empty,
            "unsplit_classes": self.unsplit_classes,
            "notes": self.notes,
        }


class ExportRun:
    """One export: `check` looks at the target folder (reading only), `run` claims and writes it."""

    def __init__(self, plan: ExportPlan, to: str | os.PathLike, *, tool_version: str) -> None:
        self.plan = plan
        self.to = Path(to).expanduser()
        self.tool_version = tool_version

    def manifest(self, summary: ExportSummary | None) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "tool": {"name": "dst3d", "version": self.tool_version},
            "dataset": str(self.plan.out.resolve()),
            "settings": self.plan.settings.recorded(),
            "selection": self.plan.selection(),
            "complete": summary is not None,
            **({"summary": summary.as_dict()} if summary is not None else {}),
        }

    def check(self) -> bool:
        """Refuse (ExportError naming the option) a folder holding other files or another export;
        True when it holds this export already (a resume). Reads only."""
        path = self.to / MANIFEST
        if not self.to.is_dir():
            return False
        if not path.is_file():
            if any(not p.name.startswith(".") for p in self.to.iterdir()):
                raise ExportError(
                    f"{TO} {self.to}: not empty and not a dst3d export; choose a new or empty folder"
                )
            return False
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            settings, selection = dict(old["settings"]), old["selection"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ExportError(
                f"{TO} {self.to}: {path.name} is unreadable ({err}); choose a new {TO}"
            ) from None
        ours = self.plan.settings.recorded()
        if settings != ours:
            changed = sorted(k for k in set(settings) | set(ours) if settings.get(k) != ours.get(k))
            raise ExportError(
                f"{TO} {self.to}: holds an export with other settings ({', '.join(changed)}); choose a new {TO}"
            )
        if selection != self.plan.selection():
            raise ExportError(
                f"{TO} {self.to}: holds an export of other images (the dataset or its keep set changed "
                f"since); choose a new {TO}"
            )
        return True

    def run(
        self, progress: Callable[[int], None] = lambda n: None, note: Callable[[str], None] = lambda t: None
    ) -> ExportSummary:
        """Write the export (resuming one that was cut short); `progress(n)` counts images done,
        `note(text)` reports what the format could not write (such as a CAD file it could not read)."""
        start = time.monotonic()
        check_packages(self.plan.settings.format)
        self.check()  # before anything is created
        try:
            self.to.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ExportError(f"{TO} {self.to}: cannot create the folder ({err.strerror or err})") from None
        with locked(self.to / MANIFEST):
            if not self.check():  # again under the lock: another export may have begun meanwhile
                write_json_atomic(self.to / MANIFEST, self.manifest(None))
            remove_stale_temps(self.to)
            target = Target(self.to, self.plan.out, self.plan.settings.link)
            notes = WRITERS[self.plan.settings.format](self.plan, target, progress, note)
            summary = ExportSummary(
                format=self.plan.settings.format,
                images=self.plan.settings.images,
                to=self.to,
                counts=self.plan.counts(),
                copied=target.copied,
                linked=target.linked,
                unchanged=target.unchanged,
                empty=len(self.plan.empty),
                unsplit_classes=list(self.plan.unsplit_classes),
                notes=list(notes),
                seconds=time.monotonic() - start,
            )
            target.file(MANIFEST, json_bytes(self.manifest(summary)))
        return summary
