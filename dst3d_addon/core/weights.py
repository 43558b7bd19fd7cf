"""The header of a safetensors file, read without torch: its tensors' names, dtypes and shapes and its
metadata (the eval stage checks --init and finds its own checkpoints with this; the workers load
the tensors).

A safetensors file is an 8-byte little-endian header length, that many bytes of JSON
({name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}), then the tensors' bytes.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError

#: A header longer than this is not one (safetensors itself refuses more than 100 MB).
MAX_HEADER = 100_000_000


@dataclass(frozen=True)
class Header:
    """What a safetensors file holds: {name: (dtype, shape)} and its metadata."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str]


def read_header(path: str | os.PathLike) -> Header:
    """The header of the safetensors file `path`; DatasetError naming the file when it is not one."""
    p = Path(path)
    try:
        with open(p, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a header")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER, size - 8):
                raise ValueError("its header length is past the end of the file")
            header = json.loads(handle.read(length).decode("utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{p}: not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{p}: is a folder, not a safetensors file") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DatasetError(f"{p}: not a safetensors file ({err})") from None
    if not isinstance(header, dict):
        raise DatasetError(f"{p}: not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    end = size - 8 - length
    for name, info in header.items():
        try:
            dtype, shape, (start, stop) = (
                str(info["dtype"]),
                tuple(int(n) for n in info["shape"]),
                info["data_offsets"],
            )
            if not 0 <= int(start) <= int(stop) <= end:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise DatasetError(
                f"{p}: not a safetensors file (tensor {name!r} is malformed or past the end)"
            ) from None
        tensors[name] = (dtype, shape)
    if not isinstance(metadata, dict):
        raise DatasetError(f"{p}: not a safetensors file (its __metadata__ is not an object)")
    return Header(tensors, {str(k): str(v) for k, v in metadata.items()})
