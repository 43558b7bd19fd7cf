"""core.prompt_table: prompts.jsonl's groups, their use per image, and users' prompt files."""

import hashlib
import json

import pytest

from dst3d_addon.core.errors import DatasetError
from dst3d_addon.core.prompt_table import (
    PROMPTS_FILE,
    PromptGroup,
    append_groups,
    load_prompt_file,
    load_prompt_table,
    read_groups,
    resolve_entries,
    rewrite_groups,
)
from dst3d_addon.core.prompts import PAPER_NEGATIVE, PAPER_PROMPT, PromptError, PromptSource, load_captions
from dst3d_addon.core.seeds import derive_seed


def group(class_key="n02690373", model=None, prompts=("a photo of an airliner",), negative=None, **kw):
    return PromptGroup(class_key, model, tuple(prompts), ("test",) * len(prompts), negative, **kw)


# --------------------------------------------------------------------------- prompts.jsonl


def test_records_round_trip_and_the_file_is_canonical(tmp_path):
    a = group(model="m2", prompts=("a {class} on a runway",), negative="blurry", keywords=("jet",))
    b = group(prompts=("one", "two"), stats={"prompts": 2}, dropped={"duplicate": 1}, asked=3)
    c = group("car", None, ("a car",))
    append_groups(tmp_path, [a, c])
    append_groups(tmp_path, [b])
    with open(tmp_path / PROMPTS_FILE, "ab") as f:
        f.write(b'{"class": "torn"')  # a killed writer's last line
    groups = read_groups(tmp_path)
    assert groups == {a.key: a, b.key: b, c.key: c}
    first = rewrite_groups(tmp_path)
    lines = (tmp_path / PROMPTS_FILE).read_text().splitlines()
    assert [json.loads(x)["class"] + "/" + str(json.loads(x)["model"]) for x in lines] == [
        "car/None",
        "n02690373/None",
        "n02690373/m2",
    ]
    data = (tmp_path / PROMPTS_FILE).read_bytes()
    append_groups(tmp_path, [b])  # written twice: once in the file after the rewrite
    assert rewrite_groups(tmp_path) == first and (tmp_path / PROMPTS_FILE).read_bytes() == data
    replaced = group(prompts=("three",))
    assert rewrite_groups(tmp_path, [replaced])[replaced.key] == replaced


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({"model": None, "prompts": []}, "class must be a non-empty string"),
        ({"class": "c", "prompts": "x"}, "prompts must be a list"),
        ({"class": "c", "prompts": [{"text": ""}]}, "prompts[0].text must be non-empty text"),
        ({"class": "c", "prompts": [{"text": "a {klass}"}]}, "unknown placeholder {klass}"),
        ({"class": "c", "prompts": [], "negative_prompt": 3}, "negative_prompt must be null or text"),
        ({"class": "c", "model": "", "prompts": []}, "model must be null or a non-empty string"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, record, needle):
    (tmp_path / PROMPTS_FILE).write_text(json.dumps(group().record()) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DatasetError) as err:
        read_groups(tmp_path)
    assert f"{tmp_path / PROMPTS_FILE}:2: " in str(err.value) and needle in str(err.value)


def test_each_image_draws_from_its_model_then_its_class(tmp_path):
    append_groups(
        tmp_path,
        [
            group(prompts=("class prompt 0", "class prompt 1")),
            group(
                model="special", prompts=("only {class} here",), negative="no {class} twice", suffix=", sharp"
            ),
        ],
    )
    table = load_prompt_table(tmp_path)
    assert table.sha256 == hashlib.sha256((tmp_path / PROMPTS_FILE).read_bytes()).hexdigest()
    source = PromptSource().with_table(table)
    assert source.table_digest == table.sha256
    assert source.choose(1, "airliner", "n02690373", "special") == (
        "only airliner here, sharp",
        "no airliner twice",
    )
    for seed in range(5):
        prompt, negative = source.choose(seed, "airliner", "n02690373", "other")
        assert prompt == f"class prompt {derive_seed(seed, 'prompt') % 2}" and negative == PAPER_NEGATIVE
    assert source.choose(1, "car", None)[0] == PAPER_PROMPT.replace("{class}", "car")  # not in the table
    assert load_prompt_table(tmp_path / "elsewhere") is None


