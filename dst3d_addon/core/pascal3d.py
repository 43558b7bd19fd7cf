"""PASCAL3D+'s folder layout and annotation files: written from dst3d's records, read back from any
PASCAL3D+-layout folder (dst3d's exports, PASCAL3D+ itself, ObjectNet3D), in one place.

The layout (PASCAL3D+ release 1.1; ObjectNet3D keeps the same files):

    Images/<class>_<source>/<name>.<ext>          the images (PASCAL3D+'s sources: imagenet, pascal)
    Annotations/<class>_<source>/<name>.mat       one MATLAB struct `record` per image
    Image_sets/<class>_<source>_<split>.txt       the names of a split's images, one a line, no extension
    CAD/<class>.mat                               the class's CAD models: a 1xN struct array (vertices, faces)
    CAD/<class>/<NN>.off                          the same models as OFF files (what NeMo reads), NN = 01, 02, ...

`record` holds filename, folder, database, imgsize ([W H 3]), size (width, height, depth),
segmented and objects, a 1xN struct array. Each object has class, bbox ([x1 y1 x2 y2]: the first
and last pixel's 1-based column and row), bndbox, truncated, occluded, difficult, cad_index
(1-based, into CAD/<class>.mat) and viewpoint, in PASCAL3D+'s units:

    azimuth, elevation, theta      degrees (azimuth in [0, 360), theta in (-180, 180])
    distance                       CAD units (dst3d: object units, the longest side of the box is 1)
    focal, viewport                the focal length in pixels is focal x viewport (dst3d: focal 1)
    px, py                         the principal point in MATLAB's pixels (pixel i's centre at i, from 1)
    azimuth_coarse, elevation_coarse, error, interval_azimuth, interval_elevation, num_anchor

PASCAL3D+'s pose convention is dst3d's (docs/pose-convention.md): the angles convert by degrees
and nothing else. Only the pixels differ: MATLAB puts pixel centres on whole numbers from 1, dst3d
at i + 0.5 from 0, so a MATLAB coordinate is dst3d's + 0.5 (`project` below is PASCAL3D+'s
`project_3d.m`, in MATLAB's pixels). Exports add a `dst3d` struct to `record` (the view id, the
image index k, the model id) that PASCAL3D+'s own tools ignore.

scipy (for the .mat files) is imported when a .mat is written or read.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Intrinsics, Pose, wrap_angle
from .errors import DatasetError
from .packages import require

IMAGES = "Images"
ANNOTATIONS = "Annotations"
IMAGE_SETS = "Image_sets"
CAD = "CAD"
#: The `database` and folder source of dst3d's exports (PASCAL3D+'s own are imagenet and pascal).
DEFAULT_SOURCE = "dst3d"
#: What the .mat files' text header says (scipy stamps the time there; a fixed one keeps bytes equal).
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by dst3d (PASCAL3D+ layout)"
_HEADER_LEN = 116

#: The object fields exports write, in PASCAL3D+'s order.
OBJECT_FIELDS = (
    "class",
    "bbox",
    "bndbox",
    "truncated",
    "occluded",
    "difficult",
    "cad_index",
    "viewpoint",
)


def subset(class_name: str, source: str = DEFAULT_SOURCE) -> str:
    """The folder of one class and source: `<class>_<source>` (aeroplane_imagenet)."""
    return f"{class_name}_{source}"


def image_set_name(subset_name: str, split: str) -> str:
    """`Image_sets/<class>_<source>_<split>.txt` (relative to the root)."""
    return f"{IMAGE_SETS}/{subset_name}_{split}.txt"


def cad_off_name(class_name: str, cad_index: int) -> str:
    """`CAD/<class>/<NN>.off`, NN the 1-based CAD index with two digits (NeMo's names)."""
    return f"{CAD}/{class_name}/{cad_index:02d}.off"


# --------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Viewpoint:
    """PASCAL3D+'s viewpoint of one object, in its units (degrees, CAD units, MATLAB pixels)."""

    azimuth: float
    elevation: float
    theta: float
    distance: float
    focal: float
    viewport: float
    px: float
    py: float

    def as_struct(self) -> dict[str, float]:
        """The `viewpoint` struct of a .mat, with the fields PASCAL3D+'s annotations carry."""
        return {
            "azimuth_coarse": self.azimuth,
            "azimuth": self.azimuth,
            "elevation_coarse": self.elevation,
            "elevation": self.elevation,
            "distance": self.distance,
            "focal": self.focal,
            "px": self.px,
            "py": self.py,
            "theta": self.theta,
            "error": 0.0,
            "interval_azimuth": 0.0,
            "interval_elevation": 0.0,
            "num_anchor": 0.0,
            "viewport": self.viewport,
        }

    @property
    def pose(self) -> Pose:
        """The pose in dst3d's units (radians, the same distance)."""
        return Pose(
            math.radians(self.azimuth), math.radians(self.elevation), math.radians(self.theta), self.distance
        )

    def intrinsics(self, width: int, height: int) -> Intrinsics:
        """dst3d's intrinsics (focal length in pixels, principal point in dst3d's pixels)."""
        return Intrinsics(int(width), int(height), self.focal * self.viewport, (self.px - 0.5, self.py - 0.5))


def viewpoint_from_pose(pose: Pose, intrinsics: Intrinsics) -> Viewpoint:
    """PASCAL3D+'s viewpoint of a dst3d pose and camera (the inverse of `Viewpoint.pose`/`intrinsics`)."""
    azimuth = math.degrees(pose.azimuth) % 360.0
    if azimuth >= 360.0:  # a tiny negative azimuth rounds up to 360.0
        azimuth = 0.0
    return Viewpoint(
        azimuth=azimuth,
        elevation=math.degrees(pose.elevation),
        theta=math.degrees(wrap_angle(pose.theta)),
        distance=float(pose.distance),
        focal=1.0,
        viewport=float(intrinsics.viewport),
        px=float(intrinsics.principal[0]) + 0.5,
        py=float(intrinsics.principal[1]) + 0.5,
    )


def bbox_to_pascal(bbox: Sequence[float]) -> list[float]:
    """dst3d's [u0, v0, u1, v1] (continuous; u1 = last column + 1) to PASCAL3D+'s [x1, y1, x2, y2]
    (the first and last pixel's 1-based column and row)."""
    u0, v0, u1, v1 = (float(x) for x in bbox)
    return [u0 + 1.0, v0 + 1.0, u1, v1]


def bbox_from_pascal(bbox: Sequence[float]) -> list[float]:
    """The inverse of `bbox_to_pascal`."""
    x1, y1, x2, y2 = (float(x) for x in bbox)
    return [x1 - 1.0, y1 - 1.0, x2, y2]


def project(vertices: np.ndarray, viewpoint: Viewpoint) -> np.ndarray:
    """PASCAL3D+'s `project_3d.m`: CAD vertices (N, 3) to MATLAB pixels (N, 2).

    Subtract 0.5 for dst3d's pixels; the 0-based pixel a point falls in is `round(x) - 1`.
    """
    a, e = math.radians(viewpoint.azimuth), math.radians(viewpoint.elevation)
    theta, d = math.radians(viewpoint.theta), viewpoint.distance
    C = np.array([d * math.cos(e) * math.sin(a), -d * math.cos(e) * math.cos(a), d * math.sin(e)])
    a, e = -a, -(math.pi / 2 - e)
    Rz = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    Rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(e), -math.sin(e)], [0.0, math.sin(e), math.cos(e)]])
    R = Rx @ Rz
    M = viewpoint.viewport * viewpoint.focal
    P = np.diag([M, M, -1.0]) @ np.hstack([R, (-R @ C)[:, None]])
    X = np.hstack([np.asarray(vertices, dtype=np.float64), np.ones((len(vertices), 1))])
    x = P @ X.T
    x = x[:2] / x[2]
    R2d = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    x = (R2d @ x).T
    x[:, 1] *= -1.0
    return x + np.array([viewpoint.px, viewpoint.py])


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Pascal3dObject:
    """One annotated object; `bbox` is in dst3d's pixels, `viewpoint` None when it has none
    (PASCAL3D+ leaves it empty, or sets distance 0, for objects it could not annotate)."""

    class_name: str
    bbox: tuple[float, float, float, float] | None
    viewpoint: Viewpoint | None
    cad_index: int
    truncated: bool = False
    occluded: bool = False
    difficult: bool = False

    def as_struct(self) -> dict[str, Any]:
        """The object's fields as the .mat holds them (OBJECT_FIELDS)."""
        box = bbox_to_pascal(self.bbox) if self.bbox is not None else [0.0, 0.0, 0.0, 0.0]
        return {
            "class": self.class_name,
            "bbox": np.array([box], dtype=np.float64),
            "bndbox": {"xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3]},
            "truncated": float(self.truncated),
            "occluded": float(self.occluded),
            "difficult": float(self.difficult),
            "cad_index": float(self.cad_index),
            "viewpoint": self.viewpoint.as_struct() if self.viewpoint is not None else np.zeros((0, 0)),
        }


@dataclass(frozen=True)
class Pascal3dImage:
    """One annotation file: the image it names, its size and its objects (and dst3d's provenance)."""

    annotation: Path
    image: Path
    subset: str
    name: str
    width: int
    height: int
    objects: tuple[Pascal3dObject, ...]
    dst3d: Mapping[str, Any] = field(default_factory=dict)


def _header_fixed(data: bytes) -> bytes:
    """The .mat bytes with scipy's time-stamped text header replaced by a fixed one."""
    return _MAT_HEADER.ljust(_HEADER_LEN, b" ") + data[_HEADER_LEN:]


def _savemat(variables: Mapping[str, Any], purpose: str) -> bytes:
    sio = require("scipy.io", package="scipy", purpose=purpose)
    buffer = io.BytesIO()
    sio.savemat(buffer, dict(variables), do_compression=False, oned_as="row")
    return _header_fixed(buffer.getvalue())


def annotation_bytes(
    *,
    filename: str,
    subset_name: str,
    width: int,
    height: int,
    objects: Sequence[Pascal3dObject],
    database: str = DEFAULT_SOURCE,
    dst3d: Mapping[str, Any] | None = None,
) -> bytes:
    """The bytes of `Annotations/<subset>/<name>.mat` (the same input gives the same bytes)."""
    structs = np.empty((1, len(objects)), dtype=[(name, object) for name in OBJECT_FIELDS])
    for i, obj in enumerate(objects):
        struct = obj.as_struct()
        structs[0, i] = tuple(struct[name] for name in OBJECT_FIELDS)
    record: dict[str, Any] = {
        "filename": filename,
        "folder": subset_name,
        "database": database,
        "size": {"width": float(width), "height": float(height), "depth": 3.0},
        "imgsize": np.array([[float(width), float(height), 3.0]]),
        "segmented": 0.0,
        "objects": structs,
    }
    if dst3d:
        record["dst3d"] = {key: value for key, value in dst3d.items() if value is not None}
    return _savemat({"record": record}, "the pascal3d format")


class _Fields:
    """Reads fields of a loaded .mat struct, raising DatasetError that names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> DatasetError:
        return DatasetError(f"{self.path}: {where} {problem}; is this a PASCAL3D+ annotation file?")

    def get(self, struct: Any, name: str, where: str) -> Any:
        if not hasattr(struct, "_fieldnames") or name not in struct._fieldnames:
            raise self.fail(f"{where}.{name}", "is missing")
        return getattr(struct, name)

    def number(self, value: Any, where: str) -> float | None:
        """A number, or None for an empty field; DatasetError if it is not numeric or not finite."""
        arr = np.asarray(value)
        if arr.size == 0:
            return None
        if arr.dtype.kind not in "biuf" or arr.size != 1:
            raise self.fail(where, f"must be a number, got {value!r}")
        number = float(arr.reshape(-1)[0])
        if not math.isfinite(number):
            raise self.fail(where, f"must be finite, got {number}")
        return number

    def field_number(self, struct: Any, name: str, where: str) -> float | None:
        if not hasattr(struct, "_fieldnames") or name not in struct._fieldnames:
            return None
        return self.number(getattr(struct, name), f"{where}.{name}")

    def text(self, value: Any, where: str) -> str:
        if isinstance(value, str):
            return value
        arr = np.asarray(value)
        if arr.dtype.kind == "U" and arr.size == 1:
            return str(arr.reshape(-1)[0])
        raise self.fail(where, f"must be text, got {value!r}")


def _structs(value: Any) -> list[Any]:
    """A struct array loaded with squeeze_me as a list (one struct, an array of them, or empty)."""
    if hasattr(value, "_fieldnames"):
        return [value]
    arr = np.asarray(value, dtype=object)
    return [v for v in arr.reshape(-1) if hasattr(v, "_fieldnames")]


def _viewpoint(f: _Fields, vp: Any, where: str) -> Viewpoint | None:
    if not hasattr(vp, "_fieldnames"):
        return None  # PASCAL3D+ leaves the viewpoint of an unannotated object empty
    distance = f.field_number(vp, "distance", where)
    if not distance:
        return None  # project_3d.m: distance 0 means no viewpoint

    def angle(name: str) -> float:
        value = f.field_number(vp, name, where)
        if value is None:
            value = f.field_number(vp, f"{name}_coarse", where)
        if value is None:
            if name == "theta":
                return 0.0
            raise f.fail(f"{where}.{name}", "is missing or empty")
        return value

    focal = f.field_number(vp, "focal", where)
    viewport = f.field_number(vp, "viewport", where)
    px, py = f.field_number(vp, "px", where), f.field_number(vp, "py", where)
    for name, value in (("viewport", viewport), ("px", px), ("py", py)):
        if value is None:
            raise f.fail(f"{where}.{name}", "is missing or empty")
    return Viewpoint(
        azimuth=angle("azimuth"),
        elevation=angle("elevation"),
        theta=angle("theta"),
        distance=distance,
        focal=focal or 1.0,
        viewport=viewport,  # type: ignore[arg-type]
        px=px,  # type: ignore[arg-type]
        py=py,  # type: ignore[arg-type]
    )


def read_annotation(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Pascal3dImage:
    """One PASCAL3D+ annotation file (`Annotations/<subset>/<name>.mat`), checked; DatasetError names
    the file and the field when it is not one. `root` is the layout's root (default: two folders up)."""
    p = Path(path)
    base = Path(root) if root is not None else p.parent.parent.parent
    f = _Fields(p)
    sio = require("scipy.io", package="scipy", purpose="reading PASCAL3D+ annotations")
    try:
        content = sio.loadmat(os.fspath(p), squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise DatasetError(f"{p}: not found") from None
    except Exception as err:  # scipy raises many kinds (ValueError, TypeError, OSError, ...) on broken files
        raise DatasetError(f"{p}: not a readable .mat file ({type(err).__name__}: {err})") from None
    record = content.get("record")
    if not hasattr(record, "_fieldnames"):
        raise f.fail("record", "is missing")
    subset_name = p.parent.name
    filename = f.text(f.get(record, "filename", "record"), "record.filename")
    size = record.imgsize if "imgsize" in record._fieldnames else None
    if size is not None and np.asarray(size).size >= 2:
        width, height = (int(f.number(v, "record.imgsize") or 0) for v in np.asarray(size).reshape(-1)[:2])
    else:
        dims = f.get(record, "size", "record")
        width = int(f.field_number(dims, "width", "record.size") or 0)
        height = int(f.field_number(dims, "height", "record.size") or 0)
    if width <= 0 or height <= 0:
        raise f.fail("record.imgsize", f"must be a positive width and height, got {width}x{height}")
    objects = []
    for i, obj in enumerate(_structs(f.get(record, "objects", "record")), start=1):
        where = f"record.objects({i})"
        box_value = np.asarray(f.get(obj, "bbox", where), dtype=object).reshape(-1)
        bbox = None
        if box_value.size:
            if box_value.size != 4:
                raise f.fail(f"{where}.bbox", f"must hold 4 numbers, got {box_value.size}")
            bbox = tuple(bbox_from_pascal([f.number(v, f"{where}.bbox") or 0.0 for v in box_value]))
        cad_index = f.field_number(obj, "cad_index", where)
        objects.append(
            Pascal3dObject(
                class_name=f.text(f.get(obj, "class", where), f"{where}.class"),
                bbox=bbox,  # type: ignore[arg-type]
                viewpoint=_viewpoint(f, f.get(obj, "viewpoint", where), f"{where}.viewpoint"),
                cad_index=int(cad_index) if cad_index else 0,
                truncated=bool(f.field_number(obj, "truncated", where) or 0),
                occluded=bool(f.field_number(obj, "occluded", where) or 0),
                difficult=bool(f.field_number(obj, "difficult", where) or 0),
            )
        )
    provenance: dict[str, Any] = {}
    if "dst3d" in record._fieldnames and hasattr(record.dst3d, "_fieldnames"):
        for name in record.dst3d._fieldnames:
            value = getattr(record.dst3d, name)
            arr = np.asarray(value)
            if isinstance(value, str) or arr.dtype.kind == "U":
                provenance[name] = f.text(value, f"record.dst3d.{name}")
            elif arr.size == 1 and arr.dtype.kind in "biuf":
                number = float(arr.reshape(-1)[0])
                provenance[name] = int(number) if number.is_integer() else number
    return Pascal3dImage(
        annotation=p,
        image=base / IMAGES / subset_name / filename,
        subset=subset_name,
        name=p.stem,
        width=width,
        height=height,
        objects=tuple(objects),
        dst3d=provenance,
    )


def read_image_set(path: str | os.PathLike) -> list[str]:
    """The image names of an `Image_sets/*.txt` list (blank lines skipped; PASCAL VOC's trailing
    flag column, as in `name 1`, dropped)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{p}: not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{p}: cannot read ({err})") from None
    return [line.split()[0] for line in lines if line.strip()]


def read_folder(
    root: str | os.PathLike, *, split: str | None = None, subsets: Sequence[str] = ()
) -> list[Pascal3dImage]:
    """Every annotation of a PASCAL3D+-layout folder, sorted by subset and name.

    `subsets` (`<class>_<source>` folder names) limits the read; `split` reads only the images that
    `Image_sets/<subset>_<split>.txt` lists (subsets without that list are skipped). A broken file
    raises DatasetError naming it.
    """
    base = Path(root)
    annotations = base / ANNOTATIONS
    if not annotations.is_dir():
        raise DatasetError(f"{base}: no {ANNOTATIONS}/ folder; is it a PASCAL3D+-layout folder?")
    names = sorted(subsets) if subsets else sorted(p.name for p in annotations.iterdir() if p.is_dir())
    images: list[Pascal3dImage] = []
    listed_any = False
    for name in names:
        folder = annotations / name
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such subset folder")
        if split is None:
            files = sorted(folder.glob("*.mat"))
        else:
            listing = base / image_set_name(name, split)
            if not listing.is_file():
                continue
            listed_any = True
            files = [folder / f"{stem}.mat" for stem in read_image_set(listing)]
        images.extend(read_annotation(path, base) for path in files)
    if split is not None and not listed_any:
        raise DatasetError(
            f"{base / IMAGE_SETS}: no list of the {split!r} split ({IMAGE_SETS}/<class>_<source>_{split}.txt)"
        )
    return images


# --------------------------------------------------------------------------- CAD models


def off_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """An OFF file of a triangle mesh (faces 0-based), as NeMo and PASCAL3D+'s CAD/<class>/NN.off."""
    V = np.asarray(vertices, dtype=np.float64)
    F = np.asarray(faces, dtype=np.int64)
    lines = ["OFF", f"{len(V)} {len(F)} 0"]
    lines += [" ".join(repr(float(x)) for x in v) for v in V]
    lines += ["3 " + " ".join(str(int(i)) for i in face) for face in F]
    return ("\n".join(lines) + "\n").encode("ascii")


def read_off(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (N, 3), triangle faces (M, 3), 0-based) of an OFF file; DatasetError if it is not one."""
    p = Path(path)
    try:
        tokens = p.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{p}: cannot read ({err})") from None
    try:
        if not tokens or tokens[0] != "OFF":
            raise ValueError("it does not start with OFF")
        nv, nf = int(tokens[1]), int(tokens[2])
        at = 4
        V = np.array(tokens[at : at + 3 * nv], dtype=np.float64).reshape(nv, 3)
        at += 3 * nv
        faces = []
        for _ in range(nf):
            n = int(tokens[at])
            poly = [int(t) for t in tokens[at + 1 : at + 1 + n]]
            faces.extend([poly[0], poly[j], poly[j + 1]] for j in range(1, n - 1))
            at += 1 + n
    except (ValueError, IndexError) as err:
        raise DatasetError(f"{p}: not an OFF mesh ({err})") from None
    return V, np.array(faces, dtype=np.int64).reshape(-1, 3)


def matlab_name(name: str) -> str:
    """A MATLAB variable name for a class name (CAD/<class>.mat holds a variable named so)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if re.match(r"[A-Za-z]", cleaned) else f"c_{cleaned}"


def cad_mat_bytes(class_name: str, meshes: Sequence[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """`CAD/<class>.mat`: a 1xN struct array of the models (vertices, faces 1-based), cad_index order."""
    structs = np.empty((1, len(meshes)), dtype=[("vertices", object), ("faces", object)])
    for i, (V, F) in enumerate(meshes):
        structs[0, i] = (np.asarray(V, dtype=np.float64), np.asarray(F, dtype=np.float64) + 1.0)
    return _savemat({matlab_name(class_name): structs}, "the pascal3d format")


def read_cad(root: str | os.PathLike, class_name: str, cad_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces 0-based) of a class's CAD model by its 1-based index: `CAD/<class>/NN.off`,
    else `CAD/<class>.mat`."""
    base = Path(root)
    off = base / cad_off_name(class_name, cad_index)
    if off.is_file():
        return read_off(off)
    path = base / CAD / f"{class_name}.mat"
    if not path.is_file():
        raise DatasetError(f"{off}: not found (nor {path})")
    sio = require("scipy.io", package="scipy", purpose="reading PASCAL3D+ CAD models")
    try:
        content = sio.loadmat(os.fspath(path), squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises many kinds on broken files
        raise DatasetError(f"{path}: not a readable .mat file ({type(err).__name__}: {err})") from None
    models = _structs(content.get(matlab_name(class_name), content.get(class_name)))
    if not 1 <= cad_index <= len(models):
        raise DatasetError(f"{path}: has {len(models)} model(s), no cad_index {cad_index}")
    model = models[cad_index - 1]
    f = _Fields(path)
    V = np.asarray(f.get(model, "vertices", f"{class_name}({cad_index})"), dtype=np.float64).reshape(-1, 3)
    F = np.asarray(f.get(model, "faces", f"{class_name}({cad_index})"), dtype=np.int64).reshape(-1, 3) - 1
    return V, F
