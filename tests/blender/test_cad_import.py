"""import_cad with Blender's own importers: the to_object contract, alignment, clean-up and errors.

Every file is tiny and written here with known raw coordinates (FBX through Blender's exporter),
then imported; `to_object @ raw` must land on the imported vertices. trimesh reads the raw
coordinates of OBJ/glTF/PLY/STL a second, independent way.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
import pytest
import trimesh

from dst3d_addon.blender.cad_import import (
    PROP_TO_OBJECT,
    Y_UP_TO_Z_UP,
    clear_scene,
    ensure_importers,
    gltf_import_problem,
    import_cad,
)
from dst3d_addon.blender.rig import ensure_camera
from dst3d_addon.core.alignment import axis_matrix
from dst3d_addon.core.errors import CadError, Dst3dError
from dst3d_addon.core.fbx import read_fbx_global_settings
from tests.cad_samples import (
    FACES,
    NOSE,
    TOP,
    VERTICES,
    gltf_document,
    gltf_node_matrix,
    same_point_sets,
    transform,
    write_glb,
    write_gltf,
    write_obj,
    write_ply,
    write_stl,
)

#: Where the sample's nose (file +X) and top (file +Y) are in Blender's frame after each importer.
Y_UP = "Y-up"  # OBJ, glTF: file +Y -> +Z
Z_UP = "Z-up"  # PLY, STL, and the FBX round trip below: file axes are Blender's


@pytest.fixture(autouse=True)
def fresh():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield


# ------------------------------------------------------------------------------------ FBX files


def export_fbx(path: Path, **options) -> Path:
    """The sample mesh built in Blender (object moved by (1, 2, 3)) and written by its FBX exporter."""
    ensure_importers()
    mesh = bpy.data.meshes.new("sample")
    mesh.from_pydata(VERTICES.tolist(), [], FACES.tolist())
    obj = bpy.data.objects.new("sample", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = (1.0, 2.0, 3.0)
    bpy.ops.export_scene.fbx(filepath=str(path), **options)
    bpy.data.objects.remove(obj)
    bpy.data.meshes.remove(mesh)
    return path


def fbx_raw_vertices(path: Path) -> np.ndarray:
    """The FBX file's vertices with its node transform applied, read by Blender's FBX parser only."""
    from io_scene_fbx import parse_fbx

    root, _version = parse_fbx.parse(str(path))
    objects = next(e for e in root.elems if e.id == b"Objects")
    geometry = next(e for e in objects.elems if e.id == b"Geometry")
    raw = np.array(next(e for e in geometry.elems if e.id == b"Vertices").props[0], dtype=float).reshape(
        -1, 3
    )
    model = next(e for e in objects.elems if e.id == b"Model")
    props70 = next(e for e in model.elems if e.id == b"Properties70")
    props = {e.props[0]: e.props[4:] for e in props70.elems}
    assert not {b"PreRotation", b"PostRotation", b"RotationPivot", b"ScalingPivot"} & set(props)
    rx, ry, rz = np.radians(props.get(b"Lcl Rotation", (0.0, 0.0, 0.0)))
    Rx = np.array([[1, 0, 0], [0, math.cos(rx), -math.sin(rx)], [0, math.sin(rx), math.cos(rx)]])
    Ry = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]])
    Rz = np.array([[math.cos(rz), -math.sin(rz), 0], [math.sin(rz), math.cos(rz), 0], [0, 0, 1]])
    S = np.diag(np.array(props.get(b"Lcl Scaling", (1.0, 1.0, 1.0)), dtype=float))
    T = np.array(props.get(b"Lcl Translation", (0.0, 0.0, 0.0)), dtype=float)
    return raw @ (Rz @ Ry @ Rx @ S).T + T  # FBX's default rotation order XYZ: X first


# --------------------------------------------------------------------------------- sample files

GLTF_NODE_TRANSFORM = gltf_node_matrix()
BLENDER_SAMPLE = VERTICES + np.array([1.0, 2.0, 3.0])  # the FBX sample in Blender's frame


def sample(kind: str, folder: Path) -> tuple[Path, np.ndarray, str]:
    """(file, raw vertices as stored with node transforms applied, how its axes import)."""
    if kind == "obj":
        return write_obj(folder / "sample.obj"), VERTICES, Y_UP
    if kind == "ply":
        return write_ply(folder / "sample.ply"), VERTICES, Z_UP
    if kind == "ply-ascii":
        return write_ply(folder / "sample_ascii.ply", binary=False), VERTICES, Z_UP
    if kind == "stl":
        return write_stl(folder / "sample.stl"), VERTICES, Z_UP
    if kind == "stl-ascii":
        return write_stl(folder / "sample_ascii.stl", binary=False), VERTICES, Z_UP
    if kind == "glb":
        return write_glb(folder / "sample.glb"), transform(GLTF_NODE_TRANSFORM, VERTICES), Y_UP
    if kind == "gltf":
        return write_gltf(folder / "sample.gltf"), transform(GLTF_NODE_TRANSFORM, VERTICES), Y_UP
    if kind == "gltf-embedded":
        path = write_gltf(folder / "embedded.gltf", *gltf_document(), embed=True)
        return path, transform(GLTF_NODE_TRANSFORM, VERTICES), Y_UP
    if kind == "fbx":
        path = export_fbx(folder / "sample.fbx")
        return path, fbx_raw_vertices(path), Z_UP
    raise AssertionError(kind)


#: Debian's Blender 3.4 runs its glTF importer on a numpy without numpy.bool: no glTF there.
needs_gltf = pytest.mark.skipif(gltf_import_problem() is not None, reason=str(gltf_import_problem()))
GLTF_KINDS = ("glb", "gltf", "gltf-embedded")


def kinds(*names: str) -> list:
    """Parameters for these sample kinds, the glTF ones marked `needs_gltf`."""
    return [pytest.param(n, marks=needs_gltf) if n in GLTF_KINDS else n for n in names]


KINDS = kinds("obj", "ply", "ply-ascii", "stl", "stl-ascii", "glb", "gltf", "gltf-embedded", "fbx")


def check_normalised(vertices: np.ndarray) -> None:
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    assert math.isclose(float(np.max(hi - lo)), 1.0, abs_tol=1e-6)
    assert np.allclose((lo + hi) / 2.0, 0.0, atol=1e-6)


# ------------------------------------------------------------------------------ the contract


@pytest.mark.parametrize("kind", KINDS)
def test_to_object_maps_raw_file_vertices_onto_the_imported_mesh(tmp_path, kind):
    path, raw, _axes = sample(kind, tmp_path)
    model = import_cad(path)
    assert model.format == path.suffix[1:] and model.path == str(path)
    assert model.vertices.dtype == np.float64 and model.vertices.shape[1] == 3
    assert model.faces.dtype == np.int64 and model.faces.shape == (4, 3)
    assert model.faces.min() >= 0 and model.faces.max() < len(model.vertices)
    assert same_point_sets(transform(model.to_object, raw), model.vertices, tol=1e-6)
    check_normalised(model.vertices)
    # One mesh object in the scene, already in the object frame.
    assert [o.type for o in bpy.context.scene.objects] == ["MESH"]
    assert bpy.context.scene.objects[0] == model.object
    assert np.allclose(np.array(model.object.matrix_world), np.eye(4))
    assert np.allclose(np.array(model.object[PROP_TO_OBJECT]).reshape(4, 4), model.to_object)
    # The triangles are the sample's four faces (same corners, whatever the vertex order).
    expected = [transform(model.to_object, raw[f]) for f in FACES]
    matches = [[same_point_sets(model.vertices[f], tri) for tri in expected] for f in model.faces]
    assert np.array_equal(np.sum(matches, axis=0), [1, 1, 1, 1])
    assert np.array_equal(np.sum(matches, axis=1), [1, 1, 1, 1])


@pytest.mark.parametrize("kind", kinds("obj", "ply", "ply-ascii", "stl", "stl-ascii", "glb", "gltf"))
def test_to_object_holds_for_the_vertices_trimesh_reads(tmp_path, kind):
    path, _raw, _axes = sample(kind, tmp_path)
    model = import_cad(path, forward="X", up="Z", azimuth_offset=0.4)
    loaded = trimesh.load(str(path), force="mesh", process=False)
    assert same_point_sets(transform(model.to_object, np.asarray(loaded.vertices)), model.vertices, tol=1e-6)


def test_importer_axis_changes_are_blenders(tmp_path):
    from bpy_extras.io_utils import axis_conversion

    # OBJ is imported with forward -Z, up Y: exactly Blender's axis_conversion of those axes.
    assert np.allclose(np.array(axis_conversion(from_forward="-Z", from_up="Y")), Y_UP_TO_Z_UP)
    for forward, up in [("X", "Z"), ("-Y", "X"), ("Z", "-Y")]:
        assert np.allclose(
            np.array(axis_conversion(from_forward=forward, from_up=up)),
            axis_matrix("-" + forward if not forward.startswith("-") else forward[1:], up),
        )


# ------------------------------------------------------------------------- forward, up, offsets


def nose_and_top(model, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = transform(model.to_object, raw)
    return pts[NOSE], pts[TOP]


@pytest.mark.parametrize("kind", KINDS)
def test_default_import_keeps_the_importers_frame(tmp_path, kind):
    path, raw, axes = sample(kind, tmp_path)
    model = import_cad(path)
    nose, top = nose_and_top(model, raw)
    assert math.isclose(nose[0], 0.5, abs_tol=1e-6)  # the nose stays at +X, the longest side
    top_axis = 2 if axes == Y_UP else 1  # file +Y is +Z after a Y-up importer, else +Y
    assert math.isclose(top[top_axis], model.vertices[:, top_axis].max(), abs_tol=1e-6)
    assert math.isclose(top[top_axis] - model.vertices[:, top_axis].min(), 1 / 3, abs_tol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_up_turn_the_nose_to_minus_y(tmp_path, kind):
    path, raw, axes = sample(kind, tmp_path)
    up = "Z" if axes == Y_UP else "Y"  # where the top is after the importer
    model = import_cad(path, forward="X", up=up)
    nose, top = nose_and_top(model, raw)
    assert math.isclose(nose[1], -0.5, abs_tol=1e-6) and math.isclose(
        nose[1], model.vertices[:, 1].min(), abs_tol=1e-6
    )
    assert math.isclose(top[2], model.vertices[:, 2].max(), abs_tol=1e-6) and math.isclose(
        top[2] - model.vertices[:, 2].min(), 1 / 3, abs_tol=1e-6
    )
    check_normalised(model.vertices)


def test_offsets_rotate_as_documented(tmp_path):
    path, raw, _axes = sample("obj", tmp_path)
    by_axes = import_cad(path, forward="X", up="Z").vertices
    # The front is seen from a = 90 deg (camera on +X): the same as forward="X".
    by_offset = import_cad(path, azimuth_offset=math.pi / 2)
    assert np.allclose(by_offset.vertices, by_axes, atol=1e-6)
    # The front is seen from straight above: the top turns to -Y.
    model = import_cad(path, elevation_offset=math.pi / 2)
    nose, top = nose_and_top(model, raw)
    assert math.isclose(top[1], model.vertices[:, 1].min(), abs_tol=1e-6)
    assert math.isclose(nose[0], 0.5, abs_tol=1e-6)
    # Offsets compose after the axes: nose to -Y, then the view from +X (the model's left) to the front.
    model = import_cad(path, forward="X", up="Z", azimuth_offset=math.pi / 2)
    side = transform(model.to_object, raw)
    assert math.isclose(side[NOSE][0], -0.5, abs_tol=1e-6)


def test_bad_alignment_options_fail_before_importing(tmp_path):
    path = write_obj(tmp_path / "sample.obj")
    with pytest.raises(Dst3dError, match="forward 'W'"):
        import_cad(path, forward="W")
    with pytest.raises(Dst3dError, match="perpendicular"):
        import_cad(path, forward="Z", up="-Z")
    assert len(bpy.data.objects) == 0


# ------------------------------------------------------------------ FBX: axes and units of files


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"axis_forward": "X", "axis_up": "Z"},
        {"axis_forward": "Y", "axis_up": "-X", "bake_space_transform": True},
        {"global_scale": 3.0, "apply_unit_scale": False},
    ],
    ids=["default", "z-up", "baked", "scaled"],
)
def test_fbx_axes_and_units_are_read_from_the_file(tmp_path, options):
    path = export_fbx(tmp_path / "sample.fbx", **options)
    from io_scene_fbx import parse_fbx

    # read_fbx_global_settings agrees with Blender's own FBX parser.
    root, _ = parse_fbx.parse(str(path))
    settings = next(e for e in root.elems if e.id == b"GlobalSettings")
    props70 = next(e for e in settings.elems if e.id == b"Properties70")
    theirs = {e.props[0].decode(): e.props[4] for e in props70.elems if len(e.props) > 4}
    ours = read_fbx_global_settings(path)
    for key in (
        "UnitScaleFactor",
        "UpAxis",
        "UpAxisSign",
        "FrontAxis",
        "FrontAxisSign",
        "CoordAxis",
        "CoordAxisSign",
    ):
        assert ours[key] == theirs[key]
    model = import_cad(path)
    raw = fbx_raw_vertices(path)
    assert same_point_sets(transform(model.to_object, raw), model.vertices, tol=1e-6)
    # The round trip restores Blender's frame: the result is the normalised original.
    lo, hi = BLENDER_SAMPLE.min(axis=0), BLENDER_SAMPLE.max(axis=0)
    expected = (BLENDER_SAMPLE - (lo + hi) / 2) / np.max(hi - lo)
    assert same_point_sets(expected, model.vertices, tol=1e-6)


def test_shape_keys_are_applied_at_their_current_values(tmp_path):
    ensure_importers()
    mesh = bpy.data.meshes.new("keyed")
    mesh.from_pydata(VERTICES.tolist(), [], FACES.tolist())
    obj = bpy.data.objects.new("keyed", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    key = obj.shape_key_add(name="Longer")
    key.data[NOSE].co = (VERTICES[NOSE] + np.array([3.0, 0.0, 0.0])).tolist()
    key.value = 0.0
    path = tmp_path / "keyed.fbx"
    bpy.ops.export_scene.fbx(filepath=str(path))
    bpy.data.objects.remove(obj)
    bpy.data.meshes.remove(mesh)
    model = import_cad(path)
    assert model.object.data.shape_keys is None
    assert len(bpy.data.meshes) == 1
    assert same_point_sets(transform(model.to_object, fbx_raw_vertices(path)), model.vertices)


# --------------------------------------------------------------------- several objects, materials


def test_several_objects_are_joined_and_materials_kept(tmp_path):
    (tmp_path / "two.mtl").write_text("newmtl red\nKd 1 0 0\n\nnewmtl blue\nKd 0 0 1\n")
    lines = ["mtllib two.mtl", "o first", "usemtl red"]
    lines += [f"v {x} {y} {z}" for x, y, z in VERTICES]
    lines += ["f " + " ".join(str(i + 1) for i in f) for f in FACES]
    lines += ["o second", "usemtl blue"]
    lines += [f"v {x} {y + 3} {z}" for x, y, z in VERTICES]
    lines += ["f " + " ".join(str(i + 5) for i in f) for f in FACES]
    path = tmp_path / "two.obj"
    path.write_text("\n".join(lines) + "\n")
    model = import_cad(path)
    assert [o.type for o in bpy.context.scene.objects] == ["MESH"]
    assert len(model.vertices) == 8 and len(model.faces) == 8
    names = sorted(slot.material.name for slot in model.object.material_slots)
    assert names == ["blue", "red"]
    raw = np.vstack([VERTICES, VERTICES + np.array([0.0, 3.0, 0.0])])
    assert same_point_sets(transform(model.to_object, raw), model.vertices)
    check_normalised(model.vertices)


@needs_gltf
def test_gltf_hierarchy_cameras_and_lights(tmp_path):
    doc, binary = gltf_document(node=None)
    parent = {
        "translation": [0.0, 5.0, 0.0],
        "rotation": [0.0, 0.0, 0.70710678, 0.70710678],
        "children": [1, 2, 3],
    }
    child = {"mesh": 0, "scale": [2.0, 2.0, 2.0]}
    doc["nodes"] = [parent, child, {"camera": 0}, {"translation": [1.0, 1.0, 1.0]}]
    doc["cameras"] = [{"type": "perspective", "perspective": {"yfov": 0.8, "znear": 0.01}}]
    doc["scenes"] = [{"nodes": [0]}]
    path = write_glb(tmp_path / "tree.glb", doc, binary)
    model = import_cad(path)
    assert [o.type for o in bpy.context.scene.objects] == ["MESH"]
    assert len(bpy.data.cameras) == 0
    raw = transform(gltf_node_matrix(parent) @ gltf_node_matrix(child), VERTICES)
    assert same_point_sets(transform(model.to_object, raw), model.vertices, tol=1e-6)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


@needs_gltf
def test_mirrored_parts_keep_their_winding(tmp_path):
    # A mirroring node transform must reverse the winding (as glTF and Blender do), also when
    # the mirrored part is joined with an unmirrored one: both parts keep the same orientation.
    one = import_cad(write_glb(tmp_path / "one.glb", *gltf_document(node=None)))
    reference = signed_volume(one.vertices, one.faces)
    assert abs(reference) > 1e-3
    doc, binary = gltf_document(node=None)
    doc["nodes"] = [{"mesh": 0}, {"mesh": 0, "scale": [-1.0, 1.0, 1.0], "translation": [-30.0, 0.0, 0.0]}]
    doc["scenes"] = [{"nodes": [0, 1]}]
    model = import_cad(write_glb(tmp_path / "two.glb", doc, binary))
    assert len(model.faces) == 8
    right = model.vertices[model.faces].mean(axis=1)[:, 0] > 0
    for part in (model.faces[right], model.faces[~right]):
        assert len(part) == 4
        assert np.sign(signed_volume(model.vertices, part)) == np.sign(reference)


def corner_normals(mesh: bpy.types.Mesh) -> np.ndarray:
    """The mesh's normal per face corner (Blender 4.1 replaced calc_normals_split with corner_normals)."""
    if hasattr(mesh, "corner_normals"):
        return np.array([n.vector for n in mesh.corner_normals])
    mesh.calc_normals_split()
    return np.array([loop.normal for loop in mesh.loops])


