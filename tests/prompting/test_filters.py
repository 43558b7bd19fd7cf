"""prompting.filters, clip_tokens and diversity: reading messy LLM answers, each filter, the figures."""

import pytest

from dst3d_addon.core.synsets import synonyms
from dst3d_addon.prompting.clip_tokens import count_tokens, fits
from dst3d_addon.prompting.diversity import distinct_n, diversity, mean_jaccard
from dst3d_addon.prompting.filters import REASONS, PromptFilter, normalise, parse_answer

ANSWERS = {
    "numbered": (
        "Sure! Here are 3 captions for an airliner:\n\n"
        "1. A photo of an airliner parked at the terminal at dawn.\n"
        '2) "An airliner taxiing on a wet runway"\n'
        "3. **A white airliner over snowy mountains**\n\n"
        "I hope these help!"
    ),
    "bullets": "- A photo of an airliner at sunset\n* “An airliner under heavy clouds”\n• Caption 3: an airliner in fog",
    "one line": "1. An airliner at the gate 2. An airliner in the rain 3) An airliner over the sea",
    "labels": "Prompt 1: An airliner on the tarmac\nDescription: a silver airliner in a hangar",
}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "numbered",
            [
                "A photo of an airliner parked at the terminal at dawn",
                "An airliner taxiing on a wet runway",
                "A white airliner over snowy mountains",
            ],
        ),
        (
            "bullets",
            ["A photo of an airliner at sunset", "An airliner under heavy clouds", "an airliner in fog"],
        ),
        ("one line", ["An airliner at the gate", "An airliner in the rain", "An airliner over the sea"]),
        ("labels", ["An airliner on the tarmac", "a silver airliner in a hangar"]),
    ],
)
def test_messy_answers_parse(kind, expected):
    assert parse_answer(ANSWERS[kind]) == expected


def test_noise_parses_to_something_or_nothing_without_failing():
    for text in ["", "\n\n", "::::", "\x00\x01 ÿ", "1.", "{{}}", "a" * 5000]:
        assert isinstance(parse_answer(text), list)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A photo of an airliner at dawn", None),
        ("An AIRLINER on the runway at dusk", None),
        ("An airliner's wing glinting in the sun", None),
        ("A jet on the runway", "no_name"),
        ("airliner", "format"),
        ("Two airliners parked at the gate", "several"),
        ("Airliners lined up at dusk", "several"),
        ("An airliner beside another airliner", "several"),
        ("A fleet of airliner jets at the gate", "several"),
        ("An aerial view of an airliner over clouds", "viewpoint"),
        ("An airliner seen from below at dusk", "viewpoint"),
        ("An airliner with a sign reading WELCOME", "text"),
        ('An airliner painted with "Aloha" on the tail', "text"),
        ("An airliner with the airline logo on its tail", "text"),
        ("An airliner " + "over a very long and winding mountain road " * 12, "too_long"),
    ],
)
def test_each_filter(text, reason):
    check = PromptFilter(synonyms("n02690373", "n02690373"), ", best quality, extremely detailed")
    assert check.check(text) == reason
    assert reason is None or reason in REASONS


def test_duplicates_exact_and_near_and_the_counts():
    check = PromptFilter(("car", "automobile"))
    assert check.offer("A red car on a country road")
    assert not check.offer("A red car on a country road")
    assert not check.offer("a red car, on the country road!")  # near: articles, case, punctuation
    assert check.offer("An automobile on a country road")  # a synonym names it
    assert not check.offer("Two cars")
    assert check.kept == ["A red car on a country road", "An automobile on a country road"]
    assert check.dropped == {"duplicate": 2, "format": 1}
    assert normalise("The Car, at NIGHT.") == "car at night"


def test_names_with_count_or_text_words_are_not_refused():
    assert PromptFilter(("four-poster",)).check("A four-poster in a sunlit bedroom") is None
    assert PromptFilter(("street sign",)).check("A street sign at a quiet crossroads") is None
    assert PromptFilter(("bicycle-built-for-two", "tandem")).check("A tandem by a canal") is None


def test_clip_token_counts_match_transformers_tokenizer(tmp_path):
    from transformers import CLIPTokenizer

    from dst3d_addon.generation.model_configs import family_config_dir

    tokenizer = CLIPTokenizer.from_pretrained(str(family_config_dir("sd15", tmp_path) / "tokenizer"))
    for text in [
        "A photo of jet airliner parked in front of the terminal building at Kawaihae, Kauai",
        "An image of airliner, best quality, extremely detailed",
        "it's a 3.5mm f/2.8 lens — café déjà-vu 12345, don't",
        "snake_case and UPPER case!!! ??? ...",
        "",
    ]:
        assert count_tokens(text) == len(tokenizer(text)["input_ids"]), text
    assert fits("a car " * 37) and not fits("a car " * 38)


def test_diversity_figures():
    assert distinct_n(["a b c", "a b c"], 1) == 0.5 and distinct_n(["a b c", "a b c"], 2) == 0.5
    assert distinct_n(["a b", "c d"], 2) == 1.0 and distinct_n([], 1) == 0.0
    assert mean_jaccard(["a b", "c d"]) == (0.0, False)
    assert mean_jaccard(["a b", "b a", "a b"]) == (1.0, False)
    assert mean_jaccard(["a b c", "a d e"])[0] == pytest.approx(1 / 5)
    d = diversity(["A car at dawn", "A car at dusk"])
    assert d.as_dict() == {"prompts": 2, "distinct_1": 0.625, "distinct_2": 0.6667, "jaccard": 0.6}
    assert d.line() == "2 prompts, distinct-1 0.62, distinct-2 0.67, Jaccard 0.600"
    many = [f"p{i} q{i % 7}" for i in range(800)]  # 319,600 pairs: sampled
    value, sampled = mean_jaccard(many)
    assert sampled and 0.0 < value < 0.1
