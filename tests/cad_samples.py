"""Tiny CAD files with known raw coordinates, written by plain Python (no Blender, no trimesh).

The sample model is a lopsided tetrahedron: its "nose" points along the file's +X, its "top"
along the file's +Y, and it sits away from the origin, so that axis changes, alignment and
normalisation all show in its coordinates.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np

#: Raw vertices as stored in the files (before any node transform).
VERTICES = np.array(
    [
        [-1.0, 0.0, -0.5],
        [-1.0, 0.0, 0.5],
        [-1.0, 1.0, 0.0],  # TOP: the largest file +Y
        [2.0, 0.2, 0.0],  # NOSE: the largest file +X
    ]
) + np.array([10.0, 20.0, 30.0])
FACES = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]], dtype=np.int64)
NOSE = 3
TOP = 2


def write_obj(path: Path, vertices: np.ndarray = VERTICES, faces: np.ndarray | None = FACES) -> Path:
    """An OBJ file (1-based face indices); `faces=None` writes vertices only."""
    lines = ["# dst3d test mesh", "o sample"]
    lines += [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in vertices]
    if faces is not None:
        lines += ["f " + " ".join(str(i + 1) for i in face) for face in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ply(
    path: Path,
    vertices: np.ndarray = VERTICES,
    faces: np.ndarray = FACES,
    binary: bool = True,
) -> Path:
    """A PLY file, binary little-endian (float32 vertices, uchar/int face lists) or ASCII."""
    header = [
        "ply",
        "format binary_little_endian 1.0" if binary else "format ascii 1.0",
        f"element vertex {len(vertices)}",
        "property float x",
        "property float y",
        "property float z",
        f"element face {len(faces)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    head = ("\n".join(header) + "\n").encode("ascii")
    if binary:
        body = b"".join(struct.pack("<3f", *v) for v in vertices)
        body += b"".join(struct.pack("<B", len(f)) + struct.pack(f"<{len(f)}i", *f) for f in faces)
    else:
        rows = [f"{x:.9g} {y:.9g} {z:.9g}" for x, y, z in vertices]
        rows += [" ".join([str(len(f)), *map(str, f)]) for f in faces]
        body = ("\n".join(rows) + "\n").encode("ascii")
    path.write_bytes(head + body)
    return path


def _normal(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):  # nan test meshes have nan normals
        n = np.cross(b - a, c - a)
        return n / np.linalg.norm(n)


def write_stl(
    path: Path, vertices: np.ndarray = VERTICES, faces: np.ndarray = FACES, binary: bool = True
) -> Path:
    """A binary or ASCII STL file."""
    tris = vertices[faces]
    if binary:
        data = bytearray(b"dst3d test".ljust(80, b" "))
        data += struct.pack("<I", len(tris))
        for a, b, c in tris:
            data += struct.pack("<12fH", *_normal(a, b, c), *a, *b, *c, 0)
        path.write_bytes(bytes(data))
    else:
        lines = ["solid sample"]
        for a, b, c in tris:
            lines.append("  facet normal {:.6g} {:.6g} {:.6g}".format(*_normal(a, b, c)))
            lines.append("    outer loop")
            lines += ["      vertex {:.9g} {:.9g} {:.9g}".format(*p) for p in (a, b, c)]
            lines += ["    endloop", "  endfacet"]
        lines.append("endsolid sample")
        path.write_text("\n".join(lines) + "\n")
    return path


#: The glTF sample's node transform (translation, uniform scale; the nose stays along +X).
GLTF_NODE = {"translation": [1.0, -2.0, 3.0], "scale": [2.0, 2.0, 2.0]}


def gltf_node_matrix(node: dict = GLTF_NODE) -> np.ndarray:
    """The 4x4 matrix of a glTF node's TRS (T · R · S)."""
    x, y, z, w = node.get("rotation", (0.0, 0.0, 0.0, 1.0))
    R = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    M = np.eye(4)
    M[:3, :3] = R @ np.diag(node.get("scale", (1.0, 1.0, 1.0)))
    M[:3, 3] = node.get("translation", (0.0, 0.0, 0.0))
    return M


def gltf_document(
    vertices: np.ndarray = VERTICES, faces: np.ndarray = FACES, node: dict | None = GLTF_NODE
) -> tuple[dict, bytes]:
    """A glTF 2.0 JSON document and its one binary buffer (positions, then uint32 indices)."""
    pos = np.asarray(vertices, dtype="<f4").tobytes()
    idx = np.asarray(faces, dtype="<u4").tobytes()
    binary = pos + idx
    node_entry = {"mesh": 0, **(node or {})}
    doc = {
        "asset": {"version": "2.0", "generator": "dst3d tests"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [node_entry],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(pos), "target": 34962},
            {"buffer": 0, "byteOffset": len(pos), "byteLength": len(idx), "target": 34963},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(vertices),
                "type": "VEC3",
                "min": np.min(vertices, axis=0).tolist(),
                "max": np.max(vertices, axis=0).tolist(),
            },
            {"bufferView": 1, "componentType": 5125, "count": int(np.size(faces)), "type": "SCALAR"},
        ],
    }
    return doc, binary


def write_glb(path: Path, doc: dict | None = None, binary: bytes | None = None) -> Path:
    """A GLB file: header, JSON chunk and BIN chunk, both padded to 4 bytes."""
    if doc is None:
        doc, binary = gltf_document()
    js = json.dumps(doc).encode("utf-8")
    js += b" " * (-len(js) % 4)
    chunks = struct.pack("<II", len(js), 0x4E4F534A) + js
    if binary is not None:
        binary = binary + b"\x00" * (-len(binary) % 4)
        chunks += struct.pack("<II", len(binary), 0x004E4942) + binary
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks)
    return path


def write_gltf(path: Path, doc: dict | None = None, binary: bytes | None = None, embed: bool = False) -> Path:
    """A .gltf JSON file with its buffer next to it (`<stem>.bin`) or embedded as a data URI."""
    if doc is None:
        doc, binary = gltf_document()
    doc = json.loads(json.dumps(doc))
    assert binary is not None
    if embed:
        doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(binary).decode()
    else:
        (path.parent / f"{path.stem}.bin").write_bytes(binary)
        doc["buffers"][0]["uri"] = f"{path.stem}.bin"
    path.write_text(json.dumps(doc))
    return path


def transform(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points."""
    return points @ M[:3, :3].T + M[:3, 3]


def same_point_sets(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    """Every point of `a` has a point of `b` within `tol`, and the other way round."""
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    return bool(np.all(d.min(axis=1) <= tol) and np.all(d.min(axis=0) <= tol))
