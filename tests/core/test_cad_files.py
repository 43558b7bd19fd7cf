"""check_cad_file: good files pass, each kind of bad file fails with a message naming the file."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from dst3d_addon.core.cad_files import SUPPORTED, check_cad_file
from dst3d_addon.core.errors import CadError, Dst3dError
from dst3d_addon.core.fbx import read_fbx_global_settings
from tests.cad_samples import gltf_document, write_glb, write_gltf, write_obj, write_ply, write_stl


def fails(path, *words: str) -> str:
    with pytest.raises(CadError) as info:
        check_cad_file(path)
    message = str(info.value)
    assert path.name in message
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_cad_error_is_a_dst3d_error():
    assert issubclass(CadError, Dst3dError)
    assert str(CadError("x.obj: bad")) == "x.obj: bad"


# ------------------------------------------------------------------------------------- generic


def test_missing_directory_empty_unsupported(tmp_path):
    fails(tmp_path / "nothing.obj", "not found")
    folder = tmp_path / "folder.obj"
    folder.mkdir()
    fails(folder, "directory")
    empty = tmp_path / "empty.glb"
    empty.write_bytes(b"")
    fails(empty, "empty")
    other = tmp_path / "model.3ds"
    other.write_bytes(b"whatever")
    fails(other, "unsupported", ".3ds")
    noext = tmp_path / "model"
    noext.write_bytes(b"whatever")
    fails(noext, "unsupported")


@pytest.mark.parametrize("ext", sorted(SUPPORTED))
def test_garbage_bytes_with_a_valid_extension(tmp_path, ext):
    path = tmp_path / f"garbage{ext}"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    fails(path)


def test_extension_is_case_insensitive(tmp_path):
    assert check_cad_file(write_obj(tmp_path / "MODEL.OBJ")) == "obj"


# ----------------------------------------------------------------------------------------- GLB


def test_good_glb(tmp_path):
    assert check_cad_file(write_glb(tmp_path / "good.glb")) == "glb"


def test_truncated_glb(tmp_path):
    data = write_glb(tmp_path / "full.glb").read_bytes()
    cut = tmp_path / "cut.glb"
    cut.write_bytes(data[: len(data) - 10])
    fails(cut, "truncated")
    cut.write_bytes(data[:30])
    fails(cut, "truncated")


def test_glb_bad_header_and_chunks(tmp_path):
    data = bytearray(write_glb(tmp_path / "full.glb").read_bytes())
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"gLTF" + bytes(data[4:]))
    fails(bad, "glTF")
    v1 = bytearray(data)
    v1[4:8] = struct.pack("<I", 1)
    bad.write_bytes(bytes(v1))
    fails(bad, "version 1")
    overrun = bytearray(data)
    overrun[12:16] = struct.pack("<I", len(data))  # the JSON chunk claims more than there is
    bad.write_bytes(bytes(overrun))
    fails(bad, "chunk 0")
    swapped = bytearray(data)
    swapped[16:20] = struct.pack("<I", 0x004E4942)
    bad.write_bytes(bytes(swapped))
    fails(bad, "JSON chunk")


def test_glb_bin_chunk_shorter_than_buffer(tmp_path):
    doc, binary = gltf_document()
    doc["buffers"][0]["byteLength"] = len(binary) + 64
    fails(write_glb(tmp_path / "short.glb", doc, binary), "binary chunk")
    fails(write_glb(tmp_path / "nobin.glb", doc, None), "no GLB binary chunk")


def test_glb_without_meshes_or_with_bad_json(tmp_path):
    doc, binary = gltf_document()
    doc["meshes"] = []
    fails(write_glb(tmp_path / "nomesh.glb", doc, binary), "no meshes")
    path = tmp_path / "badjson.glb"
    js = b"{not json}  "
    path.write_bytes(
        b"glTF" + struct.pack("<II", 2, 12 + 8 + len(js)) + struct.pack("<II", len(js), 0x4E4F534A) + js
    )
    fails(path, "JSON")


# ---------------------------------------------------------------------------------------- glTF


def test_good_gltf_external_and_embedded(tmp_path):
    assert check_cad_file(write_gltf(tmp_path / "ext.gltf")) == "gltf"
    assert check_cad_file(write_gltf(tmp_path / "emb.gltf", *gltf_document(), embed=True)) == "gltf"


def test_gltf_external_buffer_missing_or_short(tmp_path):
    path = write_gltf(tmp_path / "ext.gltf")
    binfile = tmp_path / "ext.bin"
    binfile.write_bytes(binfile.read_bytes()[:20])
    fails(path, "ext.bin", "bytes")
    binfile.unlink()
    fails(path, "not found")


def test_gltf_embedded_buffer_short(tmp_path):
    doc, binary = gltf_document()
    doc["buffers"][0]["byteLength"] = len(binary) + 12
    fails(write_gltf(tmp_path / "emb.gltf", doc, binary, embed=True), "data URI")


def test_gltf_bad_json_and_structure(tmp_path):
    path = tmp_path / "bad.gltf"
    path.write_text('{"asset": {"version": "2.0"}, "meshes": [')
    fails(path, "JSON")
    path.write_text("[1, 2]")
    fails(path, "not an object")
    doc, binary = gltf_document()
    doc["asset"]["version"] = "1.0"
    fails(write_gltf(tmp_path / "v1.gltf", doc, binary), "version 1.0")
    doc, binary = gltf_document()
    doc["bufferViews"][1]["byteLength"] += 100
    fails(write_gltf(tmp_path / "view.gltf", doc, binary), "bufferView 1")
    doc, binary = gltf_document()
    doc["accessors"][0]["count"] = 100
    fails(write_gltf(tmp_path / "acc.gltf", doc, binary), "accessor 0")
    doc, binary = gltf_document()
    del doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    fails(write_gltf(tmp_path / "nopos.gltf", doc, binary), "POSITION")
    doc, binary = gltf_document()
    doc["meshes"] = {"oops": 1}
    fails(write_gltf(tmp_path / "weird.gltf", doc, binary), "malformed")


# ----------------------------------------------------------------------------------------- STL


def test_good_stl_binary_and_ascii(tmp_path):
    assert check_cad_file(write_stl(tmp_path / "bin.stl")) == "stl"
    assert check_cad_file(write_stl(tmp_path / "ascii.stl", binary=False)) == "stl"


def test_binary_stl_whose_header_starts_with_solid_passes(tmp_path):
    path = write_stl(tmp_path / "solidhead.stl")
    data = path.read_bytes()
    path.write_bytes(b"solid exported".ljust(80, b" ") + data[80:])
    assert check_cad_file(path) == "stl"


def test_truncated_binary_stl(tmp_path):
    path = write_stl(tmp_path / "cut.stl")
    path.write_bytes(path.read_bytes()[:-7])
    fails(path, "truncated", "4 triangles")
    path.write_bytes(b"solid x".ljust(80, b" ") + path.read_bytes()[80:-20])  # 'solid' header, binary body
    fails(path, "truncated")
    path.write_bytes(b"\x01" * 50)
    fails(path, "too small")


def test_stl_without_triangles(tmp_path):
    path = tmp_path / "zero.stl"
    path.write_bytes(b" " * 80 + struct.pack("<I", 0))
    fails(path, "0 triangles")
    path.write_text("solid empty\nendsolid empty\n")
    fails(path, "facet")


# ----------------------------------------------------------------------------------------- PLY


def test_good_ply_binary_and_ascii(tmp_path):
    assert check_cad_file(write_ply(tmp_path / "bin.ply")) == "ply"
    assert check_cad_file(write_ply(tmp_path / "ascii.ply", binary=False)) == "ply"


@pytest.mark.parametrize(
    ("old", "new", "word"),
    [
        (b"end_header\n", b"end_headr\n", "end_header"),
        (b"format binary_little_endian 1.0", b"format binary_middle_endian 1.0", "format"),
        (b"property float y", b"property float3 y", "property"),
        (b"element vertex 4", b"element vertex four", "element"),
        (b"property float x", b"propulsion float x", "unexpected"),
        (b"format binary_little_endian 1.0\n", b"", "no 'format'"),
        (b"element vertex 4", b"element vertex 0", "no vertices"),
    ],
)
def test_corrupt_ply_header(tmp_path, old, new, word):
    path = write_ply(tmp_path / "bad.ply")
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))
    fails(path, word)


def test_ply_not_ply_and_property_first(tmp_path):
    path = tmp_path / "nope.ply"
    path.write_bytes(b"plx\nformat ascii 1.0\nend_header\n")
    fails(path, "'ply'")
    path.write_bytes(b"ply\nformat ascii 1.0\nproperty float x\nelement vertex 1\nend_header\n0\n")
    fails(path, "before any element")


def test_truncated_ply(tmp_path):
    path = write_ply(tmp_path / "cut.ply")
    data = path.read_bytes()
    # 100 data bytes: 4 vertices x 12 + 4 faces x (1 + 12); the check's lower bound is 48 + 4 x 1.
    path.write_bytes(data[:-60])
    fails(path, "truncated binary PLY")
    ascii_path = write_ply(tmp_path / "cut_ascii.ply", binary=False)
    lines = ascii_path.read_bytes().splitlines(keepends=True)
    ascii_path.write_bytes(b"".join(lines[:-2]))
    fails(ascii_path, "truncated ASCII PLY", "8 rows")


def test_ply_lower_bound_counts_list_headers_only(tmp_path):
    # A face list of 3 ints per row: the check only requires the count byte and the fixed part,
    # so a file cut inside the last face's indices passes the check (the importer decides).
    path = write_ply(tmp_path / "lists.ply")
    data = path.read_bytes()
    path.write_bytes(data[:-4])
    assert check_cad_file(path) == "ply"


# ----------------------------------------------------------------------------------------- OBJ


def test_good_obj_and_comment_with_inf_word(tmp_path):
    path = write_obj(tmp_path / "good.obj")
    assert check_cad_file(path) == "obj"
    path.write_text(path.read_text().replace("v 9", "v 9 # info: infinite", 1))
    assert "info" in path.read_text()
    assert check_cad_file(path) == "obj"


def test_obj_lines_with_leading_blanks_and_tabs(tmp_path):
    path = tmp_path / "blanks.obj"
    path.write_text("# x\n  v 0 0 0\n\tv 1 0 0\n v\t0 1 0\n   f\t1 2 3\n")
    assert check_cad_file(path) == "obj"
    path.write_text("# x\n  v 0 0 0\n\tv 1 0 0\n v\t0 1 0\n   l 1 2\n")
    fails(path, "no face")


def test_obj_without_faces_or_vertices(tmp_path):
    fails(write_obj(tmp_path / "points.obj", faces=None), "no face")
    path = tmp_path / "faces.obj"
    path.write_text("f 1 2 3\n")
    fails(path, "no vertex")


@pytest.mark.parametrize("token", ["nan", "NaN", "inf", "-inf", "+INF"])
def test_obj_non_finite_vertex(tmp_path, token):
    path = write_obj(tmp_path / "nonfinite.obj")
    lines = path.read_text().splitlines()
    lines[3] = f"v 1.0 {token} 2.0"
    path.write_text("\n".join(lines) + "\n")
    fails(path, "non-finite", "line 4")


def test_obj_with_binary_data(tmp_path):
    path = tmp_path / "binary.obj"
    path.write_bytes(b"v 0 0 0\nf 1 1 1\n\x00\x01\x02")
    fails(path, "binary")


# ----------------------------------------------------------------------------------------- FBX


def fbx_record(
    name: bytes, props: list[tuple[str, object]], children: list, offset: int, wide: bool
) -> bytes:
    """One binary FBX node record placed at `offset` (end offsets are absolute)."""
    body = b""
    for code, value in props:
        if code == "S":
            raw = value.encode() if isinstance(value, str) else value
            body += b"S" + struct.pack("<I", len(raw)) + raw
        else:
            body += code.encode() + struct.pack({"I": "<i", "D": "<d", "L": "<q"}[code], value)
    head_len = 25 if wide else 13
    start_children = offset + head_len + len(name) + len(body)
    kids = b""
    for child in children:
        kids += child(start_children + len(kids))
    if children:
        kids += b"\x00" * head_len
    end = start_children + len(kids)
    fmt = "<QQQB" if wide else "<IIIB"
    return struct.pack(fmt, end, len(props), len(body), len(name)) + name + body + kids


def write_fbx(
    path,
    version=7400,
    unit=2.54,
    up=(2, 1),
    front=(1, -1),
    coord=(0, 1),
    sections=("GlobalSettings", "Objects"),
):
    """A minimal binary FBX: GlobalSettings with the axis and unit properties, an empty Objects."""
    wide = version >= 7500

    def prop(name, kind, value):
        code = "D" if isinstance(value, float) else "I"
        return lambda off: fbx_record(
            b"P", [("S", name), ("S", kind), ("S", ""), ("S", ""), (code, value)], [], off, wide
        )

    settings = [
        prop("UpAxis", "int", up[0]),
        prop("UpAxisSign", "int", up[1]),
        prop("FrontAxis", "int", front[0]),
        prop("FrontAxisSign", "int", front[1]),
        prop("CoordAxis", "int", coord[0]),
        prop("CoordAxisSign", "int", coord[1]),
        prop("UnitScaleFactor", "double", unit),
    ]
    data = b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", version)
    for name in sections:
        kids = []
        if name == "GlobalSettings":
            kids = [
                lambda off: fbx_record(b"Version", [("I", 1000)], [], off, wide),
                lambda off: fbx_record(b"Properties70", [], settings, off, wide),
            ]
        data += fbx_record(name.encode(), [], kids, len(data), wide)
    data += b"\x00" * (25 if wide else 13) + b"\xfa\xbc" * 80  # end record and a footer
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("version", [7400, 7500])
def test_good_fbx_and_its_global_settings(tmp_path, version):
    path = write_fbx(tmp_path / "good.fbx", version=version)
    assert check_cad_file(path) == "fbx"
    settings = read_fbx_global_settings(path)
    assert settings["UnitScaleFactor"] == 2.54
    assert (settings["UpAxis"], settings["UpAxisSign"]) == (2, 1)
    assert (settings["FrontAxis"], settings["FrontAxisSign"]) == (1, -1)
    assert (settings["CoordAxis"], settings["CoordAxisSign"]) == (0, 1)


@pytest.mark.parametrize("version", [7400, 7500])
def test_truncated_fbx(tmp_path, version):
    path = write_fbx(tmp_path / "cut.fbx", version=version)
    data = path.read_bytes()
    assert len(data) > 400
    path.write_bytes(data[:-200])  # ends inside the top-level records
    fails(path, "truncated")
    path.write_bytes(data[:100])
    fails(path, "truncated")


def test_fbx_too_old_missing_sections_ascii_and_not_fbx(tmp_path):
    fails(write_fbx(tmp_path / "old.fbx", version=6100), "6100")
    fails(write_fbx(tmp_path / "noobj.fbx", sections=("GlobalSettings",)), "Objects")
    fails(write_fbx(tmp_path / "nogs.fbx", sections=("Objects",)), "GlobalSettings")
    ascii_fbx = tmp_path / "ascii.fbx"
    ascii_fbx.write_text("; FBX 7.4.0 project file\nFBXHeaderExtension:  {\n}\n")
    fails(ascii_fbx, "ASCII FBX")
    other = tmp_path / "other.fbx"
    other.write_text(json.dumps({"hello": "world"}) * 20)
    fails(other, "Kaydara")


# ------------------------------------------------------------------------ non-finite coordinates

NAN_VERTICES = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, np.nan, 0.0], [0.0, 0.0, 1.0]])
INF_VERTICES = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -np.inf]])


@pytest.mark.parametrize("vertices", [NAN_VERTICES, INF_VERTICES], ids=["nan", "inf"])
@pytest.mark.parametrize(
    "write",
    [
        lambda d, v: write_stl(d / "m.stl", vertices=v),
        lambda d, v: write_stl(d / "m.stl", vertices=v, binary=False),
        lambda d, v: write_ply(d / "m.ply", vertices=v),
        lambda d, v: write_ply(d / "m.ply", vertices=v, binary=False),
        lambda d, v: write_glb(d / "m.glb", *gltf_document(v, node=None)),
        lambda d, v: write_gltf(d / "m.gltf", *gltf_document(v, node=None)),
        lambda d, v: write_gltf(d / "m.gltf", *gltf_document(v, node=None), embed=True),
        lambda d, v: write_obj(d / "m.obj", vertices=v),
    ],
    ids=["stl", "stl-ascii", "ply", "ply-ascii", "glb", "gltf", "gltf-embedded", "obj"],
)
def test_non_finite_vertices_are_refused_before_import(tmp_path, write, vertices):
    path = write(tmp_path, vertices)
    fails(path, "non-finite")
    path = write(tmp_path, np.nan_to_num(vertices, nan=0.5, posinf=2.0, neginf=-2.0))
    assert check_cad_file(path) == path.suffix[1:]


def test_binary_ply_vertex_rows_with_extra_properties(tmp_path):
    path = tmp_path / "colored.ply"
    header = (
        b"ply\nformat binary_big_endian 1.0\nelement vertex 3\nproperty double x\nproperty uchar red\n"
        b"property double y\nproperty double z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
    )
    rows = [(0.0, 1, 0.0, 0.0), (1.0, 2, 0.0, 0.0), (0.0, 3, 1.0, np.inf)]
    body = b"".join(struct.pack(">dBdd", *r) for r in rows) + struct.pack(">B3i", 3, 0, 1, 2)
    path.write_bytes(header + body)
    fails(path, "vertex 2")
    rows[2] = (0.0, 3, 1.0, 0.0)
    path.write_bytes(
        header + b"".join(struct.pack(">dBdd", *r) for r in rows) + struct.pack(">B3i", 3, 0, 1, 2)
    )
    assert check_cad_file(path) == "ply"


# --------------------------------------------------------------------------- files an importer would hang on


def test_side_files_that_are_not_regular_files_are_refused(tmp_path):
    """An OBJ whose mtllib names a FIFO blocked Blender's importer forever: refused up front."""
    obj = write_obj(tmp_path / "m.obj")
    obj.write_text("mtllib m.mtl other.mtl\n" + obj.read_text())
    os.mkfifo(tmp_path / "m.mtl")
    fails(obj, "material file 'm.mtl' is a FIFO")
    (tmp_path / "m.mtl").unlink()
    (tmp_path / "m.mtl").write_text("newmtl a\nmap_Kd -s 1 1 1 tex.png\n")
    os.mkfifo(tmp_path / "tex.png")
    fails(obj, "texture 'tex.png' of 'm.mtl' is a FIFO")
    (tmp_path / "tex.png").unlink()
    (tmp_path / "tex.png").mkdir()
    fails(obj, "texture 'tex.png' of 'm.mtl' is a folder")
    (tmp_path / "tex.png").rmdir()
    assert check_cad_file(obj) == "obj"  # missing side files are the importer's to skip

    doc, binary = gltf_document()
    doc["images"] = [{"uri": "albedo.png"}]
    gltf = write_gltf(tmp_path / "g.gltf", doc, binary)
    os.mkfifo(tmp_path / "albedo.png")
    fails(gltf, "glTF image 0's file 'albedo.png' is a FIFO")
    (tmp_path / "albedo.png").unlink()
    buffer = tmp_path / json.loads(gltf.read_text())["buffers"][0]["uri"]
    buffer.unlink()
    os.mkfifo(buffer)
    fails(gltf, "glTF buffer 0's file", "is a FIFO")


