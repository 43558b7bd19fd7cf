"""The dataset folder (dataset-format.md): dataset.json, its settings per stage, its classes and records.

`Dataset.open` creates a folder or checks that an existing one was made with the same settings,
so a resumed or extended run never mixes settings silently; files and records are written with
`files.py`'s atomic writes and locked appends, ids checked with `ids.py`.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import DatasetError, setting
from .files import append_records, is_whole, iter_records, locked, read_records, temp_name, write_json_atomic
from .ids import check_id_part, check_relative_path

#: Version of the folder layout and record formats written here (dataset.json "format").
FORMAT_VERSION = 1

DATASET_JSON = "dataset.json"
ANNOTATIONS = "annotations.jsonl"
GENERATIONS = "generations.jsonl"
#: The kinds of image a view has: generated images, shaded renders, control images (what the kcf
#: and export stages take with --images, and the filter records as the kind it judged).
IMAGE_KINDS = ("generated", "renders", "control")
#: How messages and pictures name each kind of image ("12 renders", "3 generated images").
KIND_WORDS = {"generated": "generated images", "renders": "renders", "control": "control images"}
#: The settings that messages name: the dataset folder and the flag that allows mixed settings.
OUT = setting("out")
ALLOW_MIXED = setting("allow_mixed")

_STAGE = re.compile(r"^[a-z][a-z0-9_-]*$")
#: Free space below which a dataset folder is refused: a few views' files and records.
MIN_FREE_BYTES = 16 * 2**20


def _now() -> str:
    # timezone.utc, not UTC (3.11+): Blender before 4.1 runs Python 3.10
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017


def _plain(value: Any, what: str) -> Any:
    """`value` as JSON would read it back (tuples to lists, ...); ValueError if not JSON-able."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be JSON-serialisable: {err}") from err


_ABSENT = object()


def settings_diff(old: Mapping, new: Mapping, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every leaf that differs; a missing side is `_ABSENT`."""
    diffs: list[tuple[str, Any, Any]] = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs.extend(settings_diff(a, b, name + "."))
        elif a != b:
            diffs.append((name, a, b))
    return diffs


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(unset)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_diff(diffs: list[tuple[str, Any, Any]], limit: int = 6) -> str:
    """'key: old -> new, ...' for a one-line message (at most `limit` keys, then a count)."""
    parts = [f"{k}: {_show(a)} -> {_show(b)}" for k, a, b in diffs[:limit]]
    if len(diffs) > limit:
        parts.append(f"and {len(diffs) - limit} more")
    return ", ".join(parts)


def _prepare_folder(root: Path) -> None:
    """Create the dataset folder and prove it is writable by creating a file in it, on a disk with
    room for a few views (a full disk refused here costs one line, not a crash per worker)."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{OUT} {root}: is a file, not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise DatasetError(f"{OUT} {root}: cannot create the folder, a part of its path is a file") from err
    except PermissionError as err:
        raise DatasetError(f"{OUT} {root}: cannot create the folder (permission denied)") from err
    except OSError as err:
        raise DatasetError(f"{OUT} {root}: cannot create the folder ({err.strerror or err})") from err
    probe = temp_name(root / "write-test")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
        os.unlink(probe)
    except PermissionError as err:
        raise DatasetError(f"{OUT} {root}: the folder is not writable (permission denied)") from err
    except OSError as err:
        if err.errno == errno.EROFS:
            raise DatasetError(f"{OUT} {root}: the folder is on a read-only file system") from err
        raise DatasetError(f"{OUT} {root}: the folder is not writable ({err.strerror or err})") from err
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        return
    if free < MIN_FREE_BYTES:
        raise DatasetError(
            f"{OUT} {root}: the disk is full ({free / 2**20:.1f} MB free); make room or choose another {OUT}"
        )


def _read_info(root: Path) -> dict | None:
    path = root / DATASET_JSON
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read ({err})") from err
    try:
        info = json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err}); restore it or choose a new {OUT}") from err
    if not isinstance(info, dict) or not isinstance(info.get("format"), int):
        raise DatasetError(f"{path}: not a dst3d dataset.json (no 'format' number); choose another {OUT}")
    if info["format"] > FORMAT_VERSION:
        raise DatasetError(
            f"{path}: dataset format {info['format']} is newer than this dst3d reads "
            f"({FORMAT_VERSION}); update dst3d or choose a new {OUT}"
        )
    for key, default in (("stages", {}), ("classes", {}), ("history", [])):
        if not isinstance(info.setdefault(key, default), type(default)):
            raise DatasetError(f"{path}: '{key}' must be a JSON {type(default).__name__}")
    return info


def _holds_records(path: Path) -> bool:
    """Whether a JSONL file holds one whole record at least."""
    return next(iter_records(path), None) is not None


def _has_user_files(root: Path) -> bool:
    return any(not entry.name.startswith(".") for entry in root.iterdir())


