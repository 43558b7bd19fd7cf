"""Files that are never half written: atomic writes, PNG and NPZ encodings, locked JSONL appends.

Every file is written to a temporary name in its own folder, flushed to disk and renamed over the
target, so a reader (or a resumed run) never sees half a file. Records are appended to JSONL files
under an exclusive lock, one `write` per batch, so several processes can append to the same file;
a torn last line (a crash mid-append) is ignored by readers and cut off by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import DatasetError

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


#: This machine, in temporary file names (a dataset folder may be shared by several machines).
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
#: `.<name>.<pid>@<host>.<random>.tmp`, and the older `.<name>.<pid>.<random>.tmp`.
_TEMP = re.compile(r"^\..+\.(\d+)(?:@([0-9a-f]{8}))?\.[0-9a-f]{12}\.tmp$")
#: A temporary file of another machine is taken as left behind once it is this old (seconds).
STALE_TEMP_AGE = 24 * 3600


def temp_name(target: Path) -> Path:
    """A temporary sibling of `target` no other process or thread picks (pid, machine, random)."""
    stem = target.name[:120]
    return target.with_name(f".{stem}.{os.getpid()}@{_HOST}.{secrets.token_hex(6)}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is not ours, or the platform cannot tell: keep its file
        return True
    return True


def remove_stale_temps(root: str | os.PathLike) -> int:
    """Remove the temporary files under `root` that a killed writer left behind; returns how many.

    A file of this machine goes when its process is gone; one of another machine (or from before
    machines were named) only once it is a day old, since its writer may still be running.
    """
    removed = 0
    now = time.time()
    for folder, _dirs, names in os.walk(root):
        for name in names:
            match = _TEMP.match(name)
            if match is None:
                continue
            path = os.path.join(folder, name)
            pid, host = int(match.group(1)), match.group(2)
            try:
                old = now - os.stat(path).st_mtime > STALE_TEMP_AGE
            except FileNotFoundError:
                continue
            if (host == _HOST and not _pid_alive(pid)) or old:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
    return removed


def remove_temps_of(target: str | os.PathLike) -> int:
    """Remove the temporary siblings of `target` (any writer's); returns how many. For a caller
    that knows their writers are gone: a worker lost on another machine with the file in hand."""
    path = Path(target)
    stem = path.name[:120]
    removed = 0
    for tmp in path.parent.glob(f".{glob_escape(stem)}.*.tmp"):
        if _TEMP.match(tmp.name):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
    return removed


def glob_escape(text: str) -> str:
    """`text` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, durable: bool = True) -> Iterator[io.BufferedWriter]:
    """A binary file to write `path` through: it appears complete, when the block ends without an
    error, or not at all (a temporary sibling renamed into place; removed on failure)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        with open(tmp, "xb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        tmp = temp_name(target)
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


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_ZIP_END = b"PK\x05\x06"


def is_whole(path: str | os.PathLike) -> bool:
    """Whether `path` is a whole file as this module writes them: not empty, and a PNG ends with
    its IEND chunk, an NPZ with its zip directory. A file cut short (a full disk, a copy stopped
    half-way) is not whole, so the view or image it belongs to is made again."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size == 0:
                return False
            suffix = os.path.splitext(os.fspath(path))[1].lower()
            if suffix == ".png":
                handle.seek(max(0, size - len(_PNG_END)))
                return handle.read() == _PNG_END
            if suffix == ".npz":
                handle.seek(max(0, size - 22))
                return handle.read(4) == _ZIP_END
            return True
    except OSError:
        return False


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
    records = list(records)
    if not records:
        return
    with locked(path):
        _append_locked(Path(path), records, durable)


def _append_locked(target: Path, records: Sequence[Mapping], durable: bool) -> None:
    """`append_records` for a caller that holds the lock."""
    data = b"".join(_record_line(r) for r in records)
    if not data:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
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


