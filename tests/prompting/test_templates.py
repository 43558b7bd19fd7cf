"""prompting.templates: the template writer's word files, seeds, filter and diversity targets."""

import pytest

from dst3d_addon.core.prompts import PromptError
from dst3d_addon.prompting.diversity import diversity
from dst3d_addon.prompting.filters import PromptFilter
from dst3d_addon.prompting.targets import target_for
from dst3d_addon.prompting.templates import (
    WORDS_FILE,
    TemplateWriter,
    fix_articles,
    load_words,
    tidy,
    usable_keywords,
)

SUFFIX = ", best quality, extremely detailed"


def airliner(**kw):
    return target_for("n02690373", "airliner", "n02690373", **kw)


def test_the_same_seed_writes_the_same_prompts_and_another_seed_others():
    words = load_words()
    a = TemplateWriter(words, seed=0, suffix=SUFFIX).write(airliner(), 30)
    b = TemplateWriter(words, seed=0, suffix=SUFFIX).write(airliner(), 30)
    c = TemplateWriter(words, seed=1, suffix=SUFFIX).write(airliner(), 30)
    assert a.prompts == b.prompts and a.sources == b.sources
    assert set(a.prompts).isdisjoint(c.prompts)
    # prompt k depends on (seed, group, k) only: the first 10 of 30 are the 10 of a run of 10
    assert TemplateWriter(words, 0, SUFFIX).write(airliner(), 10).prompts == a.prompts[:10]
    assert not any(p.endswith(SUFFIX) for p in a.prompts)  # the group records the suffix
    assert a.sources[0].startswith("templates:k=")


@pytest.mark.parametrize(
    ("synset", "name"), [("n02690373", "airliner"), ("n03001627", "chair"), ("n02085620", "Chihuahua")]
)
def test_every_prompt_names_the_object_passes_the_filter_and_the_targets_hold(synset, name):
    target = target_for(synset, synset, synset)
    written = TemplateWriter(load_words(), 0, SUFFIX).write(target, 100)
    assert len(written.prompts) == 100 and written.asked < 120
    check = PromptFilter(target.synonyms, "")
    assert all(check.offer(p) for p in written.prompts)  # names it, fits, no duplicates
    figures = diversity(written.prompts)
    assert figures.distinct_2 >= 0.5 and figures.jaccard <= 0.2, figures.line()
    assert all(name.lower() in p.lower() for p in written.prompts)


def test_families_pick_scenes():
    words = load_words()
    assert words.family("airliner", "n02690373") == "aircraft"
    assert words.family("chair", "n03001627") == "furniture"
    assert words.family("my racing car", None) == "vehicle"  # a match word of the name
    assert words.family("gizmo", None) == "object"


def test_keywords_find_their_way_in_and_junk_does_not():
    assert usable_keywords(
        ["Boeing 747", "lowpoly", "3d model", "jet_plane", "airliner", "a" * 40], "airliner"
    ) == [
        "Boeing 747",
        "jet plane",
    ]
    written = TemplateWriter(load_words(), 0).write(airliner(keywords=("Boeing 747", "sketchfab")), 40)
    assert any("Boeing 747" in p for p in written.prompts)
    assert not any("sketchfab" in p for p in written.prompts)


def test_the_cap_stops_a_writer_that_cannot_reach_n(tmp_path):
    p = tmp_path / "w.txt"
    p.write_text(
        "[frames]\na {name} {scene}\n[style]\ns\n[detail]\nd\n[lighting]\nl\n[weather]\nw\n[time]\nt\n"
        "[camera]\nc\n[outdoor object]\nby the sea\n"
    )
    written = TemplateWriter(load_words(p), 0).write(target_for("lamp", "lamp", None), 500, max_tries=300)
    assert 1 <= len(written.prompts) < 300 and written.asked == 300  # few distinct sentences exist
    assert written.dropped == {"duplicate": 300 - len(written.prompts)}


def test_text_tidying():
    assert fix_articles("a airliner and an car, a hour, a unicorn, A elegant chair") == (
        "an airliner and a car, an hour, a unicorn, An elegant chair"
    )
    assert tidy("a  car , , on a road,  ") == "A car, on a road"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "no word lists in the file"),
        ("# only a comment\n", "no word lists in the file"),
        ("orphan\n", ":1: 'orphan' is outside any [section]"),
        ("[frames]\na photo of {scene}\n", ":2: frame 'a photo of {scene}' has no {name} slot"),
        ("[frames]\na {name} {where}\n", ":2: frame 'a {name} {where}': unknown slot {where}"),
        ("[colours]\nred\n", ":1: unknown section [colours]"),
        ("[outdoor robots]\nx\n", ":1: unknown family 'robots'"),
        ("[style]\nbad {name}\n", ":2: 'bad {name}': braces belong in [frames] only"),
        ("[frames]\na {name}\n[style]\ns\n", "no [detail], [lighting], [weather], [time], [camera] list"),
    ],
)
def test_bad_word_files_name_file_and_line(tmp_path, content, needle):
    p = tmp_path / "w.txt"
    p.write_text(content)
    with pytest.raises(PromptError) as err:
        load_words(p)
    assert str(err.value).startswith(f"words {p}") and needle in str(err.value)


def test_unreadable_word_files(tmp_path):
    p = tmp_path / "w.txt"
    p.write_bytes("[frames]\ncaf\xe9 {name}\n".encode("latin-1"))
    with pytest.raises(PromptError, match=r"w\.txt:2: not UTF-8 text"):
        load_words(p)
    with pytest.raises(PromptError, match="file not found"):
        load_words(tmp_path / "missing.txt")
    assert load_words().path == str(WORDS_FILE)
