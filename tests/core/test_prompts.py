"""core.prompts: templates, caption files and the seeded choice of each image's prompt."""

import hashlib
import json
from collections import Counter

import pytest

from dst3d_addon.core.errors import Dst3dError
from dst3d_addon.core.prompts import (
    PAPER_NEGATIVE,
    PAPER_PROMPT,
    PromptError,
    PromptSource,
    check_template,
    class_phrase,
    load_captions,
    render_template,
)
from dst3d_addon.core.seeds import derive_seed


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


# --------------------------------------------------------------------------- templates


def test_paper_prompts_are_3d_dst_s():
    assert PAPER_PROMPT == "An image of {class}, best quality, extremely detailed"
    assert PAPER_NEGATIVE == (
        "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, "
        "cropped, worst quality, low quality"
    )
    assert (
        render_template(PAPER_PROMPT, "airliner") == "An image of airliner, best quality, extremely detailed"
    )


def test_render_fills_placeholders_and_literal_braces():
    assert (
        render_template("a {class} ({synset})", "pickup_truck", "n03930630") == "a pickup truck (n03930630)"
    )
    assert render_template("{{class}} {class}", "car") == "{class} car"
    assert render_template("}}x{{", "car") == "}x{"
    assert render_template("{ class }", "car") == "car"
    assert render_template("no synset: [{synset}]", "car", None) == "no synset: []"
    assert class_phrase("  sports__car ") == "sports car"


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("a {klass}", "unknown placeholder {klass}"),
        ("a {class", "unmatched '{'"),
        ("a class}", "unmatched '}'"),
        ("a {0}", "unknown placeholder {0}"),
        ("a {}", "unknown placeholder {}"),
    ],
)
def test_bad_templates_name_the_option(template, needle):
    with pytest.raises(PromptError) as err:
        check_template(template, "--prompt")
    msg = str(err.value)
    assert msg.startswith("--prompt ") and needle in msg
    assert isinstance(err.value, Dst3dError) and isinstance(err.value, ValueError)


def test_source_checks_its_templates():
    with pytest.raises(PromptError, match=r"^negative_prompt .*unknown placeholder"):
        PromptSource(PAPER_PROMPT, "bad {x}")
    with pytest.raises(PromptError, match=r"^prompt "):
        PromptSource("bad {x}")


# --------------------------------------------------------------------------- caption files


def test_csv_with_several_rows_per_class(tmp_path):
    p = write(
        tmp_path,
        "c.csv",
        "synset,class,caption\n"
        "n02690373,airliner,a photo of an airliner over clouds\n"
        'n02690373,airliner,"an airliner, parked"\n'
        ",pickup_truck,a red {class}\n"
        "\n",
    )
    c = load_captions(p)
    assert c.lookup("anything", "n02690373") == ("a photo of an airliner over clouds", "an airliner, parked")
    assert c.lookup("AIRLINER") == ("a photo of an airliner over clouds", "an airliner, parked")
    assert c.lookup("Pickup Truck") == ("a red {class}",)
    assert c.lookup("car", "n02958343") == ()
    assert c.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert len(c) == 5


def test_csv_header_variants_and_bom(tmp_path):
    p = write(tmp_path, "c.csv", "\ufeffClass , Prompt\ncar,a car\n")
    assert load_captions(p).lookup("car") == ("a car",)
    # a synset in the class column matches as a synset
    p = write(tmp_path, "d.csv", "class,caption\nn02958343,a car\n")
    assert load_captions(p).lookup("car", "n02958343") == ("a car",)


