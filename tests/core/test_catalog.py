"""catalog.py: reading 3D-DST's model CSV, its offsets in our convention, and finding the models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dst3d_addon.core.alignment import offset_rotation
from dst3d_addon.core.camera import camera_centre
from dst3d_addon.core.catalog import (
    CatalogEntry,
    ModelResolver,
    filter_synsets,
    from_dst_angles,
    jobs_from_catalog,
    read_catalog,
    resolve_model,
)
from dst3d_addon.core.errors import Dst3dError

SN_PLANE = "1a04e3eab45ca15dd86060f189eb133"
OBJV = "8476c4170df24cf5bbe6967222d1a42d"

CSV = f"""synset,model,distance,azimuth,elevation,strength,sampling
n02690373,{SN_PLANE},2.0,90,0,1,1
n02690373,{OBJV},1.5,-30.5,10,2,3

n04004767,omniobject3d_toy_car_001,3,0,0,1,2
"""


def write(tmp_path, text, name="models.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_catalog(tmp_path):
    entries = read_catalog(write(tmp_path, CSV))
    assert [e.model_id for e in entries] == [SN_PLANE, OBJV, "omniobject3d_toy_car_001"]
    first, second, third = entries
    assert first == CatalogEntry("n02690373", SN_PLANE, 2.0, math.pi / 2, 0.0, 1.0, "1")
    assert math.isclose(second.azimuth_offset, math.radians(-30.5))
    assert math.isclose(second.elevation_offset, math.radians(10))
    assert (second.distance, second.strength, second.sampling) == (1.5, 2.0, "3")
    assert (third.synset, third.sampling) == ("n04004767", "2")


def test_read_catalog_header_variants(tmp_path):
    text = "\ufeffSynset, model_id ,Distance,azimuth,elevation,strength,sampling,notes\nn1,m1,1,0,0,1,1.0,hello\n"
    (entry,) = read_catalog(write(tmp_path, text))
    assert (entry.synset, entry.model_id, entry.sampling) == ("n1", "m1", "1")


def test_missing_columns(tmp_path):
    path = write(tmp_path, "synset,model,distance,azimuth\nn1,m1,1,0\n")
    with pytest.raises(Dst3dError) as info:
        read_catalog(path)
    message = str(info.value)
    assert "models.csv" in message and "line 1" in message
    assert "elevation" in message and "strength" in message and "sampling" in message


@pytest.mark.parametrize(
    ("row", "column", "word"),
    [
        ("n1,m1,far,0,0,1,1", "distance", "'far'"),
        ("n1,m1,1,north,0,1,1", "azimuth", "'north'"),
        ("n1,m1,1,0,nan,1,1", "elevation", "'nan'"),
        ("n1,m1,1,0,0,,1", "strength", "missing"),
        ("n1,m1,1,0,0,1", "sampling", "missing"),
        ("n1,m1,-2,0,0,1,1", "distance", "positive"),
        ("n1,m1,1,0,0,1,7", "sampling", "1-5"),
        ("n1,m1,1,0,0,1,1.5", "sampling", "1-5"),
        (",m1,1,0,0,1,1", "synset", "missing"),
    ],
)
def test_bad_values_name_file_line_and_column(tmp_path, row, column, word):
    path = write(
        tmp_path, f"synset,model,distance,azimuth,elevation,strength,sampling\nn0,m0,1,0,0,1,1\n{row}\n"
    )
    with pytest.raises(Dst3dError) as info:
        read_catalog(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and f"'{column}'" in message and word in message


def test_missing_or_empty_csv(tmp_path):
    with pytest.raises(Dst3dError, match="not found"):
        read_catalog(tmp_path / "none.csv")
    with pytest.raises(Dst3dError, match="empty"):
        read_catalog(write(tmp_path, ""))


def test_filter_synsets(tmp_path):
    entries = read_catalog(write(tmp_path, CSV))
    assert filter_synsets(entries, None) == entries
    assert filter_synsets(entries, []) == entries
    assert [e.model_id for e in filter_synsets(entries, ["n04004767"])] == ["omniobject3d_toy_car_001"]
    assert len(filter_synsets(entries, ["n04004767", "n02690373"])) == 3
    with pytest.raises(Dst3dError, match="n99999999"):
        filter_synsets(entries, ["n02690373", "n99999999"])


# ------------------------------------------------------------- 3D-DST's angles in our convention


def dst_camera(theta: float, phi: float, distance: float = 1.0) -> np.ndarray:
    """3D-DST's camera position: Blender spherical, theta from +X, phi the polar angle from +Z."""
    return distance * np.array(
        [math.sin(phi) * math.cos(theta), math.sin(phi) * math.sin(theta), math.cos(phi)]
    )


