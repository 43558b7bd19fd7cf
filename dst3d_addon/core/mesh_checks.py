"""What an imported mesh must be to make views: some surface, and the faces its file declared.

Blender's importers accept files that cannot make a dataset, and change others without a word: a
mesh whose faces all have zero area renders every view empty, and an OBJ face with a vertex index
out of range is dropped. The render worker asks here after each import: the first fails the model,
the second becomes a warning in the run's summary.
"""

from __future__ import annotations

import mmap
import os
import re

import numpy as np

from .errors import CadError

_OBJ_FACE_LINE = re.compile(rb"^[ \t]*f[ \t]", re.MULTILINE)


def surface_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    """The total area of a triangle mesh (vertices N x 3, faces M x 3 indices)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f) == 0:
        return 0.0
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())


def check_renderable(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """CadError naming the file when the mesh has no surface to render."""
    area = surface_area(vertices, faces)
    if not area > 0.0:
        raise CadError(
            f"{path}: the mesh has no surface ({len(np.asarray(faces).reshape(-1, 3))} triangle(s), all of zero "
            "area): every view would be empty"
        )


def obj_face_count(path: str | os.PathLike) -> int:
    """The face ('f') lines of an OBJ file."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return sum(1 for _ in _OBJ_FACE_LINE.finditer(data))


def dropped_faces(path: str | os.PathLike, fmt: str, polygons: int) -> str | None:
    """A warning when the importer made fewer polygons than an OBJ file declares faces, else None."""
    if fmt != "obj":
        return None
    declared = obj_face_count(path)
    if polygons >= declared:
        return None
    return (
        f"Blender's OBJ importer dropped {declared - polygons} of the file's {declared} faces "
        "(a vertex index out of range, or a face of fewer than 3 vertices): the views show the rest"
    )
