"""`kcf --ray`: where the folds' workers go, how a lost one starts again, and end-to-end runs on a
local Ray instance (CPU), whose kcf.json must equal the local run's."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

from dst3d_addon import cli
from dst3d_addon.core.cluster import place_folds
from dst3d_addon.core.errors import SettingError
from dst3d_addon.kcf.run import KcfOptions, KcfPlan, KcfRun
from dst3d_addon.kcf.settings import KcfSettings
from tests.batch_script import ROOT, SCRIPT, batch_command, run_batch
from tests.kcf.kcf_helpers import render

QUICK = [
    "--images", "renders", "--folds", "2", "--epochs", "2", "--batch-size", "8", "--image-size", "32",
    "--backbone", "resnet-tiny", "--pretrained", "none", "--threads", "1", "--device", "cpu", "--quiet",
]  # fmt: skip
#: The batch runs' environment: a local Ray instance of their own, whatever cluster this machine has.
ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_USAGE_STATS_ENABLED": "0"}


def _without_timing(kcf: dict) -> dict:
    return {**kcf, "folds": [{k: v for k, v in f.items() if k != "timing"} for f in kcf["folds"]]}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- where the folds go (pure) ---


def test_a_fold_takes_a_gpu_when_the_cluster_has_them_and_the_device_allows():
    two_gpus = [{"CPU": 8, "GPU": 2}, {"CPU": 4}]
    p = place_folds(two_gpus, "cuda:1", None)
    assert (p.cpus, p.gpus, p.workers, p.device, p.threads) == (1, 1, 2, "cuda", None)
    assert place_folds(two_gpus, "auto", 2).device == "auto"
    # On the CPU: `threads` CPUs of one node each (2 fit on the 8-CPU node, 1 on the 4-CPU one).
    p = place_folds(two_gpus, "cpu", 3)
    assert (p.cpus, p.gpus, p.workers, p.threads) == (3, 0, 3, 3)
    p = place_folds([{"CPU": 2}], "auto", None)
    assert (p.cpus, p.gpus, p.workers, p.device, p.threads) == (1, 0, 2, "auto", 1)


@pytest.mark.parametrize(
    ("nodes", "device", "threads", "named"),
    [([{"CPU": 4}], "cuda", None, "device"), ([{"CPU": 4}, {"CPU": 2}], "cpu", 5, "threads")],
)
def test_a_placement_the_cluster_cannot_meet_names_the_option(nodes, device, threads, named):
    with pytest.raises(SettingError) as err:
        place_folds(nodes, device, threads)
    assert err.value.worded(lambda name: f"--{name}").startswith(f"--{named} ")


# --- a lost worker starts again (fake processes) ---


class _Lost:
    """A worker that reports `passes` image passes of its first fold, then ends as a lost one
    (`lost`) or with `code`; records the commands it was started with."""

    started: ClassVar[list[list[str]]] = []

    def __init__(self, command, log_path, *, inbox, lost=True, code=None, **_kwargs) -> None:
        self.command, self.log_path, self.inbox = list(command), Path(log_path), inbox
        self.lost, self.code = lost, code

    def start(self) -> None:
        _Lost.started.append(self.command)
        self.inbox.put((self, {"type": "batch", "n": 5}))
        self.inbox.put((self, None))

    def close_stdin(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def wait(self, timeout=None):
        return self.code

    def describe_end(self) -> str:
        return "was lost with its Ray actor (node 10.0.0.9)"


def _run(tmp_path: Path, **fake) -> tuple[KcfRun, int, list[dict]]:
    _Lost.started = []
    plan = KcfPlan(items=[], folds=[], fingerprint="f", pending=[0, 1], settings=KcfSettings(folds=2))
    seen: list[dict] = []
    run = KcfRun(
        tmp_path,
        plan.settings,
        plan,
        KcfOptions(python="python3"),
        lambda message: seen.append(dict(message)),
        process_factory=lambda *a, **k: _Lost(*a, **k, **fake),
        workers=2,
        retries=2,
    )
    return run, run.run(), seen


def test_a_fold_whose_worker_keeps_being_lost_fails_the_run_with_one_line(tmp_path):
    run, code, seen = _run(tmp_path)
    assert code == 1
    # Each fold has its own worker (the fold on its command line), started 1 + 2 times.
    assert sorted(c[-1] for c in _Lost.started) == ["0", "0", "0", "1", "1", "1"]
    restarts = [m for m in seen if m["type"] == "restart"]
    assert restarts[0] == {
        "type": "restart",
        "folds": [0],
        "how": "was lost with its Ray actor (node 10.0.0.9)",
        "passes": 5,
        "attempt": 1,
    }
    assert run.error is not None and "\n" not in run.error
    assert re.search(r"fold [01] \(python3\) was lost with its Ray actor .*3 times in a row; see ", run.error)
    assert run.log.name in ("kcf-worker-fold0.log", "kcf-worker-fold1.log")


def test_a_worker_that_fails_of_its_own_is_not_started_again(tmp_path):
    run, code, seen = _run(tmp_path, lost=False, code=1)
    assert code == 1 and sorted(c[-1] for c in _Lost.started) == ["0", "1"]
    assert not [m for m in seen if m["type"] == "restart"]
    assert run.error is not None and "times in a row" not in run.error


# --- end to end on a local Ray instance ---


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("kcfray") / "small", 16, 40)


@pytest.fixture(scope="module")
def local_run(dataset, tmp_path_factory) -> Path:
    """The dataset after a kcf run without --ray."""
    out = tmp_path_factory.mktemp("kcfray") / "local"
    shutil.copytree(dataset, out)
    result = run_batch("kcf", "--out", out, *QUICK, env=ENV)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def local_kcf(local_run) -> dict:
    """kcf.json of the run without --ray."""
    return json.loads((local_run / "kcf.json").read_text())


@pytest.mark.slow
def test_kcf_on_ray_gives_the_local_runs_kcf_json(dataset, local_kcf, tmp_path):
    out = tmp_path / "ray"
    shutil.copytree(dataset, out)
    result = run_batch("kcf", "--out", out, *QUICK, "--ray", "local", env=ENV)
    assert result.returncode == 0, result.stderr
    assert "dst3d kcf: on a local Ray instance" in result.stderr
    assert "a worker per fold" in result.stderr and "1 torch thread(s)" in result.stderr
    assert _without_timing(json.loads((out / "kcf.json").read_text())) == _without_timing(local_kcf)
    # Each fold had a worker (and a log) of its own, on the cluster.
    for fold in (0, 1):
        assert "actor pid" in (out / "logs" / f"kcf-worker-fold{fold}.log").read_text().splitlines()[0]


@pytest.mark.slow
def test_a_fold_whose_actor_is_killed_starts_again_with_the_same_result(
    dataset, local_run, local_kcf, tmp_path
):
    out = tmp_path / "killed"
    shutil.copytree(dataset, out)
    # Fold 1 is done (the local run's file): the run skips it and trains fold 0 alone.
    (out / "kcf").mkdir()
    shutil.copy(local_run / "kcf" / "fold_1.json", out / "kcf" / "fold_1.json")
    log = out / "logs" / "kcf-worker-fold0.log"
    err = tmp_path / "stderr.txt"
    with open(err, "wb") as handle:
        proc = subprocess.Popen(
            batch_command("kcf", "--out", out, *QUICK, "--ray", "local"),
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=handle,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        first = ""
        while "actor pid" not in first and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            first = log.read_text().split("\n", 1)[0] if log.exists() else ""
        found = re.search(r"actor pid (\d+)", first)
        assert found, f"no actor for fold 0 (log: {first!r}; {err.read_text()[-2000:]})"
        # Killed as soon as its worker starts: it cannot have trained its fold (torch alone takes longer).
        os.kill(int(found.group(1)), signal.SIGKILL)
        code = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = err.read_text()
    assert code == 0, text
    assert "1 to train, 1 already done" in text, text
    assert "the worker of fold(s) 0 was lost with its Ray actor" in text and "(retry 1)" in text, text
    assert log.read_text().count("actor pid") == 2  # started twice, in the same log
    assert _without_timing(json.loads((out / "kcf.json").read_text())) == _without_timing(local_kcf)


def test_an_address_where_no_cluster_answers_gives_one_line_and_writes_nothing(dataset, capsys):
    before = _snapshot(dataset)
    code = cli.main(["kcf", "--out", str(dataset), *QUICK, "--ray", "127.0.0.1:1"], SCRIPT)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--ray 127.0.0.1:1" in err and "no Ray cluster answers" in err
    assert _snapshot(dataset) == before


def test_without_ray_the_kcf_stage_never_imports_it(tmp_path):
    code = (
        "import sys; from dst3d_addon import cli; "
        f"code = cli.main(['kcf', '--out', {str(tmp_path / 'nowhere')!r}, '--device', 'cpu'], None); "
        "print(code, 'ray' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["2", "False"], result.stderr


@pytest.mark.parametrize("stage", [["filter", "--keep-fraction", "0.5"], ["report"]])
def test_filter_and_report_have_no_ray_option(stage, dataset, capsys):
    code = cli.main([stage[0], "--out", str(dataset), *stage[1:], "--ray", "local"], SCRIPT)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--ray" in err, err
