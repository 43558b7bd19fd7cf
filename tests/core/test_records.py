"""core.records: the annotation record of dataset-format.md, its validation, and the researchers' loader."""

import copy
import json
import math

import numpy as np
import pytest

from dst3d_addon.core import dataset as ds
from dst3d_addon.core import records as rec
from dst3d_addon.core.camera import Intrinsics, Pose, extrinsics, opencv_extrinsics, project
from dst3d_addon.core.errors import DatasetError

ID = "n02690373/airliner_01/000017"
FILES = {
    "control": f"control/{ID}.png",
    "mask": f"masks/{ID}.png",
    "depth": f"depth/{ID}.npz",
    "render": f"renders/{ID}.png",
}


def make_record(**overrides) -> dict:
    to_object = np.diag([0.5, 0.5, 0.5, 1.0])
    to_object[:3, :3] = [[0.5, 0, 0], [0, 0, -0.5], [0, 0.5, 0]]  # glTF Y-up to Z-up, scaled
    to_object[:3, 3] = [0.1, -0.2, 0.05]
    args = dict(
        annotation_id=ID,
        class_name="airliner",
        synset="n02690373",
        cad_path="models/airliner_01.glb",
        model_id="airliner_01",
        to_object=to_object,
        pose=Pose(0.4, 0.3, -0.2, 2.5),
        intrinsics=Intrinsics.from_lens(160, 120),
        bbox=[30.0, 20.0, 130.0, 100.0],
        truncated=False,
        seed=123456,
        files=FILES,
    )
    args.update(overrides)
    return rec.annotation_record(**args)


def test_record_has_exactly_the_spec_layout():
    r = make_record()
    assert list(r) == ["id", "class", "cad", "pose", "camera", "bbox", "truncated", "seed", "files"]
    assert r["class"] == {"name": "airliner", "synset": "n02690373"}
    assert list(r["cad"]) == ["path", "model_id", "to_object"]
    assert np.array(r["cad"]["to_object"]).shape == (4, 4)
    assert r["pose"] == {"azimuth": 0.4, "elevation": 0.3, "theta": -0.2, "distance": 2.5}
    cam = r["camera"]
    assert set(cam) == {"focal", "viewport", "principal", "width", "height", "K", "R", "C", "R_cv", "t_cv"}
    assert cam["focal"] == 1.0 and cam["viewport"] == pytest.approx(35 / 32 * 160)
    assert cam["principal"] == [80.0, 60.0] and (cam["width"], cam["height"]) == (160, 120)
    R, C = extrinsics(Pose(0.4, 0.3, -0.2, 2.5))
    np.testing.assert_allclose(cam["R"], R)
    np.testing.assert_allclose(cam["C"], C)
    R_cv, t_cv = opencv_extrinsics(R, C)
    np.testing.assert_allclose(cam["R_cv"], R_cv)
    np.testing.assert_allclose(cam["t_cv"], t_cv, atol=1e-12)
    assert cam["t_cv"] == [0.0, 0.0, 2.5]  # exact: the camera looks at the object origin
    assert r["files"] == FILES
    # survives JSON exactly
    back = json.loads(json.dumps(r))
    assert back == r
    rec.validate_annotation(back)


def test_record_camera_reproduces_the_projection():
    # Anyone can project with the record's K and OpenCV extrinsics and land where pose-convention.md says.
    r = make_record()
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3))
    K = np.array(r["camera"]["K"])
    R_cv, t_cv = np.array(r["camera"]["R_cv"]), np.array(r["camera"]["t_cv"])
    x = (pts @ R_cv.T + t_cv) @ K.T
    uv_cv = x[:, :2] / x[:, 2:]
    intr = Intrinsics.from_lens(160, 120)
    uv, _ = project(pts, np.array(r["camera"]["R"]), np.array(r["camera"]["C"]), intr)
    np.testing.assert_allclose(uv_cv + 0.5, uv, atol=1e-9)


