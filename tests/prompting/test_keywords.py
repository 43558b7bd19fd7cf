"""prompting.keywords and targets: CAD metadata as 3D-DST reads it, and the groups a dataset gets."""

import gzip
import json

import pytest

from dst3d_addon.core.prompts import PromptError
from dst3d_addon.prompting.keywords import KeywordSources, parse_keywords, sidecar_keywords
from dst3d_addon.prompting.targets import plan_targets
from tests.prompting.prompt_helpers import fake_dataset


def test_shapenet_csv_and_taxonomy_next_to_the_synset_folders(tmp_path):
    root = tmp_path / "ShapeNetCore.v2"
    model = root / "02691156" / "1a04e3eab45ca15dd86060f189eb133" / "models" / "model_normalized.obj"
    model.parent.mkdir(parents=True)
    model.write_text("")
    (model.parent / "model_normalized.json").write_text('{"max": [1, 1, 1]}')  # not a sidecar
    (root / "taxonomy.json").write_text(
        json.dumps([{"synsetId": "02691156", "name": "airplane,aeroplane,plane"}])
    )
    (root / "02691156.csv").write_text(
        "fullId,wnsynset,wnlemmas,up,front,name,tags\n"
        '3dw.1a04e3eab45ca15dd86060f189eb133,02690373,"airliner,jet",,,Boeing 747,\n'
    )
    sources = KeywordSources()
    assert sources.for_model(str(model), "1a04e3eab45ca15dd86060f189eb133") == (
        "airliner",
        "jet",
        "Boeing 747",
        "airplane",
        "aeroplane",
        "plane",
    )
    assert sources.for_model(str(model.with_name("x.obj")), "other") == ("airplane", "aeroplane", "plane")


def test_objaverse_annotations_omniobject3d_sidecars_and_given_words(tmp_path):
    annotations = tmp_path / "annotations.json.gz"
    annotations.write_bytes(
        gzip.compress(
            json.dumps(
                {
                    "8476c4170df24cf5bbe6967222d1a42d": {
                        "tags": [{"name": "boeing"}, {"name": "lowpoly"}],
                        "categories": [{"name": "cars-vehicles"}, {"name": "x"}],
                    }
                }
            ).encode()
        )
    )
    sources = KeywordSources([annotations], extra=["white livery"])
    assert sources.for_model(
        "glbs/8476c4170df24cf5bbe6967222d1a42d.glb", "8476c4170df24cf5bbe6967222d1a42d"
    ) == (
        "boeing",
        "lowpoly",
        "cars-vehicles",
        "white livery",
    )
    assert sources.for_model("raw/raw_scans/toy_car/toy_car_001/Scan/Scan.obj", "toy_car_001") == (
        "toy car",
        "white livery",
    )
    assert sources.for_model("x", "omniobject3d_teddy_bear_004") == ("teddy bear", "white livery")
    cad = tmp_path / "plane.glb"
    cad.write_text("")
    (tmp_path / "plane.json").write_text(
        json.dumps({"name": "Concorde", "keywords": ["supersonic", "delta wing"]})
    )
    assert sidecar_keywords(cad) == ["Concorde", "supersonic", "delta wing"]
    assert KeywordSources().for_model(str(cad), "plane") == ("Concorde", "supersonic", "delta wing")
    assert KeywordSources().for_model("nowhere/x.glb", "x") == ()  # no metadata: not an error
    assert parse_keywords(" jet,  white livery ,,") == ["jet", "white livery"]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("m.json", "{not json", ":1: not valid JSON"),
        ("m.csv", "a,b\n1,2\n", ":1: no 'fullId' column"),
        ("m.yaml", "x: 1", "unknown metadata file"),
        ("m.json", "[1]", "item 1 is not a taxonomy entry"),
        ("m.json.gz", "plain text", "not a gzip file"),
    ],
)
def test_bad_metadata_files_name_the_option_and_file(tmp_path, name, content, needle):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(PromptError) as err:
        KeywordSources([p])
    assert str(err.value).startswith(f"metadata {p}") and needle in str(err.value)


def test_a_bad_sidecar_is_named(tmp_path):
    cad = tmp_path / "plane.glb"
    cad.write_text("")
    (tmp_path / "model.json").write_text('{"name": 3}')
    with pytest.raises(PromptError, match=r'^sidecar .*model\.json: "name" must be text'):
        sidecar_keywords(cad)


def test_a_class_is_one_group_unless_its_models_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative CAD paths are relative to where the render ran
    out = fake_dataset(tmp_path / "ds")
    targets = plan_targets(out, KeywordSources())
    assert [(t.key, t.name, t.keywords) for t in targets] == [
        ("chair", "chair", ()),
        ("n02690373", "airliner", ()),
    ]
    assert targets[1].synonyms == ("airliner",) and targets[1].synset == "n02690373"
    (out.parent / "planes").mkdir()
    (out.parent / "planes" / "jet_b.json").write_text('{"keywords": ["cargo"]}')
    targets = plan_targets(out, KeywordSources(), classes=["airliner"])
    assert [(t.key, t.keywords) for t in targets] == [
        ("n02690373/jet_a", ()),
        ("n02690373/jet_b", ("cargo",)),
    ]
