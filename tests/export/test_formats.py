"""Each export format, read back by the library its users read it with.

coco: pycocotools (annToMask equals the mask file, toBbox the bbox); pascal3d: scipy.io.loadmat as
NeMo-style code indexes it, and PASCAL3D+'s own projection of the exported CAD vertices lands on
the mask; imagefolder: datasets.load_dataset("imagefolder"); webdataset: webdataset's own reader.
Every format gets the same labels as the records, and a --holdout-models split never puts a CAD
model on both sides.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from dst3d_addon.core import pascal3d
from dst3d_addon.core.camera import Intrinsics, project
from dst3d_addon.core.records import load_annotations
from tests.export.conftest import CLASSES, VIEWS
from tests.export.export_helpers import export
from tests.geometry import iou, silhouette

N_IMAGES = VIEWS * sum(len(models) for _, models in CLASSES.values())
POSE = ("azimuth", "elevation", "theta", "distance")


@pytest.fixture(scope="module")
def records(rendered) -> dict[str, dict]:
    return {r["id"]: r for r in load_annotations(rendered, as_numpy=False)}


def mask_of(rendered: Path, record: dict) -> np.ndarray:
    return cv2.imread(str(rendered / record["files"]["mask"]), cv2.IMREAD_GRAYSCALE) > 0


def check_label(label: dict, record: dict) -> None:
    """A format's per-image labels equal the view's record."""
    for key in POSE:
        assert label[key] == pytest.approx(record["pose"][key], abs=1e-12), key
    for key in ("K", "R", "C", "R_cv", "t_cv"):
        np.testing.assert_allclose(label[key], record["camera"][key], atol=1e-12, err_msg=key)
    assert label["model_id"] == record["cad"]["model_id"]
    assert label["synset"] == record["class"]["synset"]


def check_holdout(models_of_split: dict[str, set[tuple[str, str]]]) -> None:
    """Each class has models on both sides, none on both."""
    train, val = models_of_split["train"], models_of_split["val"]
    assert not train & val
    for cls, (_synset, models) in CLASSES.items():
        key = _synset or cls
        assert {m for c, m in train | val if c == key} == set(models)
        assert any(c == key for c, _ in val) and any(c == key for c, _ in train)


def test_coco_reads_back_with_pycocotools(rendered, records, tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    to = tmp_path / "coco"
    export("--out", rendered, "--format", "coco", "--to", to, "--images", "renders", "--holdout-models", 0.5)
    seen, models = 0, {}
    for split in ("train", "val"):
        coco = COCO(str(to / "annotations" / f"instances_{split}.json"))
        cats = {c["id"]: c for c in coco.loadCats(coco.getCatIds())}
        assert {(c["name"], c["synset"]) for c in cats.values()} == {("airliner", "n02690373"), ("jet", None)}
        models[split] = set()
        for ann in coco.loadAnns(coco.getAnnIds()):
            record = records[ann["dst3d_id"]]
            image = coco.loadImgs(ann["image_id"])[0]
            assert (image["width"], image["height"]) == (64, 64)
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask_of(rendered, record))
            u0, v0, u1, v1 = record["bbox"]
            assert ann["bbox"] == [u0, v0, u1 - u0, v1 - v0]
            assert mask_utils.toBbox(coco.annToRLE(ann)).tolist() == ann["bbox"]
            assert ann["area"] == int(mask_of(rendered, record).sum()) and ann["iscrowd"] == 0
            assert cats[ann["category_id"]]["name"] == record["class"]["name"]
            check_label(ann, record)
            pixels = cv2.imread(str(to / split / image["file_name"]), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(
                pixels, cv2.imread(str(rendered / record["files"]["render"]), cv2.IMREAD_UNCHANGED)
            )
            models[split].add((record["id"].split("/")[0], ann["model_id"]))
            seen += 1
    assert seen == N_IMAGES
    check_holdout(models)


def test_pascal3d_reads_back_and_projects_onto_the_mask(rendered, records, tmp_path):
    from scipy.io import loadmat

    to = tmp_path / "p3d"
    export(
        "--out", rendered, "--format", "pascal3d", "--to", to, "--images", "renders", "--holdout-models", 0.5
    )
    assert sorted(p.name for p in (to / "Annotations").iterdir()) == ["airliner_dst3d", "jet_dst3d"]
    models: dict[str, set] = {"train": set(), "val": set()}
    count = 0
    for listing in sorted((to / "Image_sets").glob("*.txt")):
        subset, split = listing.stem.rsplit("_", 1)
        for name in pascal3d.read_image_set(listing):
            # NeMo-style access of the .mat, as PASCAL3D+'s own files are read.
            record_mat = loadmat(str(to / "Annotations" / subset / f"{name}.mat"))["record"]
            obj = record_mat["objects"][0, 0][0, 0]
            vp = obj["viewpoint"][0, 0]
            fields = {k: float(vp[k][0, 0]) for k in ("azimuth", "elevation", "theta", "distance", "focal", "viewport", "px", "py")}  # fmt: skip
            cls = str(obj["class"][0])
            cad_index = int(obj["cad_index"].item())
            record = records[str(record_mat["dst3d"][0, 0]["id"][0, 0][0])]
            assert str(record_mat["filename"][0, 0][0]) == f"{name}.png"
            assert (to / "Images" / subset / f"{name}.png").is_file()
            assert cls == record["class"]["name"] and subset == f"{cls}_dst3d"
            assert fields["azimuth"] == pytest.approx(math.degrees(record["pose"]["azimuth"]) % 360)
            assert fields["elevation"] == pytest.approx(math.degrees(record["pose"]["elevation"]))
            assert fields["theta"] == pytest.approx(math.degrees(record["pose"]["theta"]))
            assert fields["distance"] == pytest.approx(record["pose"]["distance"])
            assert fields["focal"] * fields["viewport"] == pytest.approx(record["camera"]["viewport"])
            u0, v0, u1, v1 = record["bbox"]
            assert obj["bbox"][0].tolist() == [u0 + 1, v0 + 1, u1, v1]  # 1-based first and last pixel
            # PASCAL3D+'s projection (project_3d.m) of the exported CAD model lands on the mask.
            vertices, faces = pascal3d.read_off(to / "CAD" / cls / f"{cad_index:02d}.off")
            uv = pascal3d.project(vertices, pascal3d.Viewpoint(**fields)) - 0.5  # MATLAB pixels -> ours
            mask = mask_of(rendered, record)
            assert iou(mask, silhouette(uv, faces, 64, 64)) >= 0.95, name  # 64 px: thin parts cost pixels
            cam = record["camera"]
            intrinsics = Intrinsics(64, 64, cam["viewport"], tuple(cam["principal"]))
            ours, _ = project(vertices, np.asarray(cam["R"]), np.asarray(cam["C"]), intrinsics)
            np.testing.assert_allclose(uv, ours, atol=1e-9)  # exactly the record's own projection
            models[split].add((record["id"].split("/")[0], record["cad"]["model_id"]))
            count += 1
    assert count == N_IMAGES
    check_holdout(models)
    # The reader of the same module gives the records back (dst3d's units and pixels).
    images = pascal3d.read_folder(to, split="val")
    assert {i.dst3d["id"] for i in images} == {
        i for i in records if i.split("/")[1] in {m for _, m in models["val"]}
    }
    for image in pascal3d.read_folder(to):
        record = records[image.dst3d["id"]]
        (obj,) = image.objects
        pose = obj.viewpoint.pose
        assert math.remainder(pose.azimuth - record["pose"]["azimuth"], 2 * math.pi) == pytest.approx(
            0, abs=1e-9
        )
        assert pose.elevation == pytest.approx(record["pose"]["elevation"])
        assert obj.bbox == tuple(record["bbox"])
        intr = obj.viewpoint.intrinsics(image.width, image.height)
        np.testing.assert_allclose(intr.K, record["camera"]["K"])
    # CAD/<class>.mat holds the same models as the .off files (read_cad falls back to it).
    offs = sorted((to / "CAD").glob("*/*.off"))
    assert [f"{p.parent.name}/{p.name}" for p in offs] == ["airliner/01.off", "airliner/02.off", "airliner/03.off", "jet/01.off", "jet/02.off"]  # fmt: skip
    meshes = {p: pascal3d.read_off(p) for p in offs}
    for p in offs:
        p.unlink()
    for p, (vertices, faces) in meshes.items():
        from_mat = pascal3d.read_cad(to, p.parent.name, int(p.stem))
        np.testing.assert_array_equal(from_mat[0], vertices)
        np.testing.assert_array_equal(from_mat[1], faces)


def test_imagefolder_loads_with_datasets(rendered, records, tmp_path):
    import datasets

    to = tmp_path / "hf"
    export(
        "--out",
        rendered,
        "--format",
        "imagefolder",
        "--to",
        to,
        "--images",
        "renders",
        "--holdout-models",
        0.5,
    )
    loaded = datasets.load_dataset("imagefolder", data_dir=str(to))
    assert set(loaded) == {"train", "validation"}
    assert sum(len(split) for split in loaded.values()) == N_IMAGES
    models = {}
    for name, split in loaded.items():
        models["val" if name == "validation" else "train"] = {
            (r["id"].split("/")[0], r["model_id"]) for r in split
        }
        for row in split:
            record = records[row["id"]]
            check_label(row, record)
            assert row["class"] == record["class"]["name"] and row["bbox"] == record["bbox"]
            expected = cv2.cvtColor(cv2.imread(str(rendered / record["files"]["render"])), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(np.asarray(row["image"].convert("RGB")), expected)
    check_holdout(models)
    assert loaded["train"].class_encode_column("class").features["class"].names == ["airliner", "jet"]


def test_webdataset_reads_its_shards_back(rendered, records, tmp_path):
    import webdataset as wds

    to = tmp_path / "wds"
    export(
        "--out", rendered, "--format", "webdataset", "--to", to, "--images", "control",
        "--shard-size", 3, "--mask", "--depth",
    )  # fmt: skip
    shards = sorted(p.name for p in to.glob("*.tar"))
    assert shards == [f"train-{i:06d}.tar" for i in range(math.ceil(N_IMAGES / 3))]
    urls = [str(to / s) for s in shards]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("l"))
    assert len(samples) == N_IMAGES
    for sample in samples:
        label = sample["json"]
        record = records[label["id"]]
        check_label(label, record)
        assert sample["__key__"] == f"{label['class']}/{record['cad']['model_id']}_{record['id'][-6:]}"
        control = cv2.imread(str(rendered / record["files"]["control"]), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(np.round(sample["png"] * 255).astype(np.uint8), control)
        np.testing.assert_array_equal(sample["mask.png"] > 0.5, mask_of(rendered, record))
        depth = np.load(rendered / record["files"]["depth"])["depth"]
        np.testing.assert_array_equal(sample["depth.npy"], depth)
    assert json.loads((to / "export.json").read_text())["summary"]["splits"]["train"]["images"] == N_IMAGES
    # The shards are byte for byte what webdataset's own TarWriter writes for the same samples.
    for url in urls:
        raw = list(wds.WebDataset(url, shardshuffle=False, empty_check=False))
        buffer = io.BytesIO()
        writer = wds.TarWriter(buffer, user="dst3d", group="dst3d", mtime=0, encoder=False)
        for sample in raw:
            writer.write({k: v for k, v in sample.items() if k == "__key__" or not k.startswith("__")})
        writer.close()
        assert buffer.getvalue() == Path(url).read_bytes()
