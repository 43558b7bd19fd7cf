"""Read a binary FBX file's record structure and its GlobalSettings.

A binary FBX is a tree of records, each storing the absolute offset where it ends. Walking the
top-level records by these offsets shows a truncated file (cad_files' FBX check does that). The
GlobalSettings record holds the axes and unit scale Blender's FBX importer applies; reading them
lets the import know exactly what the importer did.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from .errors import CadError


def _head_len(version: int) -> int:
    """Bytes of a record header before its name (64-bit offsets from version 7500 on)."""
    return 25 if version >= 7500 else 13


def _record_header(data: bytes, offset: int, version: int) -> tuple[int, int, int, int]:
    """(end_offset, num_properties, property_bytes, name_length) of the record at `offset`."""
    if version >= 7500:
        return struct.unpack_from("<QQQB", data, offset)
    return struct.unpack_from("<IIIB", data, offset)


def top_level_records(p: Path, size: int, version: int) -> list[tuple[str, int, int]]:
    """Walk the top-level records by their end offsets: (name, start, end) each.

    Every record stores the absolute offset where it ends, so a truncated file shows up as a
    record ending past the end of the file or as a missing end record (CadError).
    """
    head_len = _head_len(version)
    records = []
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        offset = 27
        while True:
            if offset + head_len > size:
                raise CadError(
                    f"{p}: truncated binary FBX: the file ends at byte {size} inside its top-level records"
                )
            end, _nprops, _plen, nlen = _record_header(data, offset, version)
            if end == 0:
                return records
            name = bytes(data[offset + head_len : offset + head_len + nlen]).decode("ascii", "replace")
            if end > size:
                raise CadError(
                    f"{p}: truncated binary FBX: section {name!r} ends at byte {end}, the file has {size}"
                )
            if end <= offset + head_len:
                raise CadError(
                    f"{p}: corrupt binary FBX: section {name!r} at byte {offset} has a bad end offset"
                )
            records.append((name, offset, end))
            offset = end


def _properties(data: bytes, offset: int, count: int) -> tuple[list, int]:
    """Decode `count` scalar/string properties from `offset`; arrays are skipped (None)."""
    scalars = {"Y": "<h", "C": "<?", "I": "<i", "F": "<f", "D": "<d", "L": "<q"}
    values = []
    for _ in range(count):
        code = chr(data[offset])
        offset += 1
        if code in scalars:
            fmt = scalars[code]
            values.append(struct.unpack_from(fmt, data, offset)[0])
            offset += struct.calcsize(fmt)
        elif code in "SR":
            (n,) = struct.unpack_from("<I", data, offset)
            raw = bytes(data[offset + 4 : offset + 4 + n])
            values.append(raw.decode("utf-8", "replace") if code == "S" else raw)
            offset += 4 + n
        elif code in "fdlib":
            _n, _enc, clen = struct.unpack_from("<III", data, offset)
            values.append(None)
            offset += 12 + clen
        else:
            raise ValueError(f"unknown FBX property type {code!r}")
    return values, offset


def read_fbx_global_settings(path: str | os.PathLike) -> dict[str, object]:
    """The GlobalSettings properties of a binary FBX (UnitScaleFactor, UpAxis, FrontAxis, ...).

    Blender's importer derives its axis change and unit scale from these; reading them here lets
    the import compute exactly what it did. Give it a file `cad_files.check_cad_file` found to be a
    binary FBX (as the importer does): anything else raises CadError.
    """
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        version = struct.unpack("<I", fh.read(27)[23:27])[0]
    head_len = _head_len(version)
    found = {rec[0]: rec for rec in top_level_records(p, size, version)}
    if "GlobalSettings" not in found:
        raise CadError(f"{p}: corrupt binary FBX: no top-level 'GlobalSettings' section")
    _name, start, end = found["GlobalSettings"]
    settings: dict[str, object] = {}
    try:
        with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for child_start, child_end in _children(data, start, end, version):
                nlen = _record_header(data, child_start, version)[3]
                if bytes(data[child_start + head_len : child_start + head_len + nlen]) != b"Properties70":
                    continue
                for p_start, _p_end in _children(data, child_start, child_end, version):
                    _e2, n2, _pl2, nl2 = _record_header(data, p_start, version)
                    values, _ = _properties(data, p_start + head_len + nl2, n2)
                    if len(values) >= 5 and isinstance(values[0], str):
                        settings[values[0]] = values[4]
    except (struct.error, ValueError, IndexError) as exc:
        raise CadError(f"{p}: corrupt binary FBX: cannot read its GlobalSettings ({exc})") from exc
    return settings


def _children(data: bytes, start: int, end: int, version: int) -> list[tuple[int, int]]:
    """(start, end) of the nested records of the record at `start` (which ends at `end`)."""
    head_len = _head_len(version)
    _e, _n, plen, nlen = _record_header(data, start, version)
    offset = start + head_len + nlen + plen
    children = []
    while offset + head_len <= end:
        child_end, _n2, _p2, _l2 = _record_header(data, offset, version)
        if child_end == 0:
            break
        if child_end <= offset or child_end > end:
            raise ValueError(f"record at byte {offset} has a bad end offset {child_end}")
        children.append((offset, child_end))
        offset = child_end
    return children
