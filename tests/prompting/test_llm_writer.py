"""The LLM writer's logic on canned answers (no model): batching, seeds, parsing, filters, the cap;
its template file; and the checks made before a worker starts."""

import json
import os

import pytest

from dst3d_addon.core.prompts import PromptError
from dst3d_addon.generation.errors import MissingWeights
from dst3d_addon.prompting.llm_source import check_llm, hub_cached, llm_here
from dst3d_addon.prompting.llm_template import TEMPLATE_FILE, load_llm_template
from dst3d_addon.prompting.llm_writer import LlmSettings, LlmWriter
from dst3d_addon.prompting.targets import target_for

AIRLINER = target_for("n02690373", "airliner", "n02690373", keywords=("jet",))


class Canned:
    """A fake model: answer k is `answers[k % len]`; records every call's messages and seeds."""

    def __init__(self, *answers: str) -> None:
        self.answers = answers
        self.calls: list[tuple[list[dict], list[int]]] = []
        self.seeds: list[int] = []

    def __call__(self, messages, seeds):
        self.calls.append((messages, list(seeds)))
        out = [self.answers[(len(self.seeds) + i) % len(self.answers)] for i in range(len(seeds))]
        self.seeds += seeds
        return out


MESSY = (
    "Sure! Here are 4 captions:\n"
    "1. A photo of an airliner on a wet runway at dusk\n"
    '2. "Two airliners parked at the gate"\n'
    "3) An aerial view of an airliner over the sea\n"
    "4. **An airliner beside a hangar in the snow**\n"
)


def writer(**kw) -> LlmWriter:
    settings = {
        "model": "canned",
        "seed": 7,
        "suffix": ", best quality",
        "per_answer": 4,
        "batch_size": 3,
        **kw,
    }
    return LlmWriter(load_llm_template(), LlmSettings(**settings))


def test_answers_become_filtered_prompts_with_their_sources():
    model = Canned(
        MESSY, "1. An airliner taxiing past a lighthouse\n2. A photo of an airliner on a wet runway at dusk"
    )
    written = writer().write(AIRLINER, 3, model)
    assert written.prompts == [
        "A photo of an airliner on a wet runway at dusk",
        "An airliner beside a hangar in the snow",
        "An airliner taxiing past a lighthouse",
    ]
    assert written.sources == ["llm:k=0", "llm:k=0", "llm:k=1"]
    assert written.asked == 3  # one call of batch_size 3 sufficed
    assert written.dropped == {"several": 1, "viewpoint": 1}  # answer 2 was not read past N
    messages, seeds = model.calls[0]
    assert messages[-1]["content"] == "Write 3 captions. Subject: airliner. Keywords: jet."
    assert messages[0]["role"] == "system" and len(seeds) == 3


def test_seeds_are_per_group_and_answer_and_do_not_depend_on_the_batch():
    w3, w1 = writer(batch_size=3), writer(batch_size=1)
    a, b = Canned("1. nothing useful here"), Canned("1. nothing useful here")
    w3.write(AIRLINER, 5, a)
    w1.write(AIRLINER, 5, b)
    assert a.seeds == b.seeds == [w3.seed_of(AIRLINER, k) for k in range(len(a.seeds))]
    other = target_for("car", "car", None)
    assert w3.seed_of(other, 0) != w3.seed_of(AIRLINER, 0) != writer(seed=8).seed_of(AIRLINER, 0)


def test_the_cap_stops_asking_and_counts_why_prompts_were_dropped():
    model = Canned("Here you go:", "1. A jet on the runway\n2. airliner")
    written = writer(max_answers=5).write(AIRLINER, 10, model)
    assert written.prompts == [] and written.asked == 5
    assert [len(seeds) for _, seeds in model.calls] == [3, 2]
    assert written.dropped == {"empty_answer": 3, "no_name": 2, "format": 2}
    assert LlmSettings("m").answers_cap(100) == 32 and LlmSettings("m", max_answers=4).answers_cap(100) == 4


