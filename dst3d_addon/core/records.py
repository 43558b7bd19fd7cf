"""Annotation records (docs/dataset-format.md): building, validating and loading them.

The camera part of a record comes from `camera.camera_record`, and validation recomputes it from
the record's pose and intrinsics, so a record whose matrices disagree with its pose is caught.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Intrinsics, Pose, camera_record, opencv_extrinsics
from .dataset import ANNOTATIONS
from .errors import DatasetError
from .files import iter_records, read_records
from .ids import check_relative_path, parse_annotation_id
from .keep import filter_records, load_keep

#: Largest seed a record holds (seeds.py keeps them below 2**53 for JSON readers).
MAX_SEED = 2**53

#: The files every annotation names, with the folder and extensions each may have.
REQUIRED_FILES = {
    "control": ("control", (".png",)),
    "mask": ("masks", (".png",)),
    "depth": ("depth", (".npz", ".exr")),
}
OPTIONAL_FILES = {"render": ("renders", (".png",))}

#: OpenCV's extrinsics in a record's camera (added after format 1's first release: optional when read).
OPENCV_KEYS = ("R_cv", "t_cv")

_ROT_TOL = 1e-6
_REL_TOL = 1e-7

#: Significant digits of every number a record holds. Builds of numpy differ in the last bits of
#: their vectorised sine, cosine and BLAS products; written with 12 digits, the same view has the
#: same record bytes whichever numpy computed it (unless a value lies within a few units of the
#: last bit of a rounding boundary). 12 digits keep to_object exact to 1e-12 of its largest entry.
RECORD_DIGITS = 12


def record_number(value: float) -> float:
    """`value` rounded to RECORD_DIGITS significant digits (the float that repr writes shortest)."""
    return float(f"{float(value):.{RECORD_DIGITS}g}")


def _rounded(value: Any) -> Any:
    """`value` with every float inside it (lists, dicts) rounded by record_number."""
    if isinstance(value, float):
        return record_number(value) if math.isfinite(value) else value
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def annotation_record(
    *,
    annotation_id: str,
    class_name: str,
    synset: str | None,
    cad_path: str,
    model_id: str,
    to_object: np.ndarray | Sequence[Sequence[float]],
    pose: Pose,
    intrinsics: Intrinsics,
    bbox: Sequence[float] | None,
    truncated: bool,
    seed: int,
    files: Mapping[str, str],
) -> dict:
    """The annotation record of one rendered view, exactly as dataset-format.md lays it out (validated).

    `bbox` is None when the mask is empty; `to_object` maps the CAD file's coordinates to the
    object frame (4x4). Every number is rounded to RECORD_DIGITS significant digits.
    """
    record = {
        "id": annotation_id,
        "class": {"name": class_name, "synset": synset},
        "cad": {
            "path": str(cad_path),
            "model_id": model_id,
            "to_object": np.asarray(to_object, dtype=np.float64).tolist(),
        },
        "pose": pose.as_dict(),
        "camera": _camera(pose, intrinsics),
        "bbox": None if bbox is None else [float(x) for x in bbox],
        "truncated": bool(truncated),
        "seed": int(seed),
        "files": {str(k): str(v) for k, v in files.items()},
    }
    record = _rounded(record)
    validate_annotation(record)
    return record


def _camera(pose: Pose, intrinsics: Intrinsics) -> dict:
    # A non-finite pose gives NaNs here; validation then reports it by name, without warnings.
    with np.errstate(invalid="ignore", over="ignore"):
        return camera_record(pose, intrinsics)


class _Checker:
    """Field access that raises DatasetError naming the record's id and the field's dotted path."""

    def __init__(self, record: Any) -> None:
        self.id = record.get("id") if isinstance(record, Mapping) else None

    def fail(self, field: str, problem: str) -> DatasetError:
        who = f"annotation {self.id}" if isinstance(self.id, str) else "annotation record"
        return DatasetError(f"{who}: {field} {problem}")

    def obj(self, parent: Mapping, key: str, prefix: str = "") -> Mapping:
        value = self.get(parent, key, prefix)
        if not isinstance(value, Mapping):
            raise self.fail(prefix + key, f"must be an object, got {type(value).__name__}")
        return value

    def get(self, parent: Mapping, key: str, prefix: str = "") -> Any:
        if key not in parent:
            raise self.fail(prefix + key, "is missing")
        return parent[key]

    def string(self, parent: Mapping, key: str, prefix: str = "", *, nullable: bool = False) -> str | None:
        value = self.get(parent, key, prefix)
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(prefix + key, f"must be a non-empty string, got {value!r}")
        return value

    def number(self, parent: Mapping, key: str, prefix: str = "") -> float:
        value = self.get(parent, key, prefix)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(prefix + key, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise self.fail(prefix + key, f"must be finite, got {value!r}")
        return float(value)

    def integer(self, parent: Mapping, key: str, prefix: str = "") -> int:
        value = self.get(parent, key, prefix)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(prefix + key, f"must be an integer, got {value!r}")
        return value

    def array(self, parent: Mapping, key: str, shape: tuple[int, ...], prefix: str = "") -> np.ndarray:
        value = self.get(parent, key, prefix)
        field = prefix + key
        got = _shape(value)
        if got != shape:
            text = "ragged" if got is None else "x".join(map(str, got)) or "scalar"
            raise self.fail(field, f"must be a {'x'.join(map(str, shape))} list, got {text}")
        arr = np.array(value, dtype=object)
        flat = arr.reshape(-1)
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in flat):
            raise self.fail(field, "must hold only numbers")
        out = np.asarray(flat, dtype=np.float64).reshape(shape)
        if not np.all(np.isfinite(out)):
            raise self.fail(field, "holds a non-finite number")
        return out


def _shape(value: Any) -> tuple[int, ...] | None:
    """The shape of nested lists (() for a scalar), None if ragged."""
    if not isinstance(value, (list, tuple)):
        return ()
    shapes = {_shape(v) for v in value}
    if len(shapes) > 1 or None in shapes:
        return None
    return (len(value), *(shapes.pop() if shapes else ()))


def _close(a: np.ndarray, b: np.ndarray, scale: float) -> bool:
    return bool(np.all(np.abs(np.asarray(a) - np.asarray(b)) <= _REL_TOL * max(1.0, scale)))


def validate_annotation(record: Any) -> None:
    """Raise DatasetError (naming the record's id and the field) unless `record` is a well-formed
    annotation: every key of dataset-format.md present with the right type and shape, finite numbers,
    R a rotation, and K, R, C (and R_cv, t_cv where present) the ones the pose and intrinsics give
    (pose-convention.md)."""
    ck = _Checker(record)
    if not isinstance(record, Mapping):
        raise ck.fail("record", f"must be an object, got {type(record).__name__}")
    ann_id = ck.string(record, "id")
    try:
        class_key, model_key, _view = parse_annotation_id(ann_id)
    except DatasetError as err:
        raise ck.fail("id", f"is malformed ({err})") from err

    cls = ck.obj(record, "class")
    name = ck.string(cls, "name", "class.")
    synset = ck.string(cls, "synset", "class.", nullable=True)
    if class_key != (synset or name):
        raise ck.fail("class", f"is {synset or name!r} but the id's class part is {class_key!r}")

    cad = ck.obj(record, "cad")
    ck.string(cad, "path", "cad.")
    model_id = ck.string(cad, "model_id", "cad.")
    if model_id != model_key:
        raise ck.fail("cad.model_id", f"is {model_id!r} but the id's model part is {model_key!r}")
    to_object = ck.array(cad, "to_object", (4, 4), "cad.")
    if not np.allclose(to_object[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ck.fail("cad.to_object", f"must be affine (last row 0 0 0 1), got {to_object[3].tolist()}")
    # Scale-aware: a model in millimetres or kilometres has a tiny or huge scale, not a singular one.
    singular = np.linalg.svd(to_object[:3, :3], compute_uv=False)
    if not singular[-1] > singular[0] * 1e-9:
        raise ck.fail("cad.to_object", f"is singular (singular values {singular.tolist()})")

    p = ck.obj(record, "pose")
    azimuth = ck.number(p, "azimuth", "pose.")
    elevation = ck.number(p, "elevation", "pose.")
    theta = ck.number(p, "theta", "pose.")
    distance = ck.number(p, "distance", "pose.")
    if abs(elevation) > math.pi / 2 + 1e-9:
        raise ck.fail("pose.elevation", f"must be in [-pi/2, pi/2], got {elevation}")
    if distance <= 0:
        raise ck.fail("pose.distance", f"must be positive, got {distance}")

    cam = ck.obj(record, "camera")
    focal = ck.number(cam, "focal", "camera.")
    if focal != 1.0:
        raise ck.fail("camera.focal", f"must be 1.0 (the focal length lives in viewport), got {focal}")
    viewport = ck.number(cam, "viewport", "camera.")
    if viewport <= 0:
        raise ck.fail("camera.viewport", f"must be positive, got {viewport}")
    principal = ck.array(cam, "principal", (2,), "camera.")
    width = ck.integer(cam, "width", "camera.")
    height = ck.integer(cam, "height", "camera.")
    if width <= 0 or height <= 0:
        raise ck.fail("camera.width/height", f"must be positive, got {width}x{height}")
    K = ck.array(cam, "K", (3, 3), "camera.")
    R = ck.array(cam, "R", (3, 3), "camera.")
    C = ck.array(cam, "C", (3,), "camera.")
    intr = Intrinsics(width, height, viewport, (float(principal[0]), float(principal[1])))
    if not _close(K, intr.K, viewport):
        raise ck.fail(
            "camera.K",
            "does not match viewport and principal (pose-convention.md: K = [[M, 0, px - 0.5], ...])",
        )
    if not np.allclose(R @ R.T, np.eye(3), atol=_ROT_TOL) or np.linalg.det(R) <= 0:
        raise ck.fail("camera.R", f"is not a rotation (det {np.linalg.det(R):.6g})")
    expected = camera_record(Pose(azimuth, elevation, theta, distance), intr)
    if not _close(R, expected["R"], 1.0):
        raise ck.fail(
            "camera.R", "does not match the pose (pose-convention.md: R = Rz(theta) Rx(e - pi/2) Rz(-a))"
        )
    if not _close(C, expected["C"], distance):
        raise ck.fail(
            "camera.C",
            "does not match the pose (pose-convention.md: C = d (cos e sin a, -cos e cos a, sin e))",
        )
    _check_opencv(ck, cam, expected, distance)

    if ck.get(record, "bbox") is not None:
        u0, v0, u1, v1 = ck.array(record, "bbox", (4,))
        if not (0 <= u0 <= u1 <= width and 0 <= v0 <= v1 <= height):
            raise ck.fail("bbox", f"must satisfy 0 <= u0 <= u1 <= {width}, 0 <= v0 <= v1 <= {height}")
    if not isinstance(ck.get(record, "truncated"), bool):
        raise ck.fail("truncated", f"must be true or false, got {record['truncated']!r}")
    seed = ck.integer(record, "seed")
    if not 0 <= seed < MAX_SEED:
        raise ck.fail("seed", f"must be in [0, 2**53), got {seed}")

    files = ck.obj(record, "files")
    for kind, (folder, exts) in {**REQUIRED_FILES, **OPTIONAL_FILES}.items():
        if kind not in files:
            if kind in REQUIRED_FILES:
                raise ck.fail(f"files.{kind}", "is missing")
            continue
        rel = ck.string(files, kind, "files.")
        if not any(rel == f"{folder}/{ann_id}{ext}" for ext in exts):
            raise ck.fail(f"files.{kind}", f"must be {folder}/{ann_id}{'|'.join(exts)}, got {rel!r}")
    for kind, rel in files.items():
        if not isinstance(rel, str):
            raise ck.fail(f"files.{kind}", f"must be a path string, got {rel!r}")
        try:
            check_relative_path(rel, f"files.{kind}")
        except DatasetError as err:
            raise ck.fail(f"files.{kind}", f"is unsafe ({err})") from err


def _check_opencv(ck: _Checker, cam: Mapping, expected: Mapping, distance: float) -> None:
    """`camera.R_cv` and `camera.t_cv` (OpenCV's extrinsics): both or neither (records written before
    they existed have neither), and the ones R and C give (pose-convention.md#opencv)."""
    present = [key for key in OPENCV_KEYS if key in cam]
    if not present:
        return
    if len(present) == 1:
        other = next(key for key in OPENCV_KEYS if key not in cam)
        raise ck.fail(f"camera.{other}", f"is missing (camera.{present[0]} is there; they come in a pair)")
    R_cv = ck.array(cam, "R_cv", (3, 3), "camera.")
    t_cv = ck.array(cam, "t_cv", (3,), "camera.")
    if not _close(R_cv, expected["R_cv"], 1.0):
        raise ck.fail("camera.R_cv", "does not match R (pose-convention.md: R_cv = diag(1, -1, -1) R)")
    if not _close(t_cv, expected["t_cv"], distance):
        raise ck.fail("camera.t_cv", "does not match R and C (pose-convention.md: t_cv = -R_cv C)")


def with_opencv(record: dict) -> dict:
    """A validated record with `camera.R_cv` and `camera.t_cv`, computed from R and C when the record
    predates them (a shallow copy; the record itself is not changed)."""
    cam = record["camera"]
    if all(key in cam for key in OPENCV_KEYS):
        return record
    R_cv, t_cv = opencv_extrinsics(
        np.asarray(cam["R"], dtype=np.float64), np.asarray(cam["C"], dtype=np.float64)
    )
    return {**record, "camera": {**cam, "R_cv": R_cv.tolist(), "t_cv": t_cv.tolist()}}


def _to_numpy(record: dict) -> dict:
    """A copy of a validated record with its matrices and vectors as float64 arrays."""
    out = {**record, "cad": dict(record["cad"]), "camera": dict(record["camera"])}
    out["cad"]["to_object"] = np.asarray(record["cad"]["to_object"], dtype=np.float64)
    for key in ("K", "R", "C", "principal", *OPENCV_KEYS):
        out["camera"][key] = np.asarray(record["camera"][key], dtype=np.float64)
    if record["bbox"] is not None:
        out["bbox"] = np.asarray(record["bbox"], dtype=np.float64)
    return out


def iter_annotations(out: str | os.PathLike) -> Iterator[dict]:
    """The validated annotation records of a dataset folder as a stream, one per id (the last one
    recorded, as `load_annotations` keeps), for runs over more records than fit in memory. Reads
    the file twice; only the ids are held in memory. The keep set is not applied."""
    path = Path(out) / ANNOTATIONS
    if not path.is_file():
        raise DatasetError(f"{path}: not found; is {out} a dst3d dataset folder with rendered views?")
    last: dict[str, int] = {}
    for line, record in iter_records(path):
        ident = record.get("id")
        last[ident if isinstance(ident, str) else f"#{line}"] = line
    return _validated(path, last)


def _validated(path: Path, last: dict[str, int]) -> Iterator[dict]:
    for line, record in iter_records(path):
        ident = record.get("id")
        if last.get(ident if isinstance(ident, str) else f"#{line}") != line:
            continue  # recorded again later: that record stands
        try:
            validate_annotation(record)
        except DatasetError as err:
            raise DatasetError(f"{path}: line {line}: {err.text}") from err
        yield record


def load_annotations(
    out: str | os.PathLike, *, as_numpy: bool = True, respect_keep: bool = True
) -> list[dict]:
    """The validated annotation records of a dataset folder, for researchers.

    With `as_numpy`, cad.to_object, camera.K/R/C/R_cv/t_cv/principal and bbox are float64 arrays.
    Records written before `camera.R_cv` and `camera.t_cv` existed get them (from R and C). If an id
    was appended twice (a view redone with --allow-mixed), its last record wins, at the place of
    its first. File paths stay relative to `out`. If the `filter` stage wrote a keep set, only
    the views it keeps are returned (for generated images: views with at least one kept image),
    unless `respect_keep` is False (what the pipeline's own stages use).
    """
    path = Path(out) / ANNOTATIONS
    if not path.is_file():
        raise DatasetError(f"{path}: not found; is {out} a dst3d dataset folder with rendered views?")
    by_id: dict[str, dict] = {}
    for record in read_records(path):
        try:
            validate_annotation(record)
        except DatasetError as err:
            raise DatasetError(f"{path}: {err}") from err
        by_id[record["id"]] = record
    records = list(by_id.values())
    keep = load_keep(out) if respect_keep else None
    if keep is not None:
        records = filter_records(records, keep)
    records = [with_opencv(r) for r in records]
    return [_to_numpy(r) if as_numpy else r for r in records]
