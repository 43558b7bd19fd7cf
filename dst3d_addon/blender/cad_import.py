"""Import a CAD file with Blender's own importers, join it into one mesh, align and normalise it.

After `import_cad` the scene holds one mesh object whose world coordinates are the object frame of
pose-convention.md (+Z up, front faces -Y, bounding box centred with longest side 1); its object matrix is
the identity, the transform is baked into the mesh. `to_object` maps the file's own coordinates
(file axes, node transforms applied) to that frame: to_object = N · O · A · C (alignment.py), where
C is the importer's axis change (and, for FBX, its unit scale), known because every importer is
called with explicit axis options.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import addon_utils
import bpy
import numpy as np
from mathutils import Matrix

from ..core.alignment import alignment_rotation, axis_matrix, compose_to_object
from ..core.cad_files import check_cad_file
from ..core.errors import CadError
from ..core.fbx import read_fbx_global_settings
from . import operator_call

#: Custom properties on the imported object (so panels and operators can find the model).
PROP_MODEL = "dst3d_model"
PROP_PATH = "dst3d_path"
PROP_FORMAT = "dst3d_format"
PROP_TO_OBJECT = "dst3d_to_object"

#: The axis change of Y-up files (OBJ, glTF): file +Y -> +Z, file +Z -> -Y, X unchanged.
Y_UP_TO_Z_UP = axis_matrix(forward="Z", up="Y")

#: Matrix entries this close (relative) to an integer are float32 noise of an exact axis change.
_SNAP = 4e-7

#: A vertex box smaller than this fraction of the coordinates' magnitude has no usable size.
_MIN_RELATIVE_EXTENT = 1e-7


@dataclass
class ImportedModel:
    """A CAD model in the scene: the object, its triangles in the object frame, and to_object."""

    object: bpy.types.Object
    vertices: np.ndarray  # (N, 3) float64, object frame
    faces: np.ndarray  # (M, 3) int64, indices into vertices
    to_object: np.ndarray  # (4, 4) file coordinates -> object frame
    format: str
    path: str


def ensure_importers() -> None:
    """Enable the glTF and FBX add-ons (Blender's OBJ, PLY and STL importers are built in; before
    3.6 PLY's is an add-on, enabled when a PLY file is imported)."""
    for module in ("io_scene_gltf2", "io_scene_fbx"):
        _loaded_default, loaded_state = addon_utils.check(module)
        if not loaded_state:
            addon_utils.enable(module, default_set=True)


def clear_scene(scene: bpy.types.Scene | None = None) -> None:
    """Remove every object of `scene` (and the data only they used)."""
    scene = scene or bpy.context.scene
    _remove_objects(list(scene.objects))


def remove_models(scene: bpy.types.Scene | None = None) -> None:
    """Remove the models import_cad put into `scene`, keeping cameras, lights and anything else."""
    scene = scene or bpy.context.scene
    _remove_objects([obj for obj in scene.objects if obj.get(PROP_MODEL)])


def import_cad(
    path: str | Path,
    *,
    forward: str = "-Y",
    up: str = "Z",
    azimuth_offset: float = 0.0,
    elevation_offset: float = 0.0,
    scene: bpy.types.Scene | None = None,
) -> ImportedModel:
    """Import `path` into `scene` (default: the context's) as one aligned, normalised mesh object.

    `forward`/`up` name where the model's front and top point after the importer's own axis change
    (Blender's frame, +Z up); the offsets (radians) are 3D-DST's pose offset (alignment.py). A model
    an earlier call imported into the scene is removed first. Raises CadError naming the file.
    """
    path = str(path)
    fmt = check_cad_file(path)
    alignment = (forward, up, float(azimuth_offset), float(elevation_offset))
    alignment_rotation(*alignment)  # bad options fail here, before anything is imported
    scene = scene or bpy.context.scene
    ensure_importers()
    remove_models(scene)

    before = _snapshot()
    try:
        import_matrix = _run_importer(path, fmt, scene)
        created = _created(before, "objects")
        model = _build_model(path, fmt, scene, created, import_matrix, alignment)
    except BaseException:
        # Whatever the importer made, finished or not, goes: a failed import leaves no trace.
        bpy.data.batch_remove(_created(before, "objects"))
        bpy.data.batch_remove([i for name in _TRACKED[1:] for i in _created(before, name)])
        raise
    _purge_unused(before)
    return model


#: The ID collections an importer adds to (objects first); what a failed import made is removed.
_TRACKED = (
    "objects",
    "meshes",
    "cameras",
    "lights",
    "armatures",
    "curves",
    "materials",
    "node_groups",
    "textures",
    "images",
    "actions",
    "collections",
)


def _snapshot() -> dict[str, set[int]]:
    return {name: {i.as_pointer() for i in getattr(bpy.data, name)} for name in _TRACKED}


def _created(before: dict[str, set[int]], name: str) -> list:
    return [i for i in getattr(bpy.data, name) if i.as_pointer() not in before[name]]


def _purge_unused(before: dict[str, set[int]]) -> None:
    """Remove what the import created and nothing uses any more (data of dropped cameras, ...)."""
    for name in _TRACKED[1:]:
        unused = [i for i in _created(before, name) if i.users == 0 and not i.use_fake_user]
        if unused:
            bpy.data.batch_remove(unused)


@dataclass(frozen=True)
class _Importer:
    """One of Blender's importers for a format, called as operator_call.py describes."""

    idname: str
    required: dict  # the axes and scale: to_object is computed with them
    if_present: dict  # what an importer without these keywords does not do anyway
    C: np.ndarray  # the importer's axis change (file -> Blender's frame) with those keywords


_IDENTITY = np.eye(3)
#: Each format's importers, newest first: the first one the running Blender has is used.
_IMPORTERS: dict[str, tuple[_Importer, ...]] = {
    "obj": (
        _Importer(
            "wm.obj_import",
            dict(forward_axis="NEGATIVE_Z", up_axis="Y", global_scale=1.0, clamp_size=0.0),
            {},
            Y_UP_TO_Z_UP,
        ),
    ),
    # glTF is +Y up by definition; the importer always turns it to +Z up and has no axis option.
    "glb": (
        _Importer(
            "import_scene.gltf",
            dict(merge_vertices=False),
            dict(import_scene_as_collection=False),
            Y_UP_TO_Z_UP,
        ),
    ),
    "ply": (
        _Importer(
            "wm.ply_import",
            dict(forward_axis="Y", up_axis="Z", global_scale=1.0, use_scene_unit=False),
            dict(merge_verts=False),
            _IDENTITY,
        ),
        # Blender before 3.6: the Python add-on, which reads the coordinates as they are.
        _Importer("import_mesh.ply", {}, {}, _IDENTITY),
    ),
    "stl": (
        _Importer(
            "wm.stl_import",
            dict(forward_axis="Y", up_axis="Z", global_scale=1.0, use_scene_unit=False),
            {},
            _IDENTITY,
        ),
        _Importer(
            "import_mesh.stl",
            dict(axis_forward="Y", axis_up="Z", global_scale=1.0, use_scene_unit=False),
            {},
            _IDENTITY,
        ),
    ),
}
_IMPORTERS["gltf"] = _IMPORTERS["glb"]
#: The Python add-ons that hold importers (enabled on demand; the others are built in).
_IMPORTER_ADDONS = {
    "import_scene.gltf": "io_scene_gltf2",
    "import_scene.fbx": "io_scene_fbx",
    "import_mesh.ply": "io_mesh_ply",
    "import_mesh.stl": "io_mesh_stl",
}


def _importer(path: str, fmt: str, scene: bpy.types.Scene) -> tuple[str, dict, np.ndarray]:
    """(operator, keywords, C) of the running Blender's importer for `fmt`, or CadError."""
    if fmt == "fbx":
        fbx_forward, fbx_up, unit_scale = _fbx_axes_and_scale(path, scene)
        importer = _Importer(
            "import_scene.fbx",
            dict(
                use_manual_orientation=True,
                axis_forward=fbx_forward,
                axis_up=fbx_up,
                global_scale=1.0,
                bake_space_transform=False,
            ),
            dict(use_anim=False),
            # axis_conversion(from_forward=F, from_up=U) takes F to +Y and U to +Z.
            unit_scale * axis_matrix(forward=_negate(fbx_forward), up=fbx_up),
        )
        candidates: tuple[_Importer, ...] = (importer,)
    elif fmt in _IMPORTERS:
        candidates = _IMPORTERS[fmt]
        problem = gltf_import_problem() if fmt in ("glb", "gltf") else None
        if problem is not None:
            raise CadError(f"{path}: cannot import glTF files: {problem}")
    else:  # check_cad_file returned a format this module does not know
        raise CadError(f"{path}: no importer for format {fmt!r}")
    problems = []
    for importer in candidates:
        _enable_addon_of(importer.idname)
        try:
            kwargs = operator_call.arguments(importer.idname, importer.required, importer.if_present)
        except operator_call.OperatorMismatch as exc:
            problems.append(str(exc))
            continue
        return importer.idname, kwargs, importer.C
    raise CadError(f"{path}: cannot import {fmt.upper()} files: {'; '.join(problems)}")


def _enable_addon_of(idname: str) -> None:
    """Enable the add-on that holds the importer `idname`, if it is an add-on that is not enabled."""
    module = _IMPORTER_ADDONS.get(idname)
    if module is None or operator_call.exists(idname):
        return
    _loaded_default, loaded_state = addon_utils.check(module)
    if not loaded_state:
        addon_utils.enable(module, default_set=True)


def _run_importer(path: str, fmt: str, scene: bpy.types.Scene) -> np.ndarray:
    """Run Blender's importer for `fmt` with explicit axes; return C (file -> scene frame)."""
    name = Path(path).name
    idname, kwargs, C = _importer(path, fmt, scene)
    view_layer = scene.view_layers[0]
    override = {"scene": scene, "view_layer": view_layer}
    try:
        with bpy.context.temp_override(**override):
            result = operator_call.operator(idname)(filepath=path, **kwargs)
    except RuntimeError as exc:
        raise CadError(f"{path}: Blender's {fmt.upper()} importer failed: {_last_line(str(exc))}") from exc
    if "FINISHED" not in result:
        raise CadError(f"{path}: Blender's {fmt.upper()} importer did not import {name} ({sorted(result)})")
    M = np.eye(4)
    M[:3, :3] = C
    return M


def gltf_import_problem() -> str | None:
    """Why the running Blender cannot import glTF files, or None when it can.

    Blender 3.4's glTF importer uses `numpy.bool`, which numpy 1.24 removed (and numpy 2 brought
    back); Blender 3.5 fixed it. Blender's own 3.4 bundles numpy 1.23, but a Blender that runs on the
    system's Python (Debian's 3.4 with numpy 1.24) fails on every glTF file.
    """
    if bpy.app.version < (3, 5, 0) and not hasattr(np, "bool"):
        return (
            f"the glTF importer of Blender {bpy.app.version_string} uses numpy.bool, which numpy "
            f"{np.__version__} no longer has: use Blender 3.5 or later, or convert the model to OBJ or PLY"
        )
    return None


def _last_line(message: str) -> str:
    """The telling line of an operator error (Blender wraps Python tracebacks into the message)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Location:")] or ["unknown error"]
    last = lines[-1].removeprefix("Error:").strip()
    return last if len(last) <= 200 else last[:197] + "..."


def _negate(axis: str) -> str:
    return axis[1:] if axis.startswith("-") else "-" + axis


def _fbx_axes_and_scale(path: str, scene: bpy.types.Scene) -> tuple[str, str, float]:
    """The axes and unit scale Blender's FBX importer would take from the file's GlobalSettings."""
    from io_scene_fbx.fbx_utils import RIGHT_HAND_AXES, units_blender_to_fbx_factor

    settings = read_fbx_global_settings(path)

    def integer(key: str, default: int) -> int:
        value = settings.get(key, default)
        return int(value) if isinstance(value, int | float) else default

    key = (
        (integer("UpAxis", 2), integer("UpAxisSign", 1)),
        (integer("FrontAxis", 1), integer("FrontAxisSign", 1)),
        (integer("CoordAxis", 0), integer("CoordAxisSign", 1)),
    )
    fbx_up, fbx_forward = {v: k for k, v in RIGHT_HAND_AXES.items()}.get(key, ("Z", "Y"))
    unit = settings.get("UnitScaleFactor", 1.0)
    unit = float(unit) if isinstance(unit, int | float) else 1.0
    if not (math.isfinite(unit) and unit > 0):
        raise CadError(f"{path}: FBX UnitScaleFactor {unit!r} is not a positive number")
    return fbx_forward, fbx_up, unit / units_blender_to_fbx_factor(scene)


def _build_model(
    path: str,
    fmt: str,
    scene: bpy.types.Scene,
    created: list[bpy.types.Object],
    import_matrix: np.ndarray,
    alignment: tuple[str, str, float, float],
) -> ImportedModel:
    meshes = [obj for obj in created if obj.type == "MESH"]
    if not meshes:
        kinds = sorted({obj.type.lower() for obj in created})
        found = f"only {', '.join(kinds)} objects" if kinds else "nothing"
        raise CadError(f"{path}: the file contains no mesh (Blender imported {found})")
    depsgraph = _depsgraph(scene)
    for obj in meshes:
        _make_plain_mesh(obj, depsgraph)
    worlds = [_snap_to_import(np.array(obj.matrix_world, dtype=np.float64), import_matrix) for obj in meshes]
    for obj in meshes:  # free them from parents (empties, armatures) before those go
        obj.parent = None
    _remove_objects([obj for obj in created if obj.type != "MESH"])

    locals_ = [_coordinates(obj.data) for obj in meshes]
    if sum(len(co) for co in locals_) == 0:
        raise CadError(f"{path}: the mesh has no vertices")
    if not all(np.all(np.isfinite(co)) for co in locals_):
        raise CadError(f"{path}: the mesh has non-finite vertex coordinates (nan or inf)")
    scene_points = np.vstack([co @ W[:3, :3].T + W[:3, 3] for co, W in zip(locals_, worlds, strict=True)])
    extent = float(np.max(np.ptp(scene_points, axis=0)))
    magnitude = max(float(np.max(np.abs(scene_points))), 1e-30)
    if not np.isfinite(extent) or extent <= _MIN_RELATIVE_EXTENT * magnitude:
        raise CadError(f"{path}: the mesh has zero size (all vertices at one point)")
    if sum(len(obj.data.polygons) for obj in meshes) == 0:
        raise CadError(f"{path}: the mesh has no faces (only points or edges)")
    try:
        to_object = compose_to_object(scene_points, import_matrix, *alignment)
    except ValueError as exc:
        raise CadError(f"{path}: cannot normalise the mesh ({exc})") from exc

    # Each mesh gets its whole transform baked in before the join, so the join itself moves
    # nothing (it would not reverse the winding of mirrored parts).
    to_scene_frame = to_object @ np.linalg.inv(import_matrix)
    for obj, co, W in zip(meshes, locals_, worlds, strict=True):
        _bake(obj, co, to_scene_frame @ W)
    for obj in scene.objects:
        obj.select_set(False)
    obj = _join(meshes, scene)
    obj.name = Path(path).stem or "DST3D Model"
    obj[PROP_MODEL] = True
    obj[PROP_PATH] = path
    obj[PROP_FORMAT] = fmt
    obj[PROP_TO_OBJECT] = [float(x) for x in to_object.reshape(-1)]
    vertices, faces = evaluated_triangles(obj, scene)
    if len(faces) == 0:
        raise CadError(f"{path}: the mesh has no faces after triangulation")
    return ImportedModel(obj, vertices, faces, to_object, fmt, path)


def _coordinates(mesh: bpy.types.Mesh) -> np.ndarray:
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


def _bake(obj: bpy.types.Object, local: np.ndarray, matrix: np.ndarray) -> None:
    """Move `matrix` into the mesh data and leave the object at the identity.

    Blender transforms the normals (and whatever else must follow); the positions are then set
    from the same product in double precision, so far-off models lose no digits. A mirroring
    matrix reverses the winding, as Blender does when it applies a negative scale.
    """
    mesh = obj.data
    mesh.transform(Matrix(matrix.tolist()))
    exact = local @ matrix[:3, :3].T + matrix[:3, 3]
    mesh.vertices.foreach_set("co", exact.astype(np.float32).reshape(-1))
    if np.linalg.det(matrix[:3, :3]) < 0:
        mesh.flip_normals()
    obj.matrix_world = Matrix.Identity(4)
    mesh.update()


def _snap_to_import(world: np.ndarray, import_matrix: np.ndarray) -> np.ndarray:
    """`world` with float32 noise of the importer's axis change removed.

    Importers store their axis change in single-precision object matrices (cos 90 deg = -4e-8);
    written as C · D, with C the exact axis change, entries of D within a few float32 steps of an
    integer are rounded, so that to_object = N · O · A · C holds to double precision for far-off
    models too.
    """
    D = np.linalg.inv(import_matrix) @ world
    block = D[:3, :3]
    rounded = np.round(block)
    near = np.abs(block - rounded) <= _SNAP * np.maximum(1.0, np.abs(rounded))
    D[:3, :3] = np.where(near, rounded, block)
    return import_matrix @ D


def _depsgraph(scene: bpy.types.Scene | None) -> bpy.types.Depsgraph:
    """The evaluated depsgraph of `scene` (the context's own when it is the context's scene)."""
    if scene is None or scene == bpy.context.scene:
        return bpy.context.evaluated_depsgraph_get()
    depsgraph = scene.view_layers[0].depsgraph
    depsgraph.update()
    return depsgraph


def evaluated_triangles(
    obj: bpy.types.Object, scene: bpy.types.Scene | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """World-space vertices (N, 3) float64 and triangles (M, 3) int64 of the object's evaluated mesh."""
    depsgraph = _depsgraph(scene)
    depsgraph.update()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
        world = np.array(evaluated.matrix_world, dtype=np.float64)
    finally:
        evaluated.to_mesh_clear()
    vertices = co.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]
    return vertices, tris.reshape(-1, 3).astype(np.int64)