def test_a_table_and_captions_combine(tmp_path):
    append_groups(tmp_path, [group(prompts=("from the table",))])
    captions = tmp_path / "c.csv"
    captions.write_text("class,caption\nairliner,from the captions\nbus,a bus\n")
    source = PromptSource(captions=load_captions(captions), table=load_prompt_table(tmp_path))
    assert source.candidates("airliner", "n02690373") == ("from the table", "from the captions")
    assert {source.choose(s, "airliner", "n02690373")[0] for s in range(40)} == {
        "from the table",
        "from the captions",
    }
    assert source.uncaptioned([("airliner", "n02690373"), ("car", None)]) == ["car"]


# --------------------------------------------------------------------------- users' prompt files

CLASSES = {
    "n02690373": {"name": "airliner", "synset": "n02690373"},
    "pickup_truck": {"name": "pickup_truck", "synset": None},
}
MODELS = [("n02690373", "jet_a"), ("n02690373", "jet_b"), ("pickup_truck", "ford")]


def test_json_mapping_resolves_names_synsets_and_models(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(
        json.dumps(
            {
                "Airliner": ["a {class} at dawn", "a {class} at dusk"],
                "pickup truck": {"prompts": ["a truck"], "negative_prompt": "cartoon"},
                "jet_b": "jet b on a runway",
                "n99999999": "nobody",
            },
            indent=1,
        )
    )
    groups, unmatched = resolve_entries(load_prompt_file(p), CLASSES, MODELS, source="file:p.json")
    by_key = {g.key: g for g in groups}
    assert by_key[("n02690373", None)].prompts == ("a {class} at dawn", "a {class} at dusk")
    assert by_key[("pickup_truck", None)].negative_prompt == "cartoon"
    assert by_key[("n02690373", "jet_b")].prompts == ("jet b on a runway",)
    assert by_key[("n02690373", None)].sources == ("file:p.json",) * 2
    assert unmatched == [f"{p}:13: 'n99999999' is no class or model of the dataset"]


def test_json_list_and_csv(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps([{"synset": "n02690373", "model": "jet_a", "prompts": ["x"], "prompt": "y"}]))
    groups, _ = resolve_entries(load_prompt_file(p), CLASSES, MODELS, source="f")
    assert [(g.key, g.prompts) for g in groups] == [(("n02690373", "jet_a"), ("x", "y"))]
    c = tmp_path / "p.csv"
    c.write_text(
        "class,model,prompt,negative_prompt\n"
        "airliner,,an airliner,\n"
        'airliner,,"an airliner, parked",ugly\n'
        ",ford,a ford truck,\n"
        "# a comment\n"
    )
    groups, unmatched = resolve_entries(load_prompt_file(c), CLASSES, MODELS, source="f")
    assert [(g.key, g.prompts, g.negative_prompt) for g in groups] == [
        (("n02690373", None), ("an airliner", "an airliner, parked"), "ugly"),
        (("pickup_truck", "ford"), ("a ford truck",), None),
    ]
    assert unmatched == []


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("e.json", "", ":1: not valid JSON"),
        ("e.json", "{}", "no prompts in the file"),
        ("e.csv", "", "no prompts in the file"),
        ("e.csv", "class,prompt\n", "no prompts in the file"),
        ("e.csv", "name,text\na,b\n", ":1: the header ['name', 'text'] has no 'class', 'synset' or 'model'"),
        ("e.csv", "class,prompt\ncar,a {kar}\n", ":2: prompt 'a {kar}': unknown placeholder {kar}"),
        ("e.csv", "class,prompt,negative_prompt\ncar,a,x\ncar,b,y\n", ":3: a second negative prompt"),
        ("e.json", '{"car": [""]}', ":1: prompt must be non-empty text"),
        ("e.json", "[3]", "item 1: expected a JSON object"),
        ("e.json", '[{"prompts": ["x"]}]', "no class, synset or model given"),
        ("e.yaml", "car: x", "unknown format '.yaml'; use .json or .csv"),
    ],
)
def test_bad_prompt_files_name_the_option_and_file(tmp_path, name, content, needle):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(PromptError) as err:
        load_prompt_file(p)
    assert str(err.value).startswith(f"prompts {p}") and needle in str(err.value)


def test_unreadable_prompt_files(tmp_path):
    latin = tmp_path / "l.csv"
    latin.write_bytes("class,prompt\ncar,caf\xe9\n".encode("latin-1"))
    with pytest.raises(PromptError, match=r"^prompts .*l\.csv:2: not UTF-8 text$"):
        load_prompt_file(latin)
    with pytest.raises(PromptError, match="file not found"):
        load_prompt_file(tmp_path / "missing.json")