def test_a_model_that_answers_the_wrong_number_of_times_is_an_error():
    with pytest.raises(RuntimeError, match="2 answers for 3 seeds"):
        writer().write(AIRLINER, 3, lambda messages, seeds: ["a", "b"])


def test_record_settings_name_what_decides_the_prompts():
    settings = writer().record_settings()
    assert settings["writer"] == "llm" and settings["model"] == "canned" and settings["seed"] == 7
    assert settings["template_sha256"] == load_llm_template().sha256


# --------------------------------------------------------------------------- the template file


def test_the_shipped_template_renders_the_request():
    template = load_llm_template()
    assert template.path == str(TEMPLATE_FILE)
    chat = template.render("airliner", 10, (), ("airliner", "jet liner"))
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert chat[-1]["content"] == "Write 10 captions. Subject: airliner. Keywords: none."


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "no messages in the file"),
        ("# just a comment\n", "no messages in the file"),
        ("[user]\nWrite {count} captions.\n", ":1: the request has no {name} slot"),
        ("[user]\nWrite {count} of {nam}.\n", ":1: the request has an unknown slot {nam}"),
        ("[user]\nfirst {name}\n[assistant]\n1. x\n", ":3: the last message must be a [user] message"),
        ("hello\n[user]\n{name}\n", ":1: 'hello' is outside any [section]"),
        ("[user]\n{name}\n[system]\nlate\n", ":3: [system] must come first"),
        ("[robot]\n{name}\n", ":1: unknown section [robot]"),
        (
            "[system]\nuse {name}\n[user]\n{name}\n",
            ":1: [system]: braces belong in the last [user] message only",
        ),
        ("[system]\n\n[user]\n{name}\n", ":1: [system] is empty"),
    ],
)
def test_bad_templates_name_the_option_file_and_line(tmp_path, content, needle):
    p = tmp_path / "t.txt"
    p.write_text(content)
    with pytest.raises(PromptError) as err:
        load_llm_template(p)
    assert str(err.value).startswith(f"llm_template {p}") and needle in str(err.value)


def test_unreadable_templates(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("[user]\nWrite {name} caf\xe9\n".encode("latin-1"))
    with pytest.raises(PromptError, match=r"t\.txt:2: not UTF-8 text"):
        load_llm_template(p)


# --------------------------------------------------------------------------- before a worker starts


def test_a_folder_that_is_not_a_causal_lm_is_named(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    with pytest.raises(PromptError, match=r"^llm .*clip: no config\.json"):
        check_llm(str(folder))
    (folder / "config.json").write_text(json.dumps({"model_type": "clip", "architectures": ["CLIPModel"]}))
    with pytest.raises(PromptError, match=r"not a causal language model \(config\.json: model_type 'clip'"):
        check_llm(str(folder))
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    (folder / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(PromptError, match=r"no \.safetensors weights \(it has pytorch_model\.bin"):
        check_llm(str(folder))
    (folder / "model.safetensors").write_bytes(b"x")
    assert check_llm(str(folder)) is None and llm_here(str(folder)) is None
    with pytest.raises(PromptError, match="not a folder"):
        check_llm(str(tmp_path / "nope" / "model"))


def test_a_missing_hub_model_is_named_with_its_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    error = check_llm("Qwen/Qwen2.5-1.5B-Instruct")
    assert isinstance(error, MissingWeights)
    assert "hf download Qwen/Qwen2.5-1.5B-Instruct" in str(error) and "\n" not in str(error)
    assert llm_here("Qwen/Qwen2.5-1.5B-Instruct").startswith("Qwen/Qwen2.5-1.5B-Instruct is not in the")
    snapshot = tmp_path / "hf" / "hub" / "models--Qwen--Qwen2.5-1.5B-Instruct" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert hub_cached("Qwen/Qwen2.5-1.5B-Instruct") and check_llm("Qwen/Qwen2.5-1.5B-Instruct") is None
    assert check_llm("tiny") is None and os.environ["HF_HUB_OFFLINE"] == "1"
