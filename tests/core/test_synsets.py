"""core.synsets: every synset of 3D-DST's model list has a readable name; names in prompts."""

from pathlib import Path

import pytest

from dst3d_addon.core.prompts import PAPER_PROMPT, PromptSource, render_template
from dst3d_addon.core.synsets import (
    FAMILIES,
    RESOURCES,
    SHAPENET_55,
    display_name,
    family_of,
    is_synset,
    known_synsets,
    synonyms,
    synset_name,
)

#: ImageNet-1k's synsets (timm's imagenet_synsets.txt): the `synset` column of 3D-DST's model list.
IMAGENET_1K = Path(__file__).with_name("imagenet_1k_synsets.txt").read_text().split()


def test_every_synset_of_3d_dst_s_list_has_a_name():
    assert len(IMAGENET_1K) == 1000 and len(SHAPENET_55) == 55
    wanted = [*IMAGENET_1K, *(f"n{s}" for s in SHAPENET_55)]
    missing = [s for s in wanted if not synset_name(s)]
    assert missing == []
    assert set(wanted) == set(known_synsets())
    for s in wanted:
        name = synset_name(s)
        assert name.strip() == name and not is_synset(name) and family_of(s, s) in FAMILIES


@pytest.mark.parametrize(
    ("synset", "name"),
    [
        ("n02690373", "airliner"),
        ("n02958343", "car"),
        ("n04379243", "table"),
        ("n02691156", "airplane"),
        ("n03001627", "chair"),
        ("n01440764", "tench"),
    ],
)
def test_names(synset, name):
    assert synset_name(synset) == name
    assert display_name(synset, synset) == name  # a catalogue run without --class-name
    assert display_name(None, synset) == name
    assert display_name("my plane", synset) == "my plane"  # --class-name wins


def test_unknown_and_odd_inputs():
    assert synset_name("n99999999") is None and synset_name("airliner") is None and synset_name(None) is None
    assert display_name("n99999999", "n99999999") == "n99999999"
    assert display_name("", None) == "object"
    assert synonyms("n02958343", "n02958343") == ("car", "auto", "automobile", "machine", "motorcar")
    assert synonyms("sports_car") == ("sports car",)
    assert family_of("car", "n02958343") == "vehicle" and family_of("chair") is None


def test_prompts_name_the_class_never_its_id():
    assert render_template(PAPER_PROMPT, "n02690373", "n02690373") == (
        "An image of airliner, best quality, extremely detailed"
    )
    prompt, _ = PromptSource().choose(3, "n02958343", "n02958343")
    assert "car" in prompt and "n02958343" not in prompt
    assert render_template("{class} ({synset})", "airliner", "n02690373") == "airliner (n02690373)"


def test_the_table_ships_with_both_licenses():
    names = {p.name for p in RESOURCES.iterdir()}
    assert {"synset_names.tsv", "LICENSE-timm", "LICENSE-WordNet-3.0", "README.md"} <= names
    assert (
        "WordNet 3.0 Copyright 2006 by Princeton University."
        in (RESOURCES / "LICENSE-WordNet-3.0").read_text()
    )
    assert "Apache License" in (RESOURCES / "LICENSE-timm").read_text()