def test_custom_normals_follow_the_alignment(tmp_path):
    path = tmp_path / "normals.obj"
    path.write_text(
        "v 0 0 0\nv 1 0 0\nv 0 0 -1\nv 5 0.1 3\nvn 0 1 0\nvn 1 0 0\nf 1//1 2//1 3//1\nf 1//2 4//2 2//2\n"
    )
    model = import_cad(path, elevation_offset=math.pi / 2)
    assert model.object.data.has_custom_normals
    normals = corner_normals(model.object.data)
    # file +Y (the top) -> +Z after the importer -> -Y when the front is seen from above; X stays.
    assert np.allclose(normals[:3], [0.0, -1.0, 0.0], atol=1e-3)
    assert np.allclose(normals[3:], [1.0, 0.0, 0.0], atol=1e-3)


@needs_gltf
def test_general_node_rotations_hold_to_float32_precision(tmp_path):
    # Blender keeps node transforms in single precision: a 45 deg turn far from the origin
    # reproduces to a few 1e-6 of the model size, not to double precision.
    node = {
        "translation": [1.0, -2.0, 3.0],
        "rotation": [0.0, 0.0, 0.38268343, 0.92387953],
        "scale": [2.0, 2.0, 2.0],
    }
    path = write_glb(tmp_path / "turned.glb", *gltf_document(node=node))
    model = import_cad(path)
    raw = transform(gltf_node_matrix(node), VERTICES)
    assert same_point_sets(transform(model.to_object, raw), model.vertices, tol=1e-5)