@pytest.mark.parametrize(
    ("text", "where", "needle"),
    [
        ("name_of_thing,caption\nx,y\n", ":1:", "no 'class' or 'synset' column"),
        ("class,text\ncar,y\n", ":1:", "no 'caption' or 'prompt' column"),
        ("class,caption\ncar,a car\nbus,\n", ":3:", "caption must be non-empty"),
        ("class,caption\ncar,a car\n,orphan\n", ":3:", "no class or synset"),
        ("class,caption\ncar,a car\ncar,a {kar}\n", ":3:", "unknown placeholder {kar}"),
        ("class,caption\ncar,a,b\n", ":2:", "3 fields but the header has 2"),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path, text, where, needle):
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(PromptError) as err:
        load_captions(p)
    assert f"{p}{where}" in str(err.value) and needle in str(err.value)


def test_jsonl(tmp_path):
    lines = [
        {"synset": "n02690373", "caption": "one"},
        {"class": "car", "captions": ["two", "three"]},
        {"class": "bus", "prompt": "four"},
    ]
    p = write(tmp_path, "c.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    c = load_captions(p)
    assert c.lookup("airliner", "n02690373") == ("one",)
    assert c.lookup("Car") == ("two", "three")
    assert c.lookup("bus", "n02924116") == ("four",)


@pytest.mark.parametrize(
    ("line2", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"class": "car"}', 'no "caption", "captions" or "prompt" key'),
        ('{"class": "car", "captions": "x"}', '"captions" must be a list'),
        ('{"class": "car", "captions": ["ok", 3]}', "caption must be non-empty text, got 3"),
        ('{"class": 5, "caption": "x"}', "class must be text"),
        ('{"caption": "x"}', "no class or synset"),
        ('{"class": "car", "captions": []}', "no caption given"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path, line2, needle):
    p = write(tmp_path, "bad.jsonl", '{"class": "car", "caption": "fine"}\n' + line2 + "\n")
    with pytest.raises(PromptError) as err:
        load_captions(p)
    assert str(err.value).startswith(f"{p}:2: ") and needle in str(err.value)


def test_json_mapping_and_list(tmp_path):
    p = write(tmp_path, "c.json", json.dumps({"n02690373": ["a", "b"], "pickup_truck": "c"}, indent=1))
    c = load_captions(p)
    assert c.lookup("airliner", "n02690373") == ("a", "b")
    assert c.lookup("pickup truck") == ("c",)
    p = write(tmp_path, "l.json", json.dumps([{"class": "car", "caption": "d"}]))
    assert load_captions(p).lookup("car") == ("d",)
    p = write(tmp_path, "bad.json", '{\n "car": "ok",\n "bus": ""\n}')
    with pytest.raises(PromptError, match=r"bad\.json:3: caption must be non-empty"):
        load_captions(p)


def test_txt_applies_to_every_class(tmp_path):
    p = write(tmp_path, "p.txt", "# my prompts\n\na photo of a {class}\n  a {class} at night  \n")
    c = load_captions(p)
    assert c.lookup("car") == c.lookup("bus", "n02924116") == ("a photo of a {class}", "a {class} at night")
    p = write(tmp_path, "bad.txt", "ok {class}\n\nbad {klass}\n")
    with pytest.raises(PromptError, match=r"bad\.txt:3: .*unknown placeholder \{klass\}"):
        load_captions(p)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.txt", ""),
        ("e.txt", "# only\n\n  \n"),
        ("e.csv", ""),
        ("e.csv", "class,caption\n"),
        ("e.jsonl", "\n"),
    ],
)
def test_empty_files_are_errors(tmp_path, name, content):
    p = write(tmp_path, name, content)
    with pytest.raises(PromptError, match="no captions in the file"):
        load_captions(p)


def test_unreadable_files(tmp_path):
    with pytest.raises(PromptError, match=r"^captions .*missing\.csv: file not found"):
        load_captions(tmp_path / "missing.csv")
    with pytest.raises(PromptError, match=r"unknown caption format '\.yaml'"):
        load_captions(write(tmp_path, "c.yaml", "a"))
    with pytest.raises(PromptError, match=r"latin\.txt:2: not UTF-8"):
        load_captions(write(tmp_path, "latin.txt", "ok\ncaf\xe9\n", encoding="latin-1"))
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(PromptError, match="is a folder"):
        load_captions(tmp_path / "dir.txt")


# --------------------------------------------------------------------------- the choice


def test_choose_without_captions_uses_the_template():
    src = PromptSource()
    assert src.choose(7, "sports_car", "n04285008") == (
        "An image of sports car, best quality, extremely detailed",
        PAPER_NEGATIVE,
    )
    assert src.captions_digest is None


def test_choose_is_deterministic_and_spreads_over_captions(tmp_path):
    p = write(tmp_path, "c.csv", "class,caption\n" + "".join(f"car,car {i}\n" for i in range(4)))
    src = PromptSource.load(PAPER_PROMPT, "bad {class}", p)
    assert src.captions_digest == hashlib.sha256(p.read_bytes()).hexdigest()
    picks = [src.choose(seed, "car") for seed in range(400)]
    again = [PromptSource.load(PAPER_PROMPT, "bad {class}", p).choose(seed, "car") for seed in range(400)]
    assert picks == again
    assert {neg for _, neg in picks} == {"bad car"}
    counts = Counter(prompt for prompt, _ in picks)
    assert set(counts) == {f"car {i}" for i in range(4)}
    assert min(counts.values()) > 60  # roughly uniform
    for seed in (0, 1, 12345):  # the documented rule
        assert src.choose(seed, "car")[0] == f"car {derive_seed(seed, 'prompt') % 4}"


def test_choose_prefers_synset_then_class_then_template(tmp_path):
    p = write(
        tmp_path,
        "c.jsonl",
        '{"synset": "n02690373", "caption": "by synset"}\n{"class": "Airliner", "caption": "by name"}\n',
    )
    src = PromptSource.load("template {class}", "", p)
    assert src.choose(1, "airliner", "n02690373")[0] == "by synset"
    assert src.choose(1, "airliner", "n99999999")[0] == "by name"
    assert src.choose(1, "airliner", None)[0] == "by name"
    assert src.choose(1, "warplane", "n04552348") == ("template warplane", "")  # not in the file


def test_for_object_overrides(tmp_path):
    p = write(tmp_path, "c.txt", "caption {class}\n")
    src = PromptSource.load(PAPER_PROMPT, PAPER_NEGATIVE, p)
    assert src.choose(3, "car")[0] == "caption car"
    obj = src.for_object(prompt="my {class} on a table")
    assert obj.choose(3, "car") == ("my car on a table", PAPER_NEGATIVE)
    neg = src.for_object(negative="blurry")
    assert neg.choose(3, "car") == ("caption car", "blurry")
    assert src.for_object() == src
    with pytest.raises(PromptError, match=r"^object prompt .*unknown placeholder"):
        src.for_object(prompt="{nope}")


def test_classes_a_caption_file_has_nothing_for_are_named(tmp_path):
    captions = tmp_path / "c.csv"
    captions.write_text("class,caption\nairliner,a photo of an airliner\n")
    source = PromptSource.load(PAPER_PROMPT, PAPER_NEGATIVE, captions)
    classes = [("airliner", "n02690373"), ("car", None), ("bus", "n02924116"), ("car", None)]
    assert source.uncaptioned(classes) == ["bus", "car"]
    assert PromptSource.load(PAPER_PROMPT, PAPER_NEGATIVE).uncaptioned(classes) == []
