"""core.pascal3d: PASCAL3D+'s units and files, written and read back (no render needed).

The pose converts by degrees only (PASCAL3D+'s convention is dst3d's); pixels move by 0.5 (MATLAB's
centres on whole numbers from 1); `project` (project_3d.m) equals camera.project; a .mat written
here reads back the same, loads with scipy as NeMo-style code indexes PASCAL3D+'s own files; files
shaped like PASCAL3D+'s own (empty viewpoints, coarse angles only, several objects) read too; a
broken file is one DatasetError line naming it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from dst3d_addon.core import pascal3d as p3
from dst3d_addon.core.camera import Intrinsics, Pose, extrinsics, project
from dst3d_addon.core.errors import DatasetError

RNG = np.random.default_rng(3)


def random_poses(n: int) -> list[Pose]:
    return [
        Pose(
            RNG.uniform(-4 * math.pi, 4 * math.pi),
            RNG.uniform(-math.pi / 2, math.pi / 2),
            RNG.uniform(-3 * math.pi, 3 * math.pi),
            RNG.uniform(0.5, 5.0),
        )
        for _ in range(n)
    ]


def test_viewpoint_units_and_round_trip():
    intr = Intrinsics.from_lens(160, 96)
    vp = p3.viewpoint_from_pose(Pose(-math.pi / 2, math.pi / 6, 3 * math.pi / 2, 2.0), intr)
    assert vp.azimuth == pytest.approx(270.0) and vp.elevation == pytest.approx(30.0)
    assert vp.theta == pytest.approx(-90.0) and vp.distance == 2.0
    assert (vp.focal, vp.viewport) == (1.0, intr.viewport)
    assert (vp.px, vp.py) == (80.5, 48.5)  # MATLAB's centre of a 160 x 96 image
    for pose in random_poses(50):
        vp = p3.viewpoint_from_pose(pose, intr)
        assert 0.0 <= vp.azimuth < 360.0 and -180.0 < vp.theta <= 180.0
        back = vp.pose
        R0, C0 = extrinsics(pose)
        R1, C1 = extrinsics(back)
        np.testing.assert_allclose(R1, R0, atol=1e-12)
        np.testing.assert_allclose(C1, C0, atol=1e-12)
        assert vp.intrinsics(160, 96) == intr


def test_project_is_pascal3d_project_3d_in_matlab_pixels():
    pts = RNG.uniform(-0.5, 0.5, (30, 3))
    for pose in random_poses(40):
        intr = Intrinsics(128, 80, RNG.uniform(50, 300), (RNG.uniform(40, 80), RNG.uniform(30, 50)))
        uv, _ = project(pts, *extrinsics(pose), intr)
        np.testing.assert_allclose(p3.project(pts, p3.viewpoint_from_pose(pose, intr)) - 0.5, uv, atol=1e-9)


def test_bbox_is_one_based_first_and_last_pixel():
    assert p3.bbox_to_pascal([7.0, 24.0, 53.0, 51.0]) == [8.0, 25.0, 53.0, 51.0]
    assert p3.bbox_from_pascal([8.0, 25.0, 53.0, 51.0]) == [7.0, 24.0, 53.0, 51.0]


def sample_object(**overrides) -> p3.Pascal3dObject:
    args = dict(
        class_name="aeroplane",
        bbox=(3.0, 4.0, 50.0, 60.0),
        viewpoint=p3.viewpoint_from_pose(Pose(0.3, 0.2, -0.1, 2.5), Intrinsics.from_lens(96, 72)),
        cad_index=2,
        truncated=True,
    )
    args.update(overrides)
    return p3.Pascal3dObject(**args)


def write(tmp_path, data: bytes, name: str = "x", subset: str = "aeroplane_dst3d"):
    path = tmp_path / p3.ANNOTATIONS / subset / f"{name}.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_annotation_round_trip_and_scipy_layout(tmp_path):
    obj = sample_object()
    kwargs = dict(filename="x.png", subset_name="aeroplane_dst3d", width=96, height=72, objects=[obj])
    data = p3.annotation_bytes(**kwargs, dst3d={"id": "n02690373/a1/000003", "k": None, "model_id": "a1"})
    assert data == p3.annotation_bytes(
        **kwargs, dst3d={"id": "n02690373/a1/000003", "k": None, "model_id": "a1"}
    )
    assert data.startswith(b"MATLAB 5.0 MAT-file")  # MATLAB and scipy read the same header
    path = write(tmp_path, data)
    image = p3.read_annotation(path)
    assert image.objects == (obj,)
    assert (image.width, image.height, image.name, image.subset) == (96, 72, "x", "aeroplane_dst3d")
    assert image.image == tmp_path / "Images" / "aeroplane_dst3d" / "x.png"
    assert image.dst3d == {"id": "n02690373/a1/000003", "model_id": "a1"}
    # As PASCAL3D+ tooling (NeMo's get_anno) indexes a record loaded with scipy's defaults.
    record = loadmat(str(path))["record"]
    objects = record["objects"][0, 0]
    viewpoint = objects[0, 0]["viewpoint"]
    assert str(objects[0, 0]["class"][0]) == "aeroplane"
    assert objects[0, 0]["cad_index"].item() == 2
    assert objects[0, 0]["bbox"][0].tolist() == [4.0, 5.0, 50.0, 60.0]
    assert record["imgsize"][0, 0][0].tolist() == [96.0, 72.0, 3.0]
    for key in ("azimuth", "elevation", "theta", "distance", "px", "py", "viewport", "focal"):
        assert viewpoint[0, 0][key][0, 0] == pytest.approx(getattr(obj.viewpoint, key))
    assert viewpoint[0, 0]["azimuth_coarse"][0, 0] == pytest.approx(obj.viewpoint.azimuth)


def test_reads_files_shaped_like_pascal3d_own(tmp_path):
    # Two objects: one with only coarse angles, one PASCAL3D+ could not annotate (empty viewpoint).
    objects = np.empty(
        (1, 2), dtype=[(n, object) for n in ("class", "bbox", "viewpoint", "cad_index", "truncated")]
    )
    vp = {"azimuth_coarse": 45.0, "azimuth": np.zeros((0, 0)), "elevation_coarse": 10.0, "elevation": np.zeros((0, 0)),
          "distance": 5.1, "focal": 1.0, "px": 250.0, "py": 180.0, "theta": 3.0, "viewport": 3000.0}  # fmt: skip
    objects[0, 0] = ("aeroplane", np.array([[10.0, 20.0, 300.0, 200.0]]), vp, 4.0, 0.0)
    objects[0, 1] = ("aeroplane", np.array([[1.0, 1.0, 30.0, 20.0]]), np.zeros((0, 0)), 1.0, 1.0)
    record = {"filename": "n02690373_16.JPEG", "imgsize": np.array([[500.0, 375.0, 3.0]]), "objects": objects}
    path = tmp_path / p3.ANNOTATIONS / "aeroplane_imagenet" / "n02690373_16.mat"
    path.parent.mkdir(parents=True)
    savemat(str(path), {"record": record})
    image = p3.read_annotation(path)
    first, second = image.objects
    assert (first.viewpoint.azimuth, first.viewpoint.elevation, first.viewpoint.theta) == (45.0, 10.0, 3.0)
    assert first.viewpoint.intrinsics(500, 375) == Intrinsics(500, 375, 3000.0, (249.5, 179.5))
    assert first.bbox == (9.0, 19.0, 300.0, 200.0) and first.cad_index == 4
    assert second.viewpoint is None and second.truncated
    listing = tmp_path / p3.image_set_name("aeroplane_imagenet", "val")
    listing.parent.mkdir()
    listing.write_text("n02690373_16 1\n\n")
    assert [i.name for i in p3.read_folder(tmp_path, split="val")] == ["n02690373_16"]
    assert [i.name for i in p3.read_folder(tmp_path)] == ["n02690373_16"]
    with pytest.raises(DatasetError, match=r"Image_sets: no list of the 'train' split"):
        p3.read_folder(tmp_path, split="train")


BROKEN = [
    pytest.param(b"", "not a readable .mat file", id="empty"),
    pytest.param(b"garbage, not MATLAB at all" * 10, "not a readable .mat file", id="garbage"),
    pytest.param(None, "not a readable .mat file", id="truncated"),
]


@pytest.mark.parametrize(("data", "message"), BROKEN)
def test_a_broken_mat_is_one_line_naming_the_file(tmp_path, data, message):
    if data is None:
        full = p3.annotation_bytes(
            filename="x.png", subset_name="s", width=8, height=8, objects=[sample_object()]
        )
        data = full[: len(full) // 2]
    path = write(tmp_path, data)
    with pytest.raises(DatasetError) as err:
        p3.read_folder(tmp_path)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)


SIZE = np.array([[8.0, 8.0, 3.0]])
NO_VIEWPOINT = np.zeros((0, 0))


def record(**fields) -> dict:
    """A `record` variable with a filename and a size, and these fields."""
    return {"record": {"filename": "x.png", "imgsize": SIZE, **fields}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param({"other": 1.0}, "record is missing", id="no-record"),
        pytest.param(record(), "record.objects is missing", id="no-objects"),
        pytest.param(record(filename=3.0, objects={}), "record.filename must be text", id="filename-number"),
        pytest.param(
            record(objects={"class": "a", "bbox": np.array([[1.0, 2.0, 3.0]]), "viewpoint": NO_VIEWPOINT}),
            "record.objects(1).bbox must hold 4 numbers",
            id="bbox-3",
        ),
        pytest.param(
            record(
                objects={
                    "class": "a",
                    "bbox": np.array([[1.0, 2.0, 3.0, 4.0]]),
                    "viewpoint": {"distance": 2.0, "azimuth": 1.0, "elevation": 1.0},
                }
            ),
            "record.objects(1).viewpoint.viewport is missing or empty",
            id="no-viewport",
        ),
    ],
)
def test_a_mat_without_pascal3d_fields_names_the_field(tmp_path, content, message):
    path = tmp_path / p3.ANNOTATIONS / "a_s" / "x.mat"
    path.parent.mkdir(parents=True)
    savemat(str(path), content)
    with pytest.raises(DatasetError) as err:
        p3.read_annotation(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_cad_files_round_trip(tmp_path):
    V = RNG.uniform(-0.5, 0.5, (12, 3))
    F = RNG.integers(0, 12, (20, 3))
    (tmp_path / "CAD" / "car").mkdir(parents=True)
    (tmp_path / p3.cad_off_name("car", 1)).write_bytes(p3.off_bytes(V, F))
    V1, F1 = p3.read_off(tmp_path / "CAD" / "car" / "01.off")
    np.testing.assert_array_equal(V1, V)  # repr keeps every bit
    np.testing.assert_array_equal(F1, F)
    (tmp_path / "CAD" / "car.mat").write_bytes(p3.cad_mat_bytes("car", [(V, F), (V * 2, F)]))
    V2, F2 = p3.read_cad(tmp_path, "car", 2)
    np.testing.assert_array_equal(V2, V * 2)
    np.testing.assert_array_equal(F2, F)
    with pytest.raises(DatasetError, match=r"car\.mat: has 2 model\(s\), no cad_index 3"):
        p3.read_cad(tmp_path, "car", 3)
    (tmp_path / "bad.off").write_text("OFF\n3 1 0\n0 0 0\n")
    with pytest.raises(DatasetError, match=r"bad\.off: not an OFF mesh"):
        p3.read_off(tmp_path / "bad.off")
