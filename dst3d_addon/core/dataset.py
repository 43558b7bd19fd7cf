"""The dataset folder (shared/spec/dataset.md): atomic files, append-only JSONL, dataset.json.

Every file is written to a temporary name in its own folder, flushed to disk and renamed over the
target, so a reader (or a resumed run) never sees half a file. Records are appended to JSONL files
under an exclusive lock, one `write` per batch, so several processes can append to the same file;
a torn last line (a crash mid-append) is ignored by readers and cut off by the next writer.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import io
import json
import os
import re
import secrets
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from .errors import Dst3dError, setting

#: Version of the folder layout and record formats written here (dataset.json "format").
FORMAT_VERSION = 1

DATASET_JSON = "dataset.json"
ANNOTATIONS = "annotations.jsonl"
GENERATIONS = "generations.jsonl"
#: The settings that messages name: the dataset folder and the flag that allows mixed settings.
OUT = setting("out")
ALLOW_MIXED = setting("allow_mixed")

#: A class key or model id: one safe path part (no separators, no leading dot).
_ID_PART = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$")
_ID_PART_MAX = 200
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._+-]+")
_STAGE = re.compile(r"^[a-z][a-z0-9_-]*$")

#: Fixed zip entry time, so that the same depth map gives the same .npz bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock_fd(fd: int) -> None:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError as err:  # LK_LOCK gives up after ~10 s; keep waiting
                if err.errno != errno.EDEADLK:
                    raise

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class DatasetError(Dst3dError):
    """A dataset folder or file that cannot be used; the message is one line naming it."""


# --------------------------------------------------------------------------- atomic files


def _temp_name(target: Path) -> Path:
    """A temporary sibling of `target` no other process or thread picks (pid + random)."""
    stem = target.name[:120]
    return target.with_name(f".{stem}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


def _write_all(fd: int, data: bytes, durable: bool) -> None:
    """Write every byte (os.write may write fewer), then flush to disk if `durable`."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if durable:
        os.fsync(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` so that `path` is either absent/old or complete, never partial.

    Parent folders are created. The bytes go to a unique temporary file in the same folder, are
    fsync'ed (unless `durable` is False) and renamed over the target; on any failure the temporary
    file is removed and the target is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _temp_name(target)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
        break
    try:
        try:
            _write_all(fd, data, durable)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image (gray HxW or HxWx1, BGR HxWx3, BGRA HxWx4); same image, same bytes."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"PNG images must be uint8, got {img.dtype}")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))):
        raise ValueError(f"PNG images must be HxW, HxWx1, HxWx3 or HxWx4, got shape {img.shape}")
    if img.size == 0:
        raise ValueError(f"cannot write an empty image (shape {img.shape})")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - cv2 fails only on unsupported input, checked above
        raise ValueError(f"OpenCV could not encode an image of shape {img.shape} as PNG")
    return buf.tobytes()


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 gray/BGR/BGRA image as PNG, atomically (see `write_bytes_atomic`)."""
    write_bytes_atomic(path, encode_png(image))


def encode_depth_npz(depth: np.ndarray) -> bytes:
    """The bytes of an .npz holding `depth` (float32, key "depth"), compressed and deterministic.

    `np.savez_compressed` stamps each zip entry with the current time; this writes the same
    archive layout (np.load reads it) with a fixed time and attributes instead.
    """
    arr = np.asarray(depth)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"depth must be a float array, got {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    npy = io.BytesIO()
    np.lib.format.write_array(npy, arr, allow_pickle=False)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("depth.npy", date_time=_ZIP_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3
        info.external_attr = 0o644 << 16
        zf.writestr(info, npy.getvalue())
    return out.getvalue()


def write_depth_npz(path: str | os.PathLike, depth: np.ndarray) -> None:
    """Write a depth map (HxW, stored as float32 under the key "depth") as .npz, atomically."""
    write_bytes_atomic(path, encode_depth_npz(depth))


def read_depth_npz(path: str | os.PathLike) -> np.ndarray:
    """The depth map of an .npz written by `write_depth_npz` (float32, HxW)."""
    with np.load(path, allow_pickle=False) as data:
        return data["depth"]


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented UTF-8 JSON (NaN/inf refused), atomically."""
    write_bytes_atomic(path, _json_text(obj).encode("utf-8"))


# --------------------------------------------------------------------------- JSONL records


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive inter-process lock for `path` (on the sidecar file `.<name>.lock`).

    The lock file is never removed: removing it would let two processes lock different files.
    """
    lock = _lock_path(Path(path))
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _lock_fd(fd)
        try:
            yield
        finally:
            _unlock_fd(fd)
    finally:
        os.close(fd)


def _record_line(record: Mapping) -> bytes:
    if not isinstance(record, Mapping):
        raise TypeError(f"a record must be a dict, got {type(record).__name__}")
    # json.dumps without indent never emits a raw newline, so each record is exactly one line.
    return (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _cut_torn_tail(fd: int) -> None:
    """If the file does not end with a newline, cut it back to just after its last newline."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return
    end = size
    keep = 0
    while end > 0:
        start = max(0, end - 65536)
        os.lseek(fd, start, os.SEEK_SET)
        chunk = os.read(fd, end - start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            keep = start + nl + 1
            break
        end = start
    os.ftruncate(fd, keep)


def append_records(path: str | os.PathLike, records: Iterable[Mapping], *, durable: bool = True) -> None:
    """Append records as JSON lines, all or none of them, safely with other appending processes.

    Under the sidecar lock: a torn last line (no final newline: it was never a whole record) is
    cut off, then all lines go out in one O_APPEND write and are fsync'ed (unless `durable` is
    False). If that write fails, the file is cut back to its previous length.
    """
    data = b"".join(_record_line(r) for r in records)
    if not data:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target):
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o666)
        try:
            _cut_torn_tail(fd)
            before = os.fstat(fd).st_size
            try:
                _write_all(fd, data, durable)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, before)
                raise
        finally:
            os.close(fd)


def read_records(path: str | os.PathLike) -> list[dict]:
    """All records of a JSONL file ([] if it does not exist).

    Blank lines are skipped and a last line without its newline (a torn append) is ignored; any
    other line that is not a JSON object raises DatasetError naming the file and line number.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise DatasetError(f"{p}: cannot read ({err.strerror or err})") from err
    lines = data.split(b"\n")
    lines.pop()  # the part after the last newline: empty, or a torn line
    records: list[dict] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DatasetError(
                f"{p}: line {number} is not valid JSON ({err}); fix or delete that line"
            ) from err
        if not isinstance(record, dict):
            raise DatasetError(
                f"{p}: line {number} is a JSON {type(record).__name__}, not a record object; "
                "fix or delete that line"
            )
        records.append(record)
    return records


# --------------------------------------------------------------------------- ids


def check_id_part(value: str, what: str = "id part") -> str:
    """Return `value` if it is one safe path part of an id, else raise DatasetError naming `what`.

    Allowed: ASCII letters, digits and . _ + -, not starting with a dot, at most 200 characters.
    """
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{what} {value!r} is empty or not a string")
    if len(value) > _ID_PART_MAX or not _ID_PART.match(value):
        raise DatasetError(
            f"{what} {value!r} is not a safe file name part (use letters, digits and . _ + -, "
            f"not starting with '.', at most {_ID_PART_MAX} characters)"
        )
    return value


def annotation_id(class_key: str, model_id: str, view: int) -> str:
    """`<class>/<model_id>/<view:06d>` (dataset.md), with class key and model id checked as safe."""
    check_id_part(class_key, "class")
    check_id_part(model_id, "model id")
    if isinstance(view, bool) or not isinstance(view, (int, np.integer)) or view < 0:
        raise DatasetError(f"view index {view!r} must be a non-negative integer")
    return f"{class_key}/{model_id}/{int(view):06d}"


def parse_annotation_id(ann_id: str) -> tuple[str, str, int]:
    """(class key, model id, view index) of an annotation id; DatasetError if it is malformed."""
    parts = ann_id.split("/") if isinstance(ann_id, str) else []
    if len(parts) != 3 or not re.fullmatch(r"\d{6,}", parts[2]):
        raise DatasetError(f"annotation id {ann_id!r} is not of the form <class>/<model_id>/<view:06d>")
    check_id_part(parts[0], f"class of id {ann_id!r}")
    check_id_part(parts[1], f"model id of id {ann_id!r}")
    return parts[0], parts[1], int(parts[2])


def sanitize_model_id(name: str) -> str:
    """A safe model id from a name (pass a file's stem): accents folded to ASCII, other runs of
    unsafe characters turned into "_", leading dots/underscores dropped, at most 100 characters.

    Different names can map to the same id ("a b", "a_b"): callers must check for collisions.
    """
    ascii_text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_RUN.sub("_", ascii_text).strip("._")[:100].rstrip("._")
    return cleaned or "model"


def check_relative_path(rel: str | os.PathLike, what: str = "path") -> PurePosixPath:
    """A file path inside the dataset folder: relative, '/'-separated, no '..' and no empty parts."""
    text = os.fspath(rel)
    if not isinstance(text, str):
        raise DatasetError(f"{what} {rel!r} is not a string")
    p = PurePosixPath(text)
    if (
        not text
        or "\\" in text
        or p.is_absolute()
        or re.match(r"^[A-Za-z]:", text)
        or any(part in ("", ".", "..") for part in text.split("/"))
    ):
        raise DatasetError(f"{what} {text!r} must be a relative path inside the dataset folder")
    return p


# --------------------------------------------------------------------------- dataset.json


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


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
    """Create the dataset folder and prove it is writable by creating a file in it."""
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
    probe = _temp_name(root / "write-test")
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
    ) -> Dataset:
        """Open (creating if needed) the dataset folder `out` for `stage` run with `settings`.

        A new folder gets a dataset.json; an existing one must have been made with the same
        settings for this stage (and the same `depth` description if given), else DatasetError
        names the keys that differ. With `allow_mixed`, the new settings replace the stage's
        entry and are appended to "history" (which lists every settings change, the first too).
        A non-empty folder without dataset.json is refused (it is not a dst3d dataset).
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
        """Ids of the records whose files all exist: what a resumed run may skip.

        A record's files are the values of its "files" object (None values skipped) and its
        "file" string; `key` maps a record to its id (default: record["id"]).
        """
        done: set[str] = set()
        for record in self.records(records_name):
            ident = key(record) if key is not None else record.get("id")
            if not isinstance(ident, str):
                continue
            files = record.get("files") or {}
            rels = [v for v in files.values() if v is not None] if isinstance(files, Mapping) else []
            if isinstance(record.get("file"), str):
                rels.append(record["file"])
            if all(self.path(rel).is_file() for rel in rels):
                done.add(ident)
        return done