# --------------------------------------------------------------------------- silent changes refused


@pytest.mark.parametrize("value", ["1e39", "-3.5E+038", "2.5e100", "1e308"])
def test_text_coordinates_past_float32_are_refused(tmp_path, value):
    vertices = [["0", "0", "0"], [value, "0", "0"], ["0", "1", "0"]]
    obj = tmp_path / "big.obj"
    obj.write_text("".join(f"v {' '.join(v)}\n" for v in vertices) + "f 1 2 3\n")
    fails(obj, f"vertex coordinate {value} on line 2 does not fit a 32-bit float")
    stl = tmp_path / "big.stl"
    stl.write_text(
        "solid s\nfacet normal 0 0 1\nouter loop\n"
        + "".join(f"vertex {' '.join(v)}\n" for v in vertices)
        + "endloop\nendfacet\nendsolid s\n"
    )
    fails(stl, "does not fit a 32-bit float")


def test_coordinates_that_fit_float32_pass(tmp_path):
    obj = tmp_path / "ok.obj"
    obj.write_text("v 0 0 0\nv 3.3e38 0 0\nv 0 1e-45 0\nusemtl size3e40\nf 1 2 3\n")
    assert check_cad_file(obj) == "obj"


def test_binary_ply_doubles_past_float32_are_refused(tmp_path):
    ply = tmp_path / "d.ply"
    head = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty double x\nproperty double y\n"
        b"property double z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
    )
    body = struct.pack("<9d", 0, 0, 0, 1e39, 0, 0, 0, 1, 0) + struct.pack("<B3i", 3, 0, 1, 2)
    ply.write_bytes(head + body)
    fails(ply, "vertex 1's x 1e+39 does not fit a 32-bit float")


def test_a_glb_stride_smaller_than_its_element_is_refused(tmp_path):
    doc, binary = gltf_document()
    doc["bufferViews"][0]["byteStride"] = 8  # a VEC3 of floats is 12 bytes
    fails(write_glb(tmp_path / "s.glb", doc, binary), "byteStride 8 is smaller than one element (12 bytes)")


def test_a_deeply_nested_gltf_is_one_line_not_a_traceback(tmp_path):
    gltf = tmp_path / "deep.gltf"
    gltf.write_text('{"asset": ' + "[" * 100_000 + "]" * 100_000 + "}")
    fails(gltf, "the glTF JSON nests too deeply")
