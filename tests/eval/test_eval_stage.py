"""The eval stage end to end (CPU, resnet-tiny at 32 px): it trains, tests and reports per class;
neither source is written to; a rerun has nothing to do; a PASCAL3D+ export of the test set tests
the same as the set itself; --init starts from an eval's weights; a killed run resumes after its
last finished epoch and ends with the same predictions; bad input and a worker Python without
torch are one line."""

from __future__ import annotations

import json
import os
import time

import pytest

from dst3d_addon import cli
from dst3d_addon.core.weights import read_header
from dst3d_addon.eval.results import CHECKPOINT, CONFUSION, MODEL, PREDICTIONS, RESULTS
from tests.batch_script import SCRIPT, kill_group, run_batch, start_batch, survivors
from tests.eval.eval_helpers import pascal3d
from tests.export.export_helpers import digest_tree

QUICK = [
    "--train-images", "renders", "--backbone", "resnet-tiny", "--image-size", "32", "--epochs", "2",
    "--batch-size", "4", "--optimizer", "adamw", "--lr", "0.003", "--threads", "1", "--device", "cpu",
]  # fmt: skip


def both_digests(train, test) -> dict[str, str]:
    return {**digest_tree(train), **{f"test/{k}": v for k, v in digest_tree(test).items()}}


