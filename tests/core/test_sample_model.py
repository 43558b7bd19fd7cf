"""The bundled sample airliner: the tool reproduces the committed bytes, and the geometry is sound."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

ROOT = Path(__file__).resolve().parents[2]
ASSET = ROOT / "assets" / "sample" / "airliner.glb"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "airliner.glb"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_sample_model.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.fixture(scope="module")
def mesh() -> trimesh.Trimesh:
    loaded = trimesh.load(ASSET, force="mesh")
    # Merge by position only: the file splits vertices at creases (and between materials).
    return trimesh.Trimesh(vertices=loaded.vertices, faces=loaded.faces, process=True)


def test_tool_reproduces_the_committed_asset(regenerated):
    assert regenerated.read_bytes() == ASSET.read_bytes()


def test_glb_container_and_materials():
    data = ASSET.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_len % 4 == 0
    doc = json.loads(data[20 : 20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\x00" and bin_len == doc["buffers"][0]["byteLength"]
    assert doc["asset"]["version"] == "2.0"
    names = [m["name"] for m in doc["materials"]]
    assert names == ["Body", "Wing", "Engine", "Dark", "Tail"]
    prims = doc["meshes"][0]["primitives"]
    assert sorted(p["material"] for p in prims) == list(range(len(names)))
    for p in prims:
        assert set(p["attributes"]) == {"POSITION", "NORMAL"}
        view = doc["bufferViews"][doc["accessors"][p["attributes"]["NORMAL"]]["bufferView"]]
        start = 20 + json_len + 8 + view["byteOffset"]
        normals = np.frombuffer(data[start : start + view["byteLength"]], "<f4").reshape(-1, 3)
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)


def components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Connected-component label of every vertex (label propagation with pointer jumping)."""
    labels = np.arange(n_vertices)
    while True:
        face_min = labels[faces].min(axis=1)
        new = labels.copy()
        for j in range(3):
            np.minimum.at(new, faces[:, j], face_min)
        new = new[new]
        if np.array_equal(new, labels):
            return labels
        labels = new


def test_parts_are_closed_and_outward(mesh):
    assert 3000 <= len(mesh.faces) <= 8000
    assert mesh.is_watertight and mesh.is_winding_consistent
    labels = components(mesh.faces, len(mesh.vertices))
    tri = mesh.vertices[mesh.faces]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    part_volumes = np.bincount(np.unique(labels, return_inverse=True)[1][mesh.faces[:, 0]], weights=vol)
    assert len(part_volumes) > 10  # fuselage, wings, tail, nacelles, pylons, window panes
    assert np.all(part_volumes > 0), "every closed part must wind outward"
    assert part_volumes.max() > 300.0  # the fuselage, some 400 m^3


def test_orientation_in_gltf_axes(mesh):
    # glTF: +Y up, nose towards +Z (Blender's import makes that +Z up, nose towards -Y).
    v = mesh.vertices
    lo, hi = v.min(axis=0), v.max(axis=0)
    extent = hi - lo
    assert extent[2] == pytest.approx(37.6, abs=0.05)  # length along z, the longest side
    assert extent[2] > extent[0] > extent[1]
    assert lo[0] == pytest.approx(-hi[0], abs=1e-4)  # symmetric wings
    nose = v[v[:, 2].argmax()]
    assert abs(nose[0]) < 1e-3 and abs(nose[1]) < 1.5
    fin_top = v[v[:, 1].argmax()]
    assert abs(fin_top[0]) < 0.5 and fin_top[2] < -10.0 and fin_top[1] > 7.0  # at the tail, on top
    lowest = v[v[:, 1].argmin()]
    assert 4.5 < abs(lowest[0]) < 7.0 and lowest[1] < -2.5  # the engines hang below the wings
    mirrored = np.round(v * [-1, 1, 1], 3)
    as_set = {tuple(p) for p in np.round(v, 3)}
    assert sum(tuple(p) in as_set for p in mirrored) / len(v) > 0.99
