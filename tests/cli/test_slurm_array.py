"""tools/slurm_array.sh, run with a fake `python` that records its arguments: the shard each array
task passes to render and generate, the options it passes through, and its refusals."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "slurm_array.sh"


@pytest.fixture
def run_task(tmp_path):
    """`run_task(args, **env) -> (CompletedProcess, [argv of each python call])`."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    # one line per call, its arguments separated by tabs; exit with $FAKE_STATUS_<stage> if set
    fake.write_text(
        '#!/usr/bin/env bash\n(IFS=$\'\\t\'; echo "$*") >> "$FAKE_LOG"\nvar="FAKE_STATUS_$2"\nexit "${!var:-0}"\n'
    )
    fake.chmod(0o755)

    def run(args: list[str], **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "DST3D_"))}
        environ.update(PATH=f"{fake.parent}{os.pathsep}{environ['PATH']}", FAKE_LOG=str(log), **env)
        done = subprocess.run(
            ["bash", str(SCRIPT), *args], env=environ, capture_output=True, text=True, timeout=60
        )
        calls = [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []
        log.unlink(missing_ok=True)
        return done, calls

    return run


TASK_3_OF_8 = {
    "SLURM_ARRAY_TASK_ID": "3",
    "SLURM_ARRAY_TASK_COUNT": "8",
    "SLURM_CPUS_PER_TASK": "4",
    "SLURM_SUBMIT_DIR": "/repo",
}


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_task_3_of_8_renders_then_generates_shard_3_of_8(run_task):
    done, calls = run_task(
        ["/shared/out", "--cad", "car one.glb", "--views", "2500", "--", "--images-per-view", "2"],
        **TASK_3_OF_8,
    )
    assert done.returncode == 0, done.stderr
    assert calls == [
        [
            "/repo/tools/dst3d_batch.py",
            "render",
            "--out",
            "/shared/out",
            "--shard",
            "3/8",
            "--workers",
            "4",
            "--cad",
            "car one.glb",
            "--views",
            "2500",
        ],
        [
            "/repo/tools/dst3d_batch.py",
            "generate",
            "--out",
            "/shared/out",
            "--shard",
            "3/8",
            "--images-per-view",
            "2",
        ],
    ]


def test_a_task_resubmitted_alone_keeps_its_shard_with_dst3d_shards(run_task):
    env = {**TASK_3_OF_8, "SLURM_ARRAY_TASK_COUNT": "1", "DST3D_SHARDS": "8"}
    done, calls = run_task(["/shared/out", "--cad", "a.glb"], **env)
    assert done.returncode == 0, done.stderr
    assert [call[call.index("--shard") + 1] for call in calls] == ["3/8", "3/8"]


def test_a_task_outside_the_shards_is_refused_before_anything_runs(run_task):
    done, calls = run_task(["/shared/out"], **{**TASK_3_OF_8, "SLURM_ARRAY_TASK_ID": "8"})
    assert done.returncode == 2
    assert "not in 0..7" in done.stderr
    assert calls == []


def test_failed_models_still_generate_but_the_task_fails(run_task):
    done, calls = run_task(["/shared/out", "--cad", "a.glb"], FAKE_STATUS_render="1", **TASK_3_OF_8)
    assert [call[1] for call in calls] == ["render", "generate"]
    assert done.returncode == 1


def test_a_bad_render_option_stops_before_generate(run_task):
    done, calls = run_task(["/shared/out", "--cad", "a.glb"], FAKE_STATUS_render="2", **TASK_3_OF_8)
    assert [call[1] for call in calls] == ["render"]
    assert done.returncode == 2