# ------------------------------------------------------------------------------- scene handling


def test_importing_b_after_a_leaves_only_b(tmp_path):
    scene = bpy.context.scene
    camera = ensure_camera(scene)
    first = import_cad(write_obj(tmp_path / "a.obj"))
    first_mesh = first.object.data.name
    second = import_cad(write_stl(tmp_path / "b.stl"))
    names = sorted(o.name for o in scene.objects)
    assert names == sorted([camera.name, second.object.name])
    assert first_mesh not in bpy.data.meshes
    assert len(bpy.data.meshes) == 1
    clear_scene(scene)
    assert len(scene.objects) == 0 and len(bpy.data.meshes) == 0


def test_import_into_another_scene(tmp_path):
    other = bpy.data.scenes.new("Other")
    model = import_cad(write_ply(tmp_path / "p.ply"), scene=other)
    assert model.object.name in other.objects
    assert same_point_sets(transform(model.to_object, VERTICES), model.vertices)
    assert model.faces.shape == (4, 3)
    assert model.object.name not in bpy.context.scene.objects
    assert len(bpy.context.scene.objects) == 0


# ------------------------------------------------------------------------------------ bad files


def bad(path: Path, *words: str) -> None:
    with pytest.raises(CadError) as info:
        import_cad(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message, message
    for word in words:
        assert word in message, message
    assert len(bpy.data.objects) == 0, "a failed import must leave nothing behind"
    assert len(bpy.data.meshes) == 0 and len(bpy.data.materials) == 0


def test_missing_empty_and_unsupported(tmp_path):
    bad(tmp_path / "missing.obj", "not found")
    empty = tmp_path / "empty.stl"
    empty.write_bytes(b"")
    bad(empty, "empty")
    other = tmp_path / "model.dae"
    other.write_text("<COLLADA/>")
    bad(other, "unsupported")


def test_truncated_files(tmp_path):
    glb = write_glb(tmp_path / "cut.glb")
    glb.write_bytes(glb.read_bytes()[:-12])
    bad(glb, "truncated")
    stl = write_stl(tmp_path / "cut.stl")
    stl.write_bytes(stl.read_bytes()[:-30])
    bad(stl, "truncated")
    fbx = export_fbx(tmp_path / "cut.fbx")
    fbx.write_bytes(fbx.read_bytes()[:2000])
    bad(fbx, "truncated")


def test_corrupt_ply_header(tmp_path):
    path = write_ply(tmp_path / "corrupt.ply")
    path.write_bytes(path.read_bytes().replace(b"property float y", b"property flaot y"))
    bad(path, "PLY header")


@pytest.mark.parametrize("ext", [".obj", ".glb", ".gltf", ".ply", ".stl", ".fbx"])
def test_garbage_bytes_with_a_valid_extension(tmp_path, ext):
    path = tmp_path / f"garbage{ext}"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    bad(path)


def test_meshes_without_faces(tmp_path):
    bad(write_obj(tmp_path / "points.obj", faces=None), "no face")
    # Passes the file check (a face element, 0 rows), so the imported mesh itself is refused.
    bad(write_ply(tmp_path / "points.ply", faces=np.zeros((0, 3), dtype=np.int64)), "no faces")


def test_non_finite_and_zero_size(tmp_path):
    path = write_obj(tmp_path / "nan.obj")
    lines = path.read_text().splitlines()
    lines[2] = "v 1.0 nan 2.0"
    path.write_text("\n".join(lines) + "\n")
    bad(path, "non-finite")
    nan_ply = VERTICES.copy()
    nan_ply[1, 2] = np.inf
    bad(write_ply(tmp_path / "inf.ply", vertices=nan_ply), "non-finite")
    bad(write_obj(tmp_path / "point.obj", vertices=np.full((4, 3), 7.0)), "zero size")
    bad(write_stl(tmp_path / "point.stl", vertices=np.full((4, 3), 7.0)), "zero size")


@needs_gltf
def test_importer_failure_becomes_cad_error(tmp_path):
    doc, binary = gltf_document()
    doc["accessors"][1]["componentType"] = 9999  # unknown index type: the glTF importer raises
    bad(write_glb(tmp_path / "broken.glb", doc, binary), "importer failed")


@needs_gltf
def test_file_with_no_mesh_objects(tmp_path):
    doc, binary = gltf_document(node=None)
    doc["nodes"] = [{"camera": 0}]
    doc["cameras"] = [{"type": "perspective", "perspective": {"yfov": 0.8, "znear": 0.01}}]
    bad(write_glb(tmp_path / "camera_only.glb", doc, binary), "no mesh")
    assert len(bpy.data.cameras) == 0


@pytest.mark.skipif(gltf_import_problem() is None, reason="this Blender imports glTF files")
def test_a_blender_that_cannot_import_gltf_says_why_in_one_line(tmp_path):
    bad(write_glb(tmp_path / "sample.glb"), "cannot import glTF files", "numpy.bool", "OBJ or PLY")