def _make_plain_mesh(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> None:
    """Give `obj` its own mesh with modifiers and shape keys applied, so joining keeps what is seen."""
    if obj.modifiers or obj.data.shape_keys:
        evaluated = obj.evaluated_get(depsgraph)
        new = bpy.data.meshes.new_from_object(evaluated, preserve_all_data_layers=True, depsgraph=depsgraph)
        old = obj.data
        obj.modifiers.clear()
        obj.data = new
        if old.users == 0:
            bpy.data.meshes.remove(old)
    elif obj.data.users > 1:
        obj.data = obj.data.copy()


def _join(meshes: list[bpy.types.Object], scene: bpy.types.Scene) -> bpy.types.Object:
    """Join the mesh objects into the first (materials, UVs and attributes are merged by Blender)."""
    target = meshes[0]
    if len(meshes) == 1:
        return target
    view_layer = scene.view_layers[0]
    for obj in meshes:
        obj.select_set(True, view_layer=view_layer)
    with bpy.context.temp_override(
        scene=scene,
        view_layer=view_layer,
        active_object=target,
        object=target,
        selected_objects=meshes,
        selected_editable_objects=meshes,
    ):
        bpy.ops.object.join()
    target.select_set(False, view_layer=view_layer)
    return target


def _remove_objects(objects: list[bpy.types.Object]) -> None:
    """Delete objects, then their data, materials and images when nothing else uses them."""
    datas, materials = [], []
    for obj in objects:
        if obj.data is not None:
            datas.append(obj.data)
        materials += [slot.material for slot in obj.material_slots if slot.material is not None]
        bpy.data.objects.remove(obj, do_unlink=True)
    for data in datas:
        with contextlib.suppress(ReferenceError):
            if data.users == 0:
                _remove_id(data)
    images = []
    for mat in {m.as_pointer(): m for m in materials}.values():
        with contextlib.suppress(ReferenceError):
            if mat.users == 0:
                if mat.node_tree is not None:
                    images += [n.image for n in mat.node_tree.nodes if getattr(n, "image", None) is not None]
                bpy.data.materials.remove(mat)
    for image in {i.as_pointer(): i for i in images}.values():
        with contextlib.suppress(ReferenceError):
            if image.users == 0:
                bpy.data.images.remove(image)


_DATA_COLLECTIONS = (
    (bpy.types.Mesh, "meshes"),
    (bpy.types.Camera, "cameras"),
    (bpy.types.Light, "lights"),
    (bpy.types.Armature, "armatures"),
    (bpy.types.Curve, "curves"),
)


def _remove_id(data: bpy.types.ID) -> None:
    for cls, attr in _DATA_COLLECTIONS:
        if isinstance(data, cls):
            getattr(bpy.data, attr).remove(data)
            return