def _floats(value) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, list):
        return [x for v in value for x in _floats(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _floats(v)]
    return []


def test_record_numbers_have_at_most_12_significant_digits():
    r = make_record(pose=Pose(4.402151829123472, 0.537618340134383, 0.1, 1.4195703731364286))
    numbers = _floats(r)
    assert len(numbers) > 30
    for x in numbers:
        assert float(f"{x:.12g}") == x
    assert r["pose"]["azimuth"] == 4.40215182912


def test_last_bit_differences_give_the_same_record_bytes():
    # Two numpy builds may differ in the last bits of a sine or a BLAS product: the record is the same.
    pose = Pose(0.7123456789, 0.3123456789, -0.2123456789, 2.5123456789)
    values = (pose.azimuth, pose.elevation, pose.theta, pose.distance)
    nudged = Pose(*(float(np.nextafter(v, np.inf)) for v in values))
    to_object = np.diag([0.0265957457601, 0.0265957457601, 0.0265957457601, 1.0])
    to_object[:3, 3] = [3.1, 0.0, -0.066]
    a = make_record(pose=pose, to_object=to_object)
    b = make_record(pose=nudged, to_object=np.where(to_object != 0, np.nextafter(to_object, np.inf), 0.0))
    assert json.dumps(a) == json.dumps(b)


def test_records_written_with_every_digit_still_load(tmp_path):
    # Records written before numbers were rounded hold full float64 reprs: they validate and load.
    pose = Pose(4.402151829123472, 0.537618340134383, 0.0, 1.4195703731364286)
    record = make_record(pose=pose)
    R, C = extrinsics(pose)
    record["pose"] = pose.as_dict()
    record["camera"]["R"], record["camera"]["C"] = R.tolist(), C.tolist()
    assert record["pose"]["azimuth"] == 4.402151829123472
    rec.validate_annotation(record)
    (tmp_path / "annotations.jsonl").write_text(json.dumps(record) + "\n")
    loaded = rec.load_annotations(tmp_path)
    assert loaded[0]["pose"]["azimuth"] == 4.402151829123472
    np.testing.assert_array_equal(loaded[0]["camera"]["R"], R)


def test_null_synset_and_empty_mask_are_allowed():
    r = make_record(
        annotation_id="airliner/airliner_01/000000",
        synset=None,
        bbox=None,
        files={k: v.replace(ID, "airliner/airliner_01/000000") for k, v in FILES.items() if k != "render"},
    )
    assert r["class"]["synset"] is None and r["bbox"] is None


@pytest.mark.parametrize("units", [1e-4, 20_000.0, 3e6])
def test_any_finite_scale_is_a_valid_to_object(units):
    """A 20 m object modelled in mm is normalised by 1/20000: tiny, not singular."""
    to_object = np.diag([1 / units, 1 / units, 1 / units, 1.0])
    assert make_record(to_object=to_object)["cad"]["to_object"][0][0] == pytest.approx(1 / units)


def mutate(path: str, value):
    """A function that sets (or, with value=DELETE, removes) a dotted field of a record copy."""

    def apply(record):
        r = copy.deepcopy(record)
        *parents, last = path.split(".")
        node = r
        for p in parents:
            node = node[p]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value(node[last]) if callable(value) else value
        return r

    return apply


DELETE = object()
NOT_ROT = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]