def test_from_dst_angles_matches_their_camera_position():
    rng = np.random.default_rng(11)
    for theta, phi in rng.uniform([-math.pi, 0.01], [math.pi, math.pi - 0.01], size=(50, 2)):
        a, e = from_dst_angles(theta, phi)
        assert np.allclose(camera_centre(a, e, 2.5), dst_camera(theta, phi, 2.5))
    # Their default view (theta = -90 deg, phi = 90 deg) is our front view a = 0, e = 0.
    assert np.allclose(from_dst_angles(-math.pi / 2, math.pi / 2), (0.0, 0.0))


def render_like_3d_dst(theta_s: float, phi_s: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Where 3D-DST's blender_render.py puts the camera for a sampled (theta, phi) and a CSV offset."""
    theta = theta_s + azimuth_deg / 180.0 * math.pi
    phi = (phi_s - elevation_deg / 180.0 * math.pi) % (2 * math.pi)
    if phi > math.pi:
        theta, phi = theta + math.pi, 2 * math.pi - phi
    return dst_camera(theta, phi)


@pytest.mark.parametrize("azimuth_deg", [0.0, 90.0, -30.5, 200.0])
def test_azimuth_offset_reproduces_3d_dst_for_every_view(tmp_path, azimuth_deg):
    path = write(
        tmp_path, f"synset,model,distance,azimuth,elevation,strength,sampling\nn1,m1,2,{azimuth_deg},0,1,1\n"
    )
    (entry,) = read_catalog(path)
    Ro = offset_rotation(entry.azimuth_offset, entry.elevation_offset)
    rng = np.random.default_rng(12)
    for theta_s, phi_s in rng.uniform([-math.pi, 0.01], [math.pi, math.pi - 0.01], size=(30, 2)):
        # 3D-DST's camera in the imported scene, seen from our aligned model, is at the sampled pose.
        a, e = from_dst_angles(theta_s, phi_s)
        assert np.allclose(
            Ro @ render_like_3d_dst(theta_s, phi_s, azimuth_deg, 0.0), camera_centre(a, e, 1.0)
        )


@pytest.mark.parametrize(("azimuth_deg", "elevation_deg"), [(0.0, 20.0), (45.0, -15.0), (120.0, 35.0)])
def test_elevation_offset_reproduces_3d_dst_on_the_front_meridian(tmp_path, azimuth_deg, elevation_deg):
    row = f"n1,m1,2,{azimuth_deg},{elevation_deg},1,1"
    (entry,) = read_catalog(
        write(tmp_path, f"synset,model,distance,azimuth,elevation,strength,sampling\n{row}\n")
    )
    Ro = offset_rotation(entry.azimuth_offset, entry.elevation_offset)
    for phi_s in np.linspace(0.3, 2.8, 9):
        theta_s = -math.pi / 2  # our a = 0
        a, e = from_dst_angles(theta_s, phi_s)
        assert np.allclose(
            Ro @ render_like_3d_dst(theta_s, phi_s, azimuth_deg, elevation_deg), camera_centre(a, e, 1.0)
        )
    # Off the front meridian 3D-DST's elevation offset is no rotation: the two differ there.
    theta_s, phi_s = 0.0, math.pi / 2
    a, e = from_dst_angles(theta_s, phi_s)
    assert not np.allclose(
        Ro @ render_like_3d_dst(theta_s, phi_s, azimuth_deg, elevation_deg), camera_centre(a, e, 1.0)
    )


# ------------------------------------------------------------------------------- model files


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("v 0 0 0\n")
    return path


def test_resolve_shapenet_layouts(tmp_path):
    v2 = touch(tmp_path / "sn2" / "02691156" / SN_PLANE / "models" / "model_normalized.obj")
    touch(tmp_path / "sn2" / "02958343" / "other" / "models" / "model_normalized.obj")
    assert resolve_model(SN_PLANE, [tmp_path / "sn2"]) == v2
    v1 = touch(tmp_path / "sn1" / "02691156" / SN_PLANE / "model.obj")
    assert resolve_model(SN_PLANE, [tmp_path / "sn1"]) == v1
    flat = touch(tmp_path / "cat" / SN_PLANE / "model_normalized.obj")
    assert resolve_model(SN_PLANE, [tmp_path / "cat"]) == flat


def test_resolve_objaverse_direct_and_nested(tmp_path):
    direct = touch(tmp_path / "objv" / f"{OBJV}.glb")
    assert resolve_model(OBJV, [tmp_path / "objv"]) == direct
    nested = touch(tmp_path / "objv2" / "glbs" / "000-023" / f"{OBJV}.glb")
    resolver = ModelResolver([tmp_path / "objv2"])
    assert resolver.resolve(OBJV) == nested
    with pytest.raises(Dst3dError, match="not found"):
        resolver.resolve("0" * 32)


def test_resolve_omniobject3d(tmp_path):
    rel = "toy_car/toy_car_001/Scan/Scan.obj"
    in_raw = touch(tmp_path / "omni" / "raw" / "raw_scans" / rel)
    assert resolve_model("omniobject3d_toy_car_001", [tmp_path / "omni"]) == in_raw
    direct = touch(tmp_path / "scans" / rel)
    assert resolve_model("omniobject3d_toy_car_001", [tmp_path / "scans"]) == direct
    with pytest.raises(Dst3dError) as info:
        resolve_model("omniobject3d_toy_car_002", [tmp_path / "omni"])
    assert "toy_car/toy_car_002/Scan/Scan.obj" in str(info.value)


def test_resolve_errors(tmp_path):
    (tmp_path / "root").mkdir()
    with pytest.raises(Dst3dError, match="Toys4k"):
        resolve_model("toys4k_airplane_001", [tmp_path / "root"])
    with pytest.raises(Dst3dError, match="not a folder"):
        resolve_model(SN_PLANE, [tmp_path / "missing"])
    with pytest.raises(Dst3dError, match="no model root"):
        resolve_model(SN_PLANE, [])
    with pytest.raises(Dst3dError) as info:
        resolve_model(SN_PLANE, [tmp_path / "root"])
    assert SN_PLANE in str(info.value) and str(tmp_path / "root") in str(info.value)
    with pytest.raises(Dst3dError, match="not a ShapeNet"):
        resolve_model("../etc", [tmp_path / "root"])


def test_jobs_from_catalog(tmp_path):
    touch(tmp_path / "sn" / "02691156" / SN_PLANE / "models" / "model_normalized.obj")
    touch(tmp_path / "objv" / "glbs" / "000-001" / f"{OBJV}.glb")
    touch(tmp_path / "omni" / "raw" / "raw_scans" / "toy_car" / "toy_car_001" / "Scan" / "Scan.obj")
    csv_path = write(tmp_path, CSV)
    jobs = jobs_from_catalog(csv_path, [tmp_path / "sn", tmp_path / "objv", tmp_path / "omni"])
    assert [j.model_id for j in jobs] == [SN_PLANE, OBJV, "omniobject3d_toy_car_001"]
    plane = jobs[0]
    assert plane.class_name == "airliner" and plane.synset == "n02690373"  # the name, not the id
    assert plane.cad_path.endswith("models/model_normalized.obj")
    assert math.isclose(plane.azimuth_offset, math.pi / 2) and plane.elevation_offset == 0.0
    assert (plane.distance_scale, plane.strategy) == (2.0, "1")
    assert (plane.forward, plane.up) == ("-Y", "Z")
    only_cars = jobs_from_catalog(csv_path, tmp_path / "omni", ["n04004767"], class_name="car")
    assert [(j.class_name, j.synset, j.strategy) for j in only_cars] == [("car", "n04004767", "2")]
    with pytest.raises(Dst3dError, match=OBJV):
        jobs_from_catalog(csv_path, [tmp_path / "sn"])
