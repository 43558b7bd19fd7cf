"""Cheap checks of a CAD file before Blender sees it.

Blender's importers react to bad files in many ways (an exception, a 'CANCELLED' result, a line on
the console, or a silently empty scene). These checks read headers and declared sizes, so that a
missing, empty, truncated or mislabelled file fails at once with a one-line `CadError` naming the
file and the problem. They also look for nan/inf vertex coordinates where that is a plain scan
(text formats, binary STL, binary PLY vertex rows, glTF float positions): Blender's importers
validate meshes and silently turn such coordinates into 0, so after import they cannot be seen.
The checks cannot prove a file is good: the importer has the last word. Binary FBX records are
walked by fbx.py.
"""

from __future__ import annotations

import base64
import json
import mmap
import os
import re
import stat
import struct
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from .errors import CadError
from .fbx import top_level_records

#: File extensions import_cad understands (lower case, with the dot).
SUPPORTED = {".obj", ".glb", ".gltf", ".ply", ".stl", ".fbx"}

#: The first bytes of every binary FBX file (Autodesk's "Kaydara" header).
FBX_BINARY_MAGIC = b"Kaydara FBX Binary  \x00"
#: Blender's FBX importer refuses files older than this version.
FBX_MIN_VERSION = 7100
#: The smallest plausible binary FBX: header, one top-level record, the end record and a footer.
FBX_MIN_SIZE = 160

_GLB_JSON = 0x4E4F534A
_GLB_BIN = 0x004E4942
_GLTF_COMPONENT_SIZE = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_GLTF_TYPE_COUNT = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}

#: PLY's scalar types as numpy type codes (without byte order).
_PLY_NUMPY = {
    "char": "i1", "uchar": "u1", "short": "i2", "ushort": "u2", "int": "i4", "uint": "u4", "float": "f4", "double": "f8",
    "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4", "uint32": "u4", "float32": "f4",
    "float64": "f8",
}  # fmt: skip
_PLY_TYPES = {name: np.dtype(code).itemsize for name, code in _PLY_NUMPY.items()}
_PLY_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")
_PLY_MAX_HEADER = 1 << 20

_OBJ_VERTEX = re.compile(rb"^[ \t]*v[ \t]", re.MULTILINE)
_OBJ_FACE = re.compile(rb"^[ \t]*f[ \t]", re.MULTILINE)
_OBJ_NONFINITE = re.compile(
    rb"^[ \t]*v[ \t][^\n#]*?(?<![A-Za-z])[+-]?(?:nan|inf)", re.MULTILINE | re.IGNORECASE
)

