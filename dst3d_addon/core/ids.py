"""The id grammar of dataset-format.md: class keys, model ids, annotation ids and paths inside a dataset."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import PurePosixPath

import numpy as np

from .errors import DatasetError

#: A class key or model id: one safe path part (no separators, no leading dot).
_ID_PART = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$")
_ID_PART_MAX = 200
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._+-]+")


def is_id_part(value: object) -> bool:
    """Whether `value` is one safe path part of an id (see `check_id_part`)."""
    return isinstance(value, str) and 0 < len(value) <= _ID_PART_MAX and bool(_ID_PART.match(value))


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
    """`<class>/<model_id>/<view:06d>` (dataset-format.md), with class key and model id checked as safe."""
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
