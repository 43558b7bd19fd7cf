"""The prompts stage and --prompts in process: bad input gives one line naming the option or file,
a non-zero exit, and nothing written or lost; the template writer's run and rerun."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dst3d_addon.core.prompt_table import PROMPTS_FILE, PromptGroup, append_groups, read_groups
from tests.cli.cli_helpers import error, usage
from tests.prompting.prompt_helpers import fake_dataset


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture
def ds(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return fake_dataset(tmp_path / "ds")


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def refused(run_cli, ds: Path, *argv: str, code: int = 2) -> str:
    before = digest(ds)
    got, lines = run_cli(*argv)
    assert got == code, lines
    assert len(lines) == 1, lines
    assert digest(ds) == before, "a refused command changed the dataset"
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], usage("prompts", "--n '0': must be positive")),
        (["--n", "100001"], usage("prompts", "--n '100001': at most 10,000")),
        (["--n", "many"], usage("prompts", "--n 'many': expected a whole number")),
        (["--writer", "gpt"], None),
        (
            ["--suffix", ", {oops}"],
            error(
                "--suffix ', {oops}': unknown placeholder {oops}; use {class} or {synset} ({{ and }} for literal braces)"
            ),
        ),
        (["--classes", "boat"], error("--classes boat: no such class in ds")),
    ],
)
def test_bad_options(run_cli, ds, args, message):
    line = refused(run_cli, ds, "prompts", "--out", "ds", "--writer", "templates", *args)
    if message is not None:
        assert line == message
    else:
        assert line.startswith("dst3d: error: dst3d_batch.py prompts: --writer: invalid choice: 'gpt'")


def test_a_folder_without_annotations(run_cli, tmp_path):
    code, lines = run_cli("prompts", "--out", "nothing", "--writer", "templates")
    assert (code, lines) == (
        2,
        [error("--out nothing: no annotations.jsonl there; run the render stage first")],
    )
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize(
    ("option", "name", "content", "needle"),
    [
        ("--words", "w.txt", "", "no word lists in the file"),
        ("--words", "w.txt", b"[frames]\ncaf\xe9 {name}\n", "w.txt:2: not UTF-8 text"),
        (
            "--words",
            "w.txt",
            "[frames]\na photo of {scene}\n",
            "w.txt:2: frame 'a photo of {scene}' has no {name} slot",
        ),
        ("--llm-template", "t.txt", "", "no messages in the file"),
        ("--llm-template", "t.txt", b"[user]\n\xff{name}\n", "t.txt:2: not UTF-8 text"),
        (
            "--llm-template",
            "t.txt",
            "[user]\nWrite {count} captions.\n",
            "t.txt:1: the request has no {name} slot",
        ),
        ("--metadata", "m.json", "{oops", "m.json:1: not valid JSON"),
        ("--words", "missing.txt", None, "missing.txt: file not found"),
    ],
)
def test_bad_files_are_named(run_cli, ds, tmp_path, option, name, content, needle):
    if content is not None:
        write(tmp_path / name, content)
    line = refused(run_cli, ds, "prompts", "--out", "ds", option, name)
    assert line.startswith(f"dst3d: error: {option} {name}") and needle in line


def test_an_llm_folder_that_is_not_a_causal_lm(run_cli, ds, tmp_path):
    (tmp_path / "clip").mkdir()
    write(
        tmp_path / "clip" / "config.json", json.dumps({"model_type": "clip", "architectures": ["CLIPModel"]})
    )
    line = refused(run_cli, ds, "prompts", "--out", "ds", "--writer", "llm", "--llm", "clip")
    assert line.startswith(
        "dst3d: error: --llm clip: not a causal language model (config.json: model_type 'clip'"
    )


def test_a_missing_llm_is_named_with_its_download_command_and_nothing_starts(run_cli, ds):
    line = refused(run_cli, ds, "prompts", "--out", "ds", "--writer", "llm", code=1)
    assert line.startswith("dst3d: error: Qwen/Qwen2.5-1.5B-Instruct: weights not in the Hugging Face cache")
    assert "`hf download Qwen/Qwen2.5-1.5B-Instruct`" in line


def test_templates_write_resume_and_rerun_to_the_same_bytes(run_cli, ds):
    code, lines = run_cli("prompts", "--out", "ds", "--n", "30", "--quiet")
    assert code == 0, lines
    assert lines[0].startswith(
        "dst3d prompts: writing with the template writer: Qwen/Qwen2.5-1.5B-Instruct is not"
    )
    assert (
        lines[1]
        == f"dst3d prompts: 2 groups (templates writer, N = 30): 2 to write, 0 already done -> ds/{PROMPTS_FILE}"
    )
    data = (ds / PROMPTS_FILE).read_bytes()
    groups = read_groups(ds)
    assert sorted(groups) == [("chair", None), ("n02690373", None)]
    airliner = groups[("n02690373", None)]
    assert len(airliner.prompts) == 30 and airliner.name == "airliner" and airliner.writer == "templates"
    assert airliner.stats["distinct_2"] > 0.5 and airliner.suffix == ", best quality, extremely detailed"
    assert all("airliner" in p.lower() and "n02690373" not in p for p in airliner.prompts)
    # a kill after the first group: the rerun writes the rest and ends with the same bytes
    (ds / PROMPTS_FILE).write_bytes(data.split(b"\n", 1)[0] + b"\n" + b'{"class": "n0269')
    code, lines = run_cli("prompts", "--out", "ds", "--n", "30", "--quiet")
    assert code == 0 and "1 to write, 1 already done" in lines[1]
    assert (ds / PROMPTS_FILE).read_bytes() == data
    code, lines = run_cli("prompts", "--out", "ds", "--n", "30", "--quiet")
    assert code == 0 and "0 to write, 2 already done" in lines[1]
    assert (ds / PROMPTS_FILE).read_bytes() == data


def test_other_settings_are_refused_unless_allowed(run_cli, ds):
    assert run_cli("prompts", "--out", "ds", "--n", "10", "--quiet")[0] == 0
    line = refused(run_cli, ds, "prompts", "--out", "ds", "--n", "12", "--quiet")
    assert line.startswith(
        f"dst3d: error: --out ds: chair already has 10 prompts in {PROMPTS_FILE}, written with other settings (n: 10 -> 12"
    )
    assert line.endswith("pass --allow-mixed to write them again, or choose a new --out")
    assert run_cli("prompts", "--out", "ds", "--n", "12", "--quiet", "--allow-mixed")[0] == 0
    assert len(read_groups(ds)[("chair", None)].prompts) == 12


def test_a_prompt_file_is_refused_before_any_work_and_keeps_writer_groups(run_cli, ds, tmp_path):
    write(tmp_path / "empty.json", "")
    line = refused(run_cli, ds, "generate", "--out", "ds", "--pipeline", "tiny", "--prompts", "empty.json")
    assert line == error(f"--prompts {Path('empty.json')}:1: not valid JSON (Expecting value)")
    write(tmp_path / "latin.csv", "class,prompt\nairliner,caf\xe9\n".encode("latin-1"))
    line = refused(run_cli, ds, "run", "--out", "ds2", "--cad", "a.glb", "--prompts", "latin.csv")
    assert line == error("--prompts latin.csv:2: not UTF-8 text")
    line = refused(run_cli, ds, "generate", "--out", "ds", "--prompts", "nope.csv")
    assert line == error("--prompts nope.csv: no such file")
    append_groups(ds, [PromptGroup("n02690373", None, ("an airliner",), ("llm:k=0",), writer="llm")])
    write(tmp_path / "mine.json", json.dumps({"airliner": ["my {class}"]}))
    line = refused(run_cli, ds, "generate", "--out", "ds", "--pipeline", "tiny", "--prompts", "mine.json")
    assert line.startswith(
        "dst3d: error: --prompts file:mine.json: n02690373 already has 1 prompts from the llm writer"
    )