def iter_records(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, record) of each record of a JSONL file, read as a stream (nothing if the file
    does not exist).

    Blank lines are skipped and a last line without its newline (a torn append) is ignored; any
    other line that is not a JSON object raises DatasetError naming the file and line number.
    """
    p = Path(path)
    try:
        handle = open(p, "rb")  # noqa: SIM115 (closed below; a generator cannot use `with` across yields safely)
    except FileNotFoundError:
        return
    except OSError as err:
        raise DatasetError(f"{p}: cannot read ({err.strerror or err})") from err
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return  # a torn last line
            if not raw.strip():
                continue
            yield number, _parse_line(p, number, raw)


def _parse_line(p: Path, number: int, raw: bytes) -> dict:
    """One JSONL line as a record; `number` < 0 when the line's number is not known."""
    where = f"line {number}" if number > 0 else "a line"
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{p}: {where} is not valid JSON ({err}); fix or delete that line") from err
    if not isinstance(record, dict):
        raise DatasetError(
            f"{p}: {where} is a JSON {type(record).__name__}, not a record object; fix or delete that line"
        )
    return record


def read_records(path: str | os.PathLike) -> list[dict]:
    """All records of a JSONL file ([] if it does not exist); see `iter_records`."""
    return [record for _, record in iter_records(path)]


class RecordLog:
    """A JSONL file that several processes append to, holding each record once (by its key).

    `append` skips records whose key is already in the file (written by this process or by another
    one since), so two identical runs, or a model given twice, never write a view twice. `sort`
    rewrites the file in key order, so a run's file does not depend on which worker finished first.
    Only the keys are kept in memory, never the records.
    """

    def __init__(self, path: str | os.PathLike, key: Callable[[Mapping], str]) -> None:
        self.path = Path(path)
        self.key = key
        self._keys: set[str] = set()
        self._seen: tuple[int, int] | None = None  # (inode, bytes read) of the file as last read

    def _catch_up(self) -> None:
        """Read the lines appended since the last look (everything if the file was replaced)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._keys.clear()
            self._seen = None
            return
        start = 0
        if self._seen is not None and self._seen[0] == stat.st_ino and self._seen[1] <= stat.st_size:
            start = self._seen[1]
        else:
            self._keys.clear()
        with open(self.path, "rb") as handle:
            handle.seek(start)
            offset = start
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                offset += len(raw)
                if raw.strip():
                    self._keys.add(self.key(_parse_line(self.path, -1, raw)))
        self._seen = (stat.st_ino, offset)

    def keys(self) -> set[str]:
        """The keys of every record in the file now."""
        with locked(self.path):
            self._catch_up()
            return set(self._keys)

    def append(self, records: Iterable[Mapping], *, durable: bool = True) -> int:
        """Append the records whose key is not in the file yet (see `append_records`); returns how
        many were appended."""
        with locked(self.path):
            self._catch_up()
            new: list[Mapping] = []
            for record in records:
                key = self.key(record)
                if key not in self._keys:
                    self._keys.add(key)
                    new.append(record)
            _append_locked(self.path, new, durable)
            self._catch_up()
        return len(new)

    def sort(self) -> bool:
        """Rewrite the file in key order if it is not (atomically, under the lock); True if rewritten.

        Reads the file twice as a stream and holds (key, offset, length) per record in memory.
        """
        with locked(self.path):
            index: list[tuple[str, int, int]] = []
            in_order = True
            try:
                handle = open(self.path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                return False
            with handle:
                offset = 0
                for number, raw in enumerate(handle, start=1):
                    if not raw.endswith(b"\n"):
                        break
                    if raw.strip():
                        key = self.key(_parse_line(self.path, number, raw))
                        in_order = in_order and (not index or index[-1][0] <= key)
                        index.append((key, offset, len(raw)))
                    offset += len(raw)
                if in_order and offset == os.fstat(handle.fileno()).st_size:
                    return False
                index.sort()
                tmp = temp_name(self.path)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
                try:
                    try:
                        for _key, start, length in index:
                            handle.seek(start)
                            _write_all(fd, handle.read(length), durable=False)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    os.replace(tmp, self.path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            self._seen = None
            return True


def build_folder_atomically(final: Path, build: Callable[[Path], None], marker: str) -> Path:
    """Make the folder `final` with `build(tmp)` unless it is complete (has `marker`); return it.

    Built in a temporary folder beside `final` and renamed into place, so a reader never sees a
    half-written folder and concurrent builders cannot corrupt it (a losing rename drops its copy).
    `build` must write `marker` last.
    """
    if (final / marker).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(tmp)
        if final.exists() and not (final / marker).is_file():
            shutil.rmtree(final, ignore_errors=True)  # left by an interrupted non-atomic writer
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / marker).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