class Dataset:
    """An open dataset folder: its files, its records and its dataset.json.

    Use `Dataset.open`; several processes may hold the same folder open and append at once.
    """

    def __init__(self, root: Path, stage: str, info: dict) -> None:
        self.root = root
        self.stage = stage
        self.info = info  # dataset.json as read or written by `open` / the last update

    @classmethod
    def open(
        cls,
        out: str | os.PathLike,
        stage: str,
        settings: Mapping[str, Any],
        *,
        allow_mixed: bool = False,
        tool_version: str,
        depth: Mapping[str, Any] | None = None,
        binding: str | None = None,
    ) -> Dataset:
        """Open (creating if needed) the dataset folder `out` for `stage` run with `settings`.

        A new folder gets a dataset.json; an existing one must have been made with the same
        settings for this stage (and the same `depth` description if given), else DatasetError
        names the keys that differ. With `allow_mixed`, the new settings replace the stage's
        entry and are appended to "history" (which lists every settings change, the first too).
        A non-empty folder without dataset.json is refused (it is not a dst3d dataset). `binding`
        names the records file of the stage: while it holds no record, the stage's settings bind
        nothing and new ones replace them (a mistyped run that wrote nothing never locks a folder).
        """
        if not isinstance(stage, str) or not _STAGE.match(stage):
            raise ValueError(f"stage {stage!r} must be a lower-case name")
        if not isinstance(settings, Mapping):
            raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
        new_settings = _plain(dict(settings), f"{stage} settings")
        new_depth = None if depth is None else _plain(dict(depth), "depth description")
        root = Path(out).expanduser()
        _prepare_folder(root)
        info_path = root / DATASET_JSON
        with locked(info_path):
            info = _read_info(root)
            changed = False
            if info is None:
                if _has_user_files(root):
                    raise DatasetError(
                        f"{OUT} {root}: the folder is not empty and has no dataset.json; "
                        "choose a new or empty folder"
                    )
                info = {
                    "format": FORMAT_VERSION,
                    "tool": {"name": "dst3d", "version": str(tool_version)},
                    "created": _now(),
                    "stages": {},
                    "classes": {},
                    "history": [],
                }
                changed = True
            if new_depth is not None:
                old_depth = info.get("depth")
                if old_depth is None:
                    info["depth"] = new_depth
                    changed = True
                elif old_depth != new_depth:
                    diffs = settings_diff(old_depth, new_depth)
                    raise DatasetError(
                        f"{OUT} {root}: dataset.json describes depth differently "
                        f"({describe_diff(diffs)}); choose a new {OUT}"
                    )
            old = info["stages"].get(stage)
            if old is not None and binding is not None and not _holds_records(root / binding):
                old = None  # the settings bound nothing yet (a run that failed before writing): replace them
            if old != new_settings:
                if old is not None and not allow_mixed:
                    diffs = settings_diff(old, new_settings) if isinstance(old, Mapping) else []
                    raise DatasetError(
                        f"{OUT} {root}: this dataset was made with other {stage} settings "
                        f"({describe_diff(diffs) or 'different settings'}); pass {ALLOW_MIXED} "
                        f"to add to it anyway, or choose a new {OUT}"
                    )
                info["stages"][stage] = new_settings
                info["history"].append(
                    {
                        "time": _now(),
                        "stage": stage,
                        "tool": str(tool_version),
                        "mixed": old is not None,
                        "settings": new_settings,
                    }
                )
                changed = True
            if changed:
                write_json_atomic(info_path, info)
        return cls(root, stage, info)

    def path(self, rel: str | os.PathLike) -> Path:
        """The absolute path of a file given relative to the folder (checked to stay inside it)."""
        return self.root.joinpath(*check_relative_path(rel).parts)

    def update_info(self, change: Callable[[dict], None]) -> dict:
        """Apply `change` to dataset.json in place, safely with other processes (lock, re-read,
        atomic replace); returns and keeps the new content."""
        info_path = self.root / DATASET_JSON
        with locked(info_path):
            info = _read_info(self.root)
            if info is None:
                raise DatasetError(f"{info_path}: missing; was the folder emptied while in use?")
            before = json.dumps(info, sort_keys=True)
            change(info)
            if json.dumps(info, sort_keys=True, allow_nan=False) != before:
                write_json_atomic(info_path, info)
        self.info = info
        return info

    def add_classes(self, classes: Mapping[str, Mapping[str, Any]]) -> None:
        """Record classes in dataset.json: class key -> {"name": ..., "synset": ...}.

        A key already recorded with a different description raises DatasetError.
        """
        new = _plain({str(k): dict(v) for k, v in classes.items()}, "classes")
        for key in new:
            check_id_part(key, "class")

        def change(info: dict) -> None:
            for key, desc in new.items():
                old = info["classes"].get(key)
                if old is not None and old != desc:
                    raise DatasetError(
                        f"{self.root / DATASET_JSON}: class {key!r} is recorded as {_show(old)}, "
                        f"not {_show(desc)}; use the same class names or a new {OUT}"
                    )
                info["classes"][key] = desc

        self.update_info(change)

    def append(self, records_name: str, records: Iterable[Mapping]) -> None:
        """Append records to a JSONL file of the folder (see `append_records`)."""
        append_records(self.path(records_name), records)

    def records(self, records_name: str = ANNOTATIONS) -> list[dict]:
        """All records of a JSONL file of the folder (see `read_records`)."""
        return read_records(self.path(records_name))

    def completed_ids(
        self, records_name: str = ANNOTATIONS, key: Callable[[dict], str] | None = None
    ) -> set[str]:
        """Ids of the records whose files all exist and are whole: what a resumed run may skip.

        A record's files are the values of its "files" object (None values skipped) and its
        "file" string; `key` maps a record to its id (default: record["id"]). The file is read as
        a stream; a file cut short (`files.is_whole`) counts as missing.
        """
        done: set[str] = set()
        for _line, record in iter_records(self.path(records_name)):
            ident = key(record) if key is not None else record.get("id")
            if not isinstance(ident, str):
                continue
            files = record.get("files") or {}
            rels = [v for v in files.values() if v is not None] if isinstance(files, Mapping) else []
            if isinstance(record.get("file"), str):
                rels.append(record["file"])
            if all(is_whole(self.path(rel)) for rel in rels):
                done.add(ident)
        return done