BAD = [
    # (field change, text the message must contain)
    *[
        (mutate(k, DELETE), f"{k} is missing")
        for k in ("class", "cad", "pose", "camera", "bbox", "truncated", "seed", "files")
    ],
    (mutate("id", "n02690373/airliner_01/17"), "id is malformed"),
    (mutate("id", "n02690373/../000017"), "id is malformed"),
    (mutate("id", 17), "id must be a non-empty string"),
    (mutate("class.synset", "n00000000"), "class is 'n00000000' but the id's class part is 'n02690373'"),
    (mutate("class.name", ""), "class.name must be a non-empty string"),
    (mutate("cad.model_id", "other"), "cad.model_id is 'other'"),
    (mutate("cad.path", DELETE), "cad.path is missing"),
    (mutate("cad.to_object", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), "cad.to_object must be a 4x4 list, got 3x3"),
    (mutate("cad.to_object", [[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "got ragged"),
    (mutate("cad.to_object", lambda m: [*m[:3], [0, 0, 1, 1]]), "must be affine"),
    (mutate("cad.to_object", lambda m: [[float("nan"), *m[0][1:]], *m[1:]]), "non-finite"),
    (mutate("cad.to_object", [[0.0] * 4, [0.0] * 4, [0.0] * 4, [0, 0, 0, 1]]), "is singular"),
    (mutate("pose.azimuth", float("nan")), "pose.azimuth must be finite"),
    (mutate("pose.theta", "0.1"), "pose.theta must be a number"),
    (mutate("pose.theta", True), "pose.theta must be a number"),
    (mutate("pose.elevation", 2.0), "pose.elevation must be in [-pi/2, pi/2]"),
    (mutate("pose.distance", -1.0), "pose.distance must be positive"),
    (mutate("pose.distance", 3.0), "camera.C does not match the pose"),
    (mutate("pose.azimuth", 0.5), "camera.R does not match the pose"),
    (mutate("camera.focal", 35.0), "camera.focal must be 1.0"),
    (mutate("camera.viewport", 0.0), "camera.viewport must be positive"),
    (mutate("camera.viewport", 100.0), "camera.K does not match viewport and principal"),
    (mutate("camera.principal", [80.0]), "camera.principal must be a 2 list"),
    (mutate("camera.principal", [81.0, 60.0]), "camera.K does not match"),
    (mutate("camera.width", 160.0), "camera.width must be an integer"),
    (mutate("camera.height", 0), "must be positive, got 160x0"),
    (
        mutate("camera.K", lambda K: [[K[0][0], 0, K[0][2]], [0, K[1][1], K[1][2] + 0.5], [0, 0, 1]]),
        "camera.K does not",
    ),
    (mutate("camera.R", NOT_ROT), "camera.R is not a rotation"),
    (mutate("camera.R", lambda R: [[-x for x in row] for row in R]), "camera.R is not a rotation (det -1"),
    (mutate("camera.C", [0.0, 0.0, float("inf")]), "camera.C holds a non-finite number"),
    (mutate("camera.C", ["0", 0.0, 1.0]), "camera.C must hold only numbers"),
    (mutate("camera.R_cv", DELETE), "camera.R_cv is missing (camera.t_cv is there"),
    (mutate("camera.t_cv", DELETE), "camera.t_cv is missing (camera.R_cv is there"),
    (
        mutate("camera.R_cv", lambda R: [R[0], [-x for x in R[1]], [-x for x in R[2]]]),
        "camera.R_cv does not match R",
    ),
    (mutate("camera.R_cv", [[1.0, 0.0], [0.0, 1.0]]), "camera.R_cv must be a 3x3 list, got 2x2"),
    (mutate("camera.t_cv", lambda t: [t[0], t[1], -t[2]]), "camera.t_cv does not match R and C"),
    (mutate("camera.t_cv", [0.0, float("nan"), 1.0]), "camera.t_cv holds a non-finite number"),
    (mutate("bbox", [1.0, 2.0, 3.0]), "bbox must be a 4 list"),
    (mutate("bbox", [30.0, 20.0, 170.0, 100.0]), "bbox must satisfy"),
    (mutate("bbox", [30.0, 20.0, 10.0, 100.0]), "bbox must satisfy"),
    (mutate("bbox", [30.0, float("nan"), 130.0, 100.0]), "bbox holds a non-finite number"),
    (mutate("truncated", "no"), "truncated must be true or false"),
    (mutate("truncated", 0), "truncated must be true or false"),
    (mutate("seed", -1), "seed must be in [0, 2**53)"),
    (mutate("seed", 2**53), "seed must be in [0, 2**53)"),
    (mutate("seed", 12.0), "seed must be an integer"),
    (mutate("files.mask", DELETE), "files.mask is missing"),
    (mutate("files.depth", f"depth/{ID}.png"), "files.depth must be depth/"),
    (mutate("files.control", FILES["mask"]), "files.control must be control/"),
    (mutate("files.render", None), "files.render must be a non-empty string"),
    (mutate("files", {**FILES, "normals": "../../etc/passwd"}), "files.normals is unsafe"),
    (mutate("files", {**FILES, "normals": 3}), "files.normals must be a path string"),
]


@pytest.mark.parametrize(("change", "expected"), [b for b in BAD if b[1] is not None])
def test_validation_names_the_id_and_the_bad_field(change, expected):
    good = make_record()
    bad = change(good)
    with pytest.raises(DatasetError) as err:
        rec.validate_annotation(bad)
    msg = str(err.value)
    assert expected in msg
    assert "\n" not in msg
    if isinstance(bad.get("id"), str):
        assert msg.startswith(f"annotation {bad['id']}: ")
    rec.validate_annotation(good)  # the mutation worked on a copy


def test_validation_of_non_records():
    with pytest.raises(DatasetError, match=r"annotation record: record must be an object"):
        rec.validate_annotation([1, 2])
    with pytest.raises(DatasetError, match=r"annotation record: id is missing"):
        rec.validate_annotation({})


def test_builder_refuses_inconsistent_input():
    with pytest.raises(DatasetError, match=r"cad\.model_id"):
        make_record(model_id="airliner_02")
    with pytest.raises(DatasetError, match=r"files\.mask is missing"):
        make_record(files={"control": FILES["control"], "depth": FILES["depth"]})
    with pytest.raises(DatasetError, match=r"pose\.distance"):
        make_record(pose=Pose(0.0, 0.0, 0.0, math.inf))


def test_load_annotations(tmp_path):
    d = ds.Dataset.open(tmp_path, "render", {"seed": 0}, tool_version="0")
    first = make_record()
    second_id = "n02690373/airliner_01/000018"
    second = make_record(
        annotation_id=second_id, files={k: v.replace(ID, second_id) for k, v in FILES.items()}, bbox=None
    )
    redo = make_record(seed=99)
    d.append("annotations.jsonl", [first, second])
    d.append("annotations.jsonl", [redo])
    loaded = rec.load_annotations(tmp_path)
    assert [r["id"] for r in loaded] == [ID, second_id]
    assert loaded[0]["seed"] == 99  # the last record of an id wins, at its first place
    assert loaded[0]["camera"]["K"].shape == (3, 3) and loaded[0]["camera"]["R"].dtype == np.float64
    assert loaded[0]["camera"]["C"].shape == (3,) and loaded[0]["cad"]["to_object"].shape == (4, 4)
    assert loaded[0]["bbox"].shape == (4,) and loaded[1]["bbox"] is None
    plain = rec.load_annotations(tmp_path, as_numpy=False)
    assert plain[1] == second and isinstance(plain[0]["camera"]["K"], list)

    broken = copy.deepcopy(first)
    broken["camera"]["R"] = NOT_ROT
    d.append("annotations.jsonl", [broken])
    with pytest.raises(DatasetError, match=r"annotations\.jsonl: annotation n02690373/.*camera\.R is not"):
        rec.load_annotations(tmp_path)
    with pytest.raises(DatasetError, match=r"annotations\.jsonl: not found"):
        rec.load_annotations(tmp_path / "nowhere")


def test_records_without_the_opencv_extrinsics_still_load(tmp_path):
    # Datasets written before camera.R_cv / t_cv existed: valid, and the loader adds them from R and C.
    d = ds.Dataset.open(tmp_path, "render", {"seed": 0}, tool_version="0")
    old = make_record()
    for key in ("R_cv", "t_cv"):
        del old["camera"][key]
    rec.validate_annotation(old)
    d.append("annotations.jsonl", [old])
    for as_numpy in (True, False):
        (loaded,) = rec.load_annotations(tmp_path, as_numpy=as_numpy)
        cam = loaded["camera"]
        R_cv, t_cv = opencv_extrinsics(np.asarray(cam["R"]), np.asarray(cam["C"]))
        np.testing.assert_allclose(cam["R_cv"], R_cv)
        np.testing.assert_allclose(cam["t_cv"], t_cv)
        rec.validate_annotation(json.loads(json.dumps(loaded, default=lambda a: a.tolist())))
    assert "R_cv" not in old["camera"]  # the caller's record is not changed