@pytest.mark.slow
def test_eval_trains_tests_and_reports_per_class(sources, sources_digest, tmp_path):
    train, test = sources
    to = tmp_path / "ev"
    proc = run_batch("eval", "--train", train, "--test", test, "--test-images", "renders", *QUICK, "--to", to)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        f"dst3d eval: train on 16 objects (1 class; renders of {train}), test on 6 (1 class; renders of {test}); "
        f"2 of 2 epochs to train -> {to}"
    )
    assert any(line.startswith("dst3d eval: airliner: 6 objects, Acc@pi/6 ") for line in lines)
    results = json.loads((to / RESULTS).read_text())
    assert set(results["classes"]) == {"airliner"} and results["overall"]["images"] == 6
    assert set(results["overall"]["accuracy"]) == {"pi_6", "pi_18"}
    assert len(results["images"]) == 6 and len(results["train_loss"]) == 2
    assert (to / CONFUSION).is_file() and not (to / CHECKPOINT).exists()
    meta = read_header(to / MODEL).metadata
    assert (meta["backbone"], meta["epoch"], meta["fingerprint"]) == (
        "resnet-tiny",
        "2",
        results["fingerprint"],
    )
    assert both_digests(train, test) == sources_digest  # neither source is written to

    # A rerun has nothing to do: it starts no worker and the results stay the same file.
    before = (to / RESULTS).read_bytes()
    proc = run_batch("eval", "--train", train, "--test", test, "--test-images", "renders", *QUICK, "--to", to)
    assert proc.returncode == 0 and "already done" in proc.stderr.splitlines()[0]
    assert (to / RESULTS).read_bytes() == before
    # Stopped after the predictions: the results are made from them, with no worker (it would fail).
    (to / RESULTS).unlink()
    (to / CONFUSION).unlink()
    args = ["--test-images", "renders", *QUICK, "--to", to, "--python", "/bin/false"]
    proc = run_batch("eval", "--train", train, "--test", test, *args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((to / RESULTS).read_text()) == json.loads(before) and (to / CONFUSION).is_file()

    # The same test set exported in PASCAL3D+'s layout tests the same (same crops, same labels).
    p3d = tmp_path / "p3d"
    assert (
        cli.main(
            [
                "export",
                "--out",
                str(test),
                "--format",
                "pascal3d",
                "--images",
                "renders",
                "--to",
                str(p3d),
                "--quiet",
            ],
            SCRIPT,
        )
        == 0
    )
    to2 = tmp_path / "ev-p3d"
    proc = run_batch("eval", "--train", train, "--test", p3d, "--test-split", "train", *QUICK, "--to", to2)
    assert proc.returncode == 0, proc.stderr
    assert "PASCAL3D+ train of" in proc.stderr.splitlines()[0]
    other = json.loads((to2 / RESULTS).read_text())
    assert other["overall"]["accuracy"] == results["overall"]["accuracy"]
    # Predictions are bin centres: equal crops give the very same numbers.
    assert sorted(e["pred"] for e in other["images"]) == sorted(e["pred"] for e in results["images"])

    # --init: fine-tune from the first eval's weights.
    to3 = tmp_path / "ev-init"
    proc = run_batch(
        "eval", "--train", train, "--test", test, "--test-images", "renders", *QUICK, "--to", to3,
        "--init", to / MODEL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((to3 / RESULTS).read_text())["initialisation"] == f"init:{to / MODEL}"


@pytest.mark.slow
def test_a_killed_eval_resumes_after_its_last_epoch(sources, tmp_path):
    train, test = sources
    args = ["eval", "--train", train, "--test", test, "--test-images", "renders", *QUICK, "--epochs", "30"]
    cut = tmp_path / "cut"
    proc = start_batch(*args, "--to", cut, "--quiet")
    deadline = time.monotonic() + 240
    try:
        while not (cut / CHECKPOINT).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        below = kill_group(proc)  # the door and its worker
    assert survivors(below) == [], "a process of the killed run outlived the kill"
    done = int(read_header(cut / CHECKPOINT).metadata["epoch"])
    assert 1 <= done < 30 and not (cut / MODEL).exists()
    proc = run_batch(*args, "--to", cut)
    assert proc.returncode == 0, proc.stderr
    assert f"{30 - done} of 30 epochs to train" in proc.stderr.splitlines()[0]
    assert f"resuming after epoch {done}" in proc.stderr
    full = tmp_path / "full"
    assert run_batch(*args, "--to", full, "--quiet").returncode == 0
    a, b = (json.loads((d / PREDICTIONS).read_text()) for d in (cut, full))
    assert (a["pred"], a["scores"], a["train_loss"]) == (b["pred"], b["scores"], b["train_loss"])


def one_error(proc, code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0].removeprefix("dst3d: error: ")


def test_bad_input_is_one_line_and_touches_nothing(sources, sources_digest, tmp_path):
    train, test = sources
    to = tmp_path / "ev"
    cases = [
        (
            ["--train", train, "--test", test],  # the default --train-images is generated
            f"--train-images generated: {train} has no generated images (no generations.jsonl); run the "
            "generate stage first, or choose --train-images renders or control",
        ),
        (
            ["--train", train, "--train-images", "renders", "--test", test, "--test-split", "val"],
            f"--test-split: only a PASCAL3D+-layout folder has splits (--test {test} is a dst3d dataset)",
        ),
        (
            ["--train", train, "--train-images", "renders", "--test", train, "--test-images", "control"],
            f"--test {train}: 16 of its views are also in --train; test on other views (another split or dataset)",
        ),
        (
            ["--train", train, "--train-images", "renders", "--test", test, "--test-classes", "car"],
            f"--test-classes car: no view of {test} has these classes",
        ),
        (
            ["--train", train, "--train-images", "renders", "--test", test, "--to", train / "eval"],
            f"--to {train / 'eval'}: inside the dataset {train}; choose a folder outside it",
        ),
    ]
    for args, message in cases:
        proc = run_batch("eval", *args, "--to", to) if "--to" not in args else run_batch("eval", *args)
        assert one_error(proc) == message
        assert not to.exists()
    assert both_digests(train, test) == sources_digest


def test_a_worker_python_without_torch_is_one_line(sources, tmp_path):
    train, test = sources
    blocker = tmp_path / "blocker"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    to = tmp_path / "ev"
    proc = run_batch(
        "eval",
        "--train",
        train,
        "--test",
        test,
        "--test-images",
        "renders",
        *QUICK,
        "--to",
        to,
        "--quiet",
        env=env,
    )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1, proc.stderr
    assert (
        lines[-1].startswith("dst3d: error: --python ") and "cannot import torch (no torch here)" in lines[-1]
    )


def test_a_pascal3d_source_without_scipy_is_one_line_naming_it(tmp_path):
    train, test = pascal3d(tmp_path / "tr", split="train"), pascal3d(tmp_path / "te", names=("c", "d"))
    blocker = tmp_path / "blocker"
    (blocker / "scipy").mkdir(parents=True)
    (blocker / "scipy" / "__init__.py").write_text("raise ImportError('no scipy here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    proc = run_batch("eval", "--train", train, "--test", test, "--to", tmp_path / "ev", env=env)
    message = one_error(proc, code=1)
    assert message.startswith(
        "reading PASCAL3D+ annotations needs the Python package scipy, which this Python ("
    )
    assert not (tmp_path / "ev").exists()
