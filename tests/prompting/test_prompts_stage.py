"""The prompts stage end to end through tools/dst3d_batch.py: the LLM writer on the tiny random model
(its text is noise: these tests check the plumbing — seeds, batches, resume, fallbacks — not the
words), a catalogue run whose prompts name the class, and --prompts per model into generation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from dst3d_addon.core.generation_plan import load_generations
from dst3d_addon.core.prompt_table import PROMPTS_FILE, read_groups
from dst3d_addon.core.records import load_annotations
from tests.batch_script import SAMPLE, kill_group, run_batch, start_batch
from tests.prompting.prompt_helpers import fake_dataset

pytestmark = pytest.mark.slow

LLM = ("prompts", "--writer", "llm", "--llm", "tiny", "--device", "cpu", "--quiet")
TINY_GEN = ("--pipeline", "tiny", "--steps", "2", "--device", "cpu", "--quiet")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("env")
    return {
        **os.environ,
        "DST3D_CACHE": str(base / "dst3d-cache"),
        "HF_HOME": str(base / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


MANY = tuple((f"class{i}", None, f"m{i}", f"m{i}.glb") for i in range(6))


def test_the_tiny_model_answers_by_seed_alone_or_in_a_batch(env, monkeypatch):
    monkeypatch.setenv("DST3D_CACHE", env["DST3D_CACHE"])
    import torch

    from dst3d_addon.generation.worker.llm.model import load_llm, make_answer

    model, tokenizer, description = load_llm("tiny", torch.device("cpu"), torch.float32, None, print)
    assert description.startswith("tiny (LlamaForCausalLM")
    answer = make_answer(model, tokenizer, max_new_tokens=16, temperature=0.9, top_p=0.95)
    chat = [{"role": "user", "content": "Write 3 captions. Subject: airliner."}]
    batch = answer(chat, [11, 22, 33])
    assert batch == answer(chat, [11, 22, 33])  # the same seeds, the same answers
    assert answer(chat, [22]) == [batch[1]]  # a row's answer does not depend on the others
    assert len(set(batch)) == 3  # other seeds, other answers


def test_llm_stage_same_file_twice_and_resume_after_kill(env, tmp_path):
    args = ("--n", "4", "--max-answers", "3", "--batch-size", "3", "--max-new-tokens", "48")
    first = fake_dataset(tmp_path / "a", MANY, views=1)
    proc = run_batch(*LLM, "--out", first, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    data = (first / PROMPTS_FILE).read_bytes()
    groups = read_groups(first)
    assert len(groups) == 6 and all(g.writer == "llm" and g.asked == 3 for g in groups.values())
    assert all(sum(g.dropped.values()) > 0 for g in groups.values())  # noise: dropped, and counted
    assert "groups hold fewer than 4 prompts" in proc.stderr  # the cap is reported
    second = fake_dataset(tmp_path / "b", MANY, views=1)
    assert run_batch(*LLM, "--out", second, *args, env=env).returncode == 0
    assert (second / PROMPTS_FILE).read_bytes() == data  # the same file twice
    killed = fake_dataset(tmp_path / "c", MANY, views=1)
    proc = start_batch(*LLM, "--out", killed, *args, "--max-new-tokens", "160", env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (killed / PROMPTS_FILE).is_file():
        time.sleep(0.05)
    kill_group(proc)
    partial = len((killed / PROMPTS_FILE).read_bytes().splitlines())
    assert 1 <= partial < 6, "the kill came too late to test a resume"
    proc = run_batch(*LLM, "--out", killed, *args, "--max-new-tokens", "160", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"{6 - partial} to write, {partial} already done" in proc.stderr
    resumed = read_groups(killed)
    assert len(resumed) == 6 and all(g.asked == 3 for g in resumed.values())


def test_a_python_without_torch(env, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    out = fake_dataset(tmp_path / "ds", views=1)
    proc = run_batch(*LLM, "--out", out, "--python", bare / "bin" / "python", env=env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dst3d: error:")]
    assert len(errors) == 1 and str(bare / "bin" / "python") in errors[0] and "torch" in errors[0]
    assert not (out / PROMPTS_FILE).exists()
    auto = (
        "prompts",
        "--writer",
        "auto",
        "--llm",
        "tiny",
        "--n",
        "5",
        "--quiet",
        "--python",
        bare / "bin" / "python",
    )
    proc = run_batch(*auto, "--out", out, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "the LLM writer cannot run" in proc.stderr and "writing with the template writer" in proc.stderr
    assert {g.writer for g in read_groups(out).values()} == {"templates"}


def test_a_catalogue_run_names_its_classes_in_prompts(env, tmp_path):
    root = tmp_path / "objaverse"
    root.mkdir()
    uid = "8476c4170df24cf5bbe6967222d1a42d"
    shutil.copy(SAMPLE, root / f"{uid}.glb")
    catalogue = tmp_path / "models.csv"
    catalogue.write_text(
        f"synset,model,distance,azimuth,elevation,strength,sampling\nn02690373,{uid},2.5,0,0,1,1\n"
    )
    out = tmp_path / "ds"
    proc = run_batch(
        "render", "--cad-csv", catalogue, "--cad-root", root, "--views", 2, "--resolution", 64, "--out", out,
        "--quiet", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {a["class"]["name"] for a in load_annotations(out)} == {"airliner"}
    proc = run_batch("prompts", "--out", out, "--writer", "templates", "--n", 5, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_batch("generate", "--out", out, *TINY_GEN, "--images-per-view", 2, env=env)
    assert proc.returncode == 0, proc.stderr
    prompts = [g["prompt"] for g in load_generations(out)]
    assert len(prompts) == 4 and all("airliner" in p.lower() and "n02690373" not in p for p in prompts)
    group = read_groups(out)[("n02690373", None)]
    assert {p.removesuffix(group.suffix) for p in prompts} <= set(group.prompts)
    info = json.loads((out / "dataset.json").read_text())
    assert info["stages"]["generate"]["prompts_sha256"]


def test_prompt_file_per_model_into_generation(env, tmp_path):
    for name in ("jet_a", "jet_b"):
        shutil.copy(SAMPLE, tmp_path / f"{name}.glb")
    out = tmp_path / "ds"
    prompts = tmp_path / "prompts.csv"
    prompts.write_text(
        "class,model,prompt,negative_prompt\n"
        ",jet_a,a {class} at dawn,blurry\n"
        ",jet_a,a {class} at dusk,\n"
        "airliner,,an {class} in the rain,cartoon\n"
    )
    proc = run_batch(
        "run", "--cad", tmp_path / "jet_a.glb", "--cad", tmp_path / "jet_b.glb", "--class-name", "airliner",
        "--views", 2, "--resolution", 64, "--out", out, *TINY_GEN, "--images-per-view", 2, "--prompts", prompts,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    by_model: dict[str, set[tuple[str, str]]] = {"jet_a": set(), "jet_b": set()}
    for record in load_generations(out):
        by_model[record["id"].split("/")[1]].add((record["prompt"], record["negative_prompt"]))
    assert by_model["jet_a"] <= {("a airliner at dawn", "blurry"), ("a airliner at dusk", "blurry")}
    assert by_model["jet_b"] == {("an airliner in the rain", "cartoon")}
    groups = read_groups(out)
    assert groups[("airliner", "jet_a")].sources == ("file:prompts.csv",) * 2
    # the same command again: the same prompts.jsonl, so the same settings, nothing to do
    again = run_batch(
        "generate", "--out", out, *TINY_GEN, "--images-per-view", 2, "--prompts", prompts, env=env
    )
    assert again.returncode == 0 and "0 to generate, 8 already done" in again.stderr, again.stderr