#: OBJ's material libraries, and a material file's texture maps (the file name ends the line).
_OBJ_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+([^\r\n#]+)", re.MULTILINE)
_MTL_MAP = re.compile(rb"^[ \t]*(?:map_\w+|bump|disp|decal|refl)[ \t]+([^\r\n#]+)", re.MULTILINE)
#: The exponent of a number that may not fit a float32 (38 or more); the scan starts from these.
_HUGE_EXPONENT = re.compile(rb"[eE]\+?0*(?:3[89]|[4-9][0-9]|[1-9][0-9][0-9])")
#: The mantissa just before such an exponent.
_MANTISSA = re.compile(rb"(?<![A-Za-z0-9_.])[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)$")
_FLOAT32_MAX = float(np.finfo(np.float32).max)

_STL_NONFINITE = re.compile(
    rb"^[ \t]*vertex[ \t][^\n]*?(?<![A-Za-z])[+-]?(?:nan|inf)", re.MULTILINE | re.IGNORECASE
)
#: Spellings of nan and inf that a quick scan looks for before the slower exact patterns.
_NAN_OR_INF = (b"nan", b"NaN", b"NAN", b"Nan", b"inf", b"Inf", b"INF")
_PLY_NONFINITE = re.compile(rb"(?:^|[ \t])[+-]?(?:nan|inf)", re.MULTILINE | re.IGNORECASE)
_STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
_BLOCK = 1 << 20

_CHUNK = 1 << 20


def check_cad_file(path: str | os.PathLike) -> str:
    """Check that `path` looks like a usable CAD file; return its format ('obj', 'glb', ...).

    Raises CadError (naming the file) for a missing file, a directory, an empty file, an
    unsupported extension, a file whose header shows it is truncated or not of its format, and
    nan/inf vertex coordinates (all formats but FBX).
    """
    p = Path(path)
    if not p.exists():
        raise CadError(f"CAD file not found: {p}")
    if p.is_dir():
        raise CadError(f"{p}: is a directory, not a CAD file")
    ext = p.suffix.lower()
    if ext not in SUPPORTED:
        raise CadError(
            f"{p}: unsupported CAD file extension {ext or '(none)'!r}; use one of {', '.join(sorted(SUPPORTED))}"
        )
    try:
        size = p.stat().st_size
        if size == 0:
            raise CadError(f"{p}: file is empty (0 bytes)")
        _CHECKS[ext](p, size)
    except OSError as exc:
        raise CadError(f"{p}: cannot read the file ({exc.strerror or exc})") from exc
    return ext[1:]


def _bad(p: Path, problem: str) -> CadError:
    return CadError(f"{p}: {problem}")


# ---------------------------------------------------------------------------------------------- glTF


def _check_glb(p: Path, size: int) -> None:
    with open(p, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"glTF":
            raise _bad(p, "not a binary glTF (GLB) file: it does not start with 'glTF'")
        version, length = struct.unpack_from("<II", head, 4)
        if version != 2:
            raise _bad(p, f"GLB version {version} is not supported (only glTF 2.0)")
        if length > size:
            raise _bad(p, f"truncated GLB: the header declares {length} bytes but the file has {size}")
        if length < 20:
            raise _bad(p, f"corrupt GLB: the declared length {length} cannot hold a JSON chunk")
        chunks: list[tuple[int, int, int]] = []
        offset = 12
        while offset < length:
            if offset + 8 > length:
                raise _bad(p, f"corrupt GLB: a chunk header at byte {offset} runs past the declared length")
            fh.seek(offset)
            clen, ctype = struct.unpack("<II", fh.read(8))
            if offset + 8 + clen > length:
                raise _bad(
                    p,
                    f"truncated GLB: chunk {len(chunks)} at byte {offset} declares {clen} bytes, "
                    f"only {length - offset - 8} remain",
                )
            chunks.append((ctype, offset + 8, clen))
            offset += 8 + clen
        if chunks[0][0] != _GLB_JSON:
            raise _bad(p, "corrupt GLB: the first chunk is not the JSON chunk")
        fh.seek(chunks[0][1])
        raw = fh.read(chunks[0][2])
    glb_bin = (chunks[1][1], chunks[1][2]) if len(chunks) > 1 and chunks[1][0] == _GLB_BIN else None
    _check_gltf_json(p, raw, glb_bin)


def _check_gltf(p: Path, size: int) -> None:
    _check_gltf_json(p, p.read_bytes(), None)


def _check_gltf_json(p: Path, raw: bytes, glb_bin: tuple[int, int] | None) -> None:
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(p, f"the glTF JSON does not parse ({exc})") from exc
    except RecursionError:
        raise _bad(p, "the glTF JSON nests too deeply to be a glTF document") from None
    if not isinstance(doc, dict):
        raise _bad(p, "the glTF JSON is not an object")
    try:
        _check_gltf_doc(p, doc, glb_bin)
    except CadError:
        raise
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
        raise _bad(p, f"malformed glTF JSON ({type(exc).__name__}: {exc})") from exc


def _check_gltf_doc(p: Path, doc: dict, glb_bin: tuple[int, int] | None) -> None:
    glb_bin_length = None if glb_bin is None else glb_bin[1]
    version = str(doc.get("asset", {}).get("version", "2.0"))
    if not version.startswith("2"):
        raise _bad(p, f"glTF version {version} is not supported (only glTF 2.0)")
    meshes = doc.get("meshes") or []
    if not meshes:
        raise _bad(p, "the glTF file contains no meshes")
    buffers = doc.get("buffers") or []
    lengths: list[int] = []
    sources: list[tuple[Path, int] | bytes] = []  # where each buffer's bytes are
    for i, buf in enumerate(buffers):
        need = int(buf.get("byteLength", 0))
        uri = buf.get("uri")
        if uri is None:
            if i != 0 or glb_bin_length is None:
                raise _bad(p, f"glTF buffer {i} has no uri and there is no GLB binary chunk")
            if glb_bin_length < need:
                raise _bad(
                    p, f"truncated GLB: the binary chunk has {glb_bin_length} bytes, buffer 0 needs {need}"
                )
            sources.append((p, glb_bin[0]))
        elif uri.startswith("data:"):
            head, _, payload = uri.partition(",")
            if ";base64" not in head:
                raise _bad(p, f"glTF buffer {i} has a data URI that is not base64")
            try:
                decoded = base64.b64decode(payload, validate=True)
            except ValueError as exc:
                raise _bad(p, f"glTF buffer {i} has a corrupt base64 data URI") from exc
            have = len(decoded)
            sources.append(decoded)
            if have < need:
                raise _bad(p, f"glTF buffer {i}'s data URI holds {have} bytes, it declares {need}")
        else:
            ext_path = p.parent / unquote(uri)
            _check_side_file(p, ext_path, f"glTF buffer {i}'s file {uri!r}")
            if not ext_path.is_file():
                raise _bad(p, f"glTF buffer {i}: external file {uri!r} not found next to it")
            have = ext_path.stat().st_size
            if have < need:
                raise _bad(p, f"glTF buffer {i}: external file {uri!r} has {have} bytes, {need} declared")
            sources.append((ext_path, 0))
        lengths.append(need)
    for i, image in enumerate(doc.get("images") or []):
        uri = image.get("uri")
        if isinstance(uri, str) and not uri.startswith("data:"):
            _check_side_file(p, p.parent / unquote(uri), f"glTF image {i}'s file {uri!r}")
    views = doc.get("bufferViews") or []
    for i, view in enumerate(views):
        b = int(view["buffer"])
        if not 0 <= b < len(lengths):
            raise _bad(p, f"glTF bufferView {i} refers to a missing buffer {b}")
        end = int(view.get("byteOffset", 0)) + int(view["byteLength"])
        if end > lengths[b]:
            raise _bad(
                p, f"glTF bufferView {i} ends at byte {end}, past the end of buffer {b} ({lengths[b]})"
            )
    accessors = doc.get("accessors") or []
    for i, acc in enumerate(accessors):
        if "bufferView" not in acc:
            continue
        v = int(acc["bufferView"])
        if not 0 <= v < len(views):
            raise _bad(p, f"glTF accessor {i} refers to a missing bufferView {v}")
        comp = _GLTF_COMPONENT_SIZE.get(int(acc.get("componentType", 0)))
        ncomp = _GLTF_TYPE_COUNT.get(acc.get("type"))
        count = int(acc.get("count", 0))
        if comp is None or ncomp is None or count == 0 or (ncomp > 4 and comp < 4):
            continue  # padded matrix layouts: not worth the arithmetic here
        elem = comp * ncomp
        declared = int(views[v].get("byteStride", 0))
        if declared and declared < elem:
            raise _bad(
                p,
                f"glTF accessor {i}: its bufferView {v}'s byteStride {declared} is smaller than one element "
                f"({elem} bytes), so its elements would overlap",
            )
        stride = declared or elem
        end = int(acc.get("byteOffset", 0)) + stride * (count - 1) + elem
        if end > int(views[v]["byteLength"]):
            raise _bad(
                p, f"glTF accessor {i} needs {end} bytes, its bufferView {v} has {views[v]['byteLength']}"
            )
    for m, mesh in enumerate(meshes):
        for k, prim in enumerate(mesh.get("primitives") or []):
            pos = prim.get("attributes", {}).get("POSITION")
            if pos is None:
                raise _bad(p, f"glTF mesh {m} primitive {k} has no POSITION attribute")
            if not 0 <= int(pos) < len(accessors):
                raise _bad(p, f"glTF mesh {m} primitive {k} refers to a missing accessor {pos}")
            if not _gltf_positions_finite(accessors[int(pos)], views, sources):
                raise _bad(p, f"non-finite vertex coordinate (nan or inf) in glTF mesh {m} primitive {k}")


def _gltf_positions_finite(acc: dict, views: list, sources: list) -> bool:
    """False when a float32 VEC3 accessor (without sparse data) holds a nan or inf."""
    if "bufferView" not in acc or acc.get("componentType") != 5126 or acc.get("type") != "VEC3":
        return True
    view = views[int(acc["bufferView"])]
    count = int(acc.get("count", 0))
    stride = int(view.get("byteStride", 0)) or 12
    start = int(view.get("byteOffset", 0)) + int(acc.get("byteOffset", 0))
    source = sources[int(view["buffer"])]
    if count == 0:
        return True
    if isinstance(source, bytes):
        data = np.frombuffer(source, dtype=np.uint8, count=stride * (count - 1) + 12, offset=start)
    else:
        path, base = source
        data = np.memmap(
            path, dtype=np.uint8, mode="r", offset=base + start, shape=(stride * (count - 1) + 12,)
        )
    rows = np.lib.stride_tricks.as_strided(data, shape=(count, 12), strides=(stride, 1))
    return bool(np.isfinite(np.ascontiguousarray(rows).view("<f4")).all())


# ----------------------------------------------------------------------------------------------- STL


def _check_stl(p: Path, size: int) -> None:
    with open(p, "rb") as fh:
        head = fh.read(_CHUNK)
    if size >= 84:
        (n,) = struct.unpack_from("<I", head, 80)
        if 84 + 50 * n == size:
            if n == 0:
                raise _bad(p, "binary STL with 0 triangles")
            records = np.memmap(p, dtype=_STL_RECORD, mode="r", offset=84, shape=(n,))
            for start in range(0, n, _BLOCK):
                bad = ~np.isfinite(records["corners"][start : start + _BLOCK]).all(axis=(1, 2))
                if bad.any():
                    triangle = start + int(np.argmax(bad))
                    raise _bad(p, f"non-finite vertex coordinate (nan or inf) in triangle {triangle}")
            return
    if head.lstrip().startswith(b"solid") and b"\x00" not in head:
        if b"facet" not in head:
            raise _bad(p, "ASCII STL without any 'facet' (no triangles)")
        _search_nonfinite(p, _STL_NONFINITE, 0)
        _search_huge(p, 0)
        return
    if size < 84:
        raise _bad(p, f"too small for a binary STL ({size} bytes, the header alone is 84)")
    raise _bad(
        p,
        f"truncated or corrupt binary STL: the header declares {n} triangles ({84 + 50 * n} bytes) "
        f"but the file has {size} bytes",
    )


# ----------------------------------------------------------------------------------------------- PLY


def _check_ply(p: Path, size: int) -> None:
    with open(p, "rb") as fh:
        head = fh.read(_PLY_MAX_HEADER)
    if not (head.startswith(b"ply\n") or head.startswith(b"ply\r\n")):
        raise _bad(p, "not a PLY file: the first line is not 'ply'")
    end = re.search(rb"(?:^|\n)end_header[ \t]*\r?\n", head)
    if end is None:
        raise _bad(p, "corrupt PLY header: no 'end_header' line")
    data_start = end.end()
    try:
        text = head[: end.start()].decode("ascii")
    except UnicodeDecodeError as exc:
        raise _bad(p, "corrupt PLY header: it is not ASCII text") from exc
    fmt = None
    elements: list[list] = []  # [name, count, fixed bytes per row, list count bytes per row, properties]
    for lineno, line in enumerate(text.splitlines()[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        key = words[0]
        if key == "format":
            if len(words) != 3 or words[1] not in _PLY_FORMATS:
                raise _bad(p, f"corrupt PLY header, line {lineno}: bad format line {line.strip()!r}")
            fmt = words[1]
        elif key == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise _bad(p, f"corrupt PLY header, line {lineno}: bad element line {line.strip()!r}")
            elements.append([words[1], int(words[2]), 0, 0, []])
        elif key == "property":
            if not elements:
                raise _bad(p, f"corrupt PLY header, line {lineno}: a property before any element")
            el = elements[-1]
            if len(words) == 5 and words[1] == "list":
                if words[2] not in _PLY_TYPES or words[3] not in _PLY_TYPES:
                    raise _bad(p, f"corrupt PLY header, line {lineno}: unknown type in {line.strip()!r}")
                el[3] += _PLY_TYPES[words[2]]  # at least the item count of each list
                el[4].append((words[4], None))
            elif len(words) == 3 and words[1] in _PLY_TYPES:
                el[2] += _PLY_TYPES[words[1]]
                el[4].append((words[2], words[1]))
            else:
                raise _bad(p, f"corrupt PLY header, line {lineno}: bad property line {line.strip()!r}")
        else:
            raise _bad(p, f"corrupt PLY header, line {lineno}: unexpected {key!r}")
    if fmt is None:
        raise _bad(p, "corrupt PLY header: no 'format' line")
    vertex = next((el for el in elements if el[0] == "vertex"), None)
    if vertex is None or vertex[1] == 0:
        raise _bad(p, "the PLY file has no vertices")
    data_size = size - data_start
    if fmt == "ascii":
        rows = sum(el[1] for el in elements)
        lines = _count_lines(p, data_start, size, stop_at=rows)
        if lines < rows:
            raise _bad(p, f"truncated ASCII PLY: the header declares {rows} rows, only {lines} lines follow")
        _search_nonfinite(p, _PLY_NONFINITE, data_start)
        _search_huge(p, data_start)
    else:
        need = sum(el[1] * (el[2] + el[3]) for el in elements)
        if data_size < need:
            raise _bad(
                p,
                f"truncated binary PLY: the header declares at least {need} bytes of data, "
                f"only {data_size} follow it",
            )
        _check_ply_vertices(p, fmt, elements, data_start)


def _check_ply_vertices(p: Path, fmt: str, elements: list[list], data_start: int) -> None:
    """Refuse nan/inf vertex positions of a binary PLY (when the vertex rows are at a fixed offset)."""
    offset = data_start
    for name, count, fixed, list_bytes, props in elements:
        if list_bytes:
            return  # rows of unknown size before or in the vertex element: leave it to the importer
        if name == "vertex":
            order = "<" if fmt == "binary_little_endian" else ">"
            dtype = np.dtype([(prop, order + _PLY_NUMPY[kind]) for prop, kind in props])
            rows = np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=(count,))
            for axis in ("x", "y", "z"):
                if axis in dtype.names and dtype[axis].kind == "f" and not np.isfinite(rows[axis]).all():
                    index = int(np.argmax(~np.isfinite(rows[axis])))
                    raise _bad(p, f"non-finite vertex coordinate (nan or inf) at vertex {index}")
                if axis in dtype.names and dtype[axis].itemsize > 4:
                    huge = np.abs(rows[axis]) > _FLOAT32_MAX
                    if huge.any():
                        index = int(np.argmax(huge))
                        raise _bad(
                            p,
                            f"vertex {index}'s {axis} {float(rows[axis][index]):g} does not fit a 32-bit float, "
                            "which Blender stores vertices as: scale the model down",
                        )
            return
        offset += count * fixed


def _check_side_file(p: Path, side: Path, what: str) -> None:
    """Refuse a file a model refers to (a material, texture or buffer) that exists but is not a
    regular file: an importer would block forever on a FIFO or read a device. A missing one is left
    to the importer, which skips it."""
    try:
        mode = os.stat(side).st_mode  # stat never opens, so it does not block on a FIFO
    except OSError:
        return
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise _bad(p, f"{what} is {kind}; an importer would block or fail on it")


def _check_obj_side_files(p: Path, data: mmap.mmap) -> None:
    """OBJ's material files (`mtllib a.mtl b.mtl`) and their textures (`map_Kd [options] file`)."""
    for line in _OBJ_MTLLIB.finditer(data):
        for name in line.group(1).decode("utf-8", "replace").split():
            mtl = p.parent / name
            _check_side_file(p, mtl, f"its material file {name!r}")
            if not mtl.is_file() or mtl.stat().st_size > 64 << 20:
                continue
            for texture in _MTL_MAP.finditer(mtl.read_bytes()):
                words = texture.group(1).decode("utf-8", "replace").split()
                if words:
                    _check_side_file(p, mtl.parent / words[-1], f"the texture {words[-1]!r} of {name!r}")


def _search_huge(p: Path, start: int) -> None:
    """Refuse a text file with a vertex coordinate too large for a 32-bit float (Blender stores
    vertices as float32: the importer would silently turn it into inf or clamp it)."""
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for exponent in _HUGE_EXPONENT.finditer(data, start):
            end = exponent.end()
            while end < len(data) and data[end : end + 1].isdigit():
                end += 1
            mantissa = _MANTISSA.search(data[max(start, exponent.start() - 64) : exponent.start()])
            if mantissa is None:
                continue  # a word such as "size3e40", not a number
            number = mantissa.group(0) + data[exponent.start() : end]
            try:
                value = float(number)
            except ValueError:
                continue
            if abs(value) > _FLOAT32_MAX:
                lineno = data[: exponent.start()].count(b"\n") + 1
                raise _bad(
                    p,
                    f"vertex coordinate {number.decode()} on line {lineno} does not fit a 32-bit float, "
                    "which Blender stores vertices as: scale the model down",
                )


def _search_nonfinite(p: Path, pattern: re.Pattern, start: int) -> None:
    """Refuse a text file where `pattern` (a nan or inf number) matches after byte `start`."""
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if not any(data.find(word, start) >= 0 for word in _NAN_OR_INF):  # the usual case, fast
            return
        bad = pattern.search(data, start)
        if bad is not None:
            lineno = data[: bad.start()].count(b"\n") + 1
            raise _bad(p, f"non-finite vertex coordinate (nan or inf) on line {lineno}")


def _count_lines(p: Path, start: int, size: int, stop_at: int) -> int:
    """Lines from byte `start` to the end (counting a last line without newline); stops early."""
    lines = 0
    last = b"\n"
    with open(p, "rb") as fh:
        fh.seek(start)
        while lines < stop_at:
            block = fh.read(_CHUNK)
            if not block:
                break
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n" and size > start:
        lines += 1
    return lines


# ----------------------------------------------------------------------------------------------- OBJ


def _check_obj(p: Path, size: int) -> None:
    with open(p, "rb") as fh:
        if b"\x00" in fh.read(4096):
            raise _bad(p, "not a text OBJ file (it contains binary data)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if not _has_line(data, b"v", _OBJ_VERTEX):
                raise _bad(p, "the OBJ file has no vertex ('v') lines")
            if not _has_line(data, b"f", _OBJ_FACE):
                raise _bad(p, "the OBJ file has no face ('f') lines")
            _check_obj_side_files(p, data)
    _search_nonfinite(p, _OBJ_NONFINITE, 0)
    _search_huge(p, 0)


def _has_line(data: mmap.mmap, keyword: bytes, pattern: re.Pattern) -> bool:
    """Whether a line starts with `keyword` and a blank: fast literal searches, then `pattern`."""
    for sep in (b" ", b"\t"):
        if data[: len(keyword) + 1] == keyword + sep or data.find(b"\n" + keyword + sep) >= 0:
            return True
    return pattern.search(data) is not None


# ----------------------------------------------------------------------------------------------- FBX


def _check_fbx(p: Path, size: int) -> None:
    with open(p, "rb") as fh:
        head = fh.read(1024)
    if head.startswith(FBX_BINARY_MAGIC):
        if size < FBX_MIN_SIZE:
            raise _bad(p, f"truncated binary FBX: {size} bytes is too small to hold a scene")
        version = struct.unpack_from("<I", head, 23)[0]
        if version < FBX_MIN_VERSION:
            raise _bad(p, f"FBX version {version} is too old: Blender imports {FBX_MIN_VERSION} or later")
        names = {rec[0] for rec in top_level_records(p, size, version)}
        for needed in ("GlobalSettings", "Objects"):
            if needed not in names:
                raise _bad(p, f"corrupt binary FBX: no top-level {needed!r} section")
        return
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b";") or b"FBXHeaderExtension:" in text:
        raise _bad(p, "ASCII FBX is not supported by Blender's importer: re-export it as binary FBX")
    raise _bad(p, "not an FBX file: no 'Kaydara FBX Binary' header")


_CHECKS = {
    ".glb": _check_glb,
    ".gltf": _check_gltf,
    ".stl": _check_stl,
    ".ply": _check_ply,
    ".obj": _check_obj,
    ".fbx": _check_fbx,
}
