"""The safetensors header read without torch: names, dtypes, shapes and metadata, and one line
naming the file for anything that is not a safetensors file."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from dst3d_addon.core.errors import DatasetError
from dst3d_addon.core.weights import read_header


def test_reads_what_safetensors_wrote(tmp_path):
    path = tmp_path / "w.safetensors"
    tensors = {"head.weight": np.zeros((123, 16), np.float32), "n": np.zeros((), np.int64)}
    save_file(tensors, str(path), metadata={"backbone": "resnet-tiny", "epoch": "3"})
    header = read_header(path)
    assert header.tensors == {"head.weight": ("F32", (123, 16)), "n": ("I64", ())}
    assert header.metadata == {"backbone": "resnet-tiny", "epoch": "3"}


PAST_END = b'{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "not a safetensors file (shorter than a header)", id="empty"),
        pytest.param(
            b"\xff" * 16, "not a safetensors file (its header length is past the end of the file)", id="long"
        ),
        pytest.param(
            b"\x02\x00\x00\x00\x00\x00\x00\x00[]",
            "not a safetensors file (its header is not a JSON object)",
            id="list",
        ),
        pytest.param(
            len(PAST_END).to_bytes(8, "little") + PAST_END,
            "not a safetensors file (tensor 't' is malformed or past the end)",
            id="past-end",
        ),
    ],
)
def test_other_files_are_one_line_naming_them(tmp_path, data, message):
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    with pytest.raises(DatasetError) as err:
        read_header(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_header(tmp_path / "none.safetensors")
    with pytest.raises(DatasetError, match="is a folder"):
        read_header(tmp_path)
