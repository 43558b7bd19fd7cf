"""runtime_setup: the managed environment's plan, and StepJob driven step by step (as a timer would)."""

import sys
import time
from pathlib import Path

import pytest

from dst3d_addon.generation.runtime_setup import (
    TORCH_BUILDS,
    RuntimeSetupError,
    Step,
    StepJob,
    check_step,
    env_python,
    parse_check,
    setup_steps,
)

PY = sys.executable


def _drive(job: StepJob, limit: float = 60.0) -> int:
    polls, deadline = 0, time.monotonic() + limit
    while not job.poll():
        polls += 1
        assert time.monotonic() < deadline, "job did not end"
        time.sleep(0.02)
    return polls


def test_setup_plan_installs_the_chosen_torch_build(tmp_path: Path) -> None:
    env = tmp_path / "env"
    steps = setup_steps(env, "cpu", base_python="/usr/bin/python3.11", platform="linux")
    assert steps[0].command == ("/usr/bin/python3.11", "-m", "venv", str(env))
    torch = next(s for s in steps if "torch" in s.command and "--index-url" in s.command)
    assert torch.command[0] == str(env_python(env)) and torch.command[-1] == TORCH_BUILDS["cpu"]
    rest = steps[3].command
    assert {"diffusers>=0.30", "transformers>=4.44", "accelerate>=0.33", "safetensors>=0.4"} <= set(rest)
    assert steps[-1].title.startswith("Checking")
    mac = setup_steps(env, "cuda", platform="darwin")
    assert all("--index-url" not in s.command for s in mac)  # PyPI's macOS build (MPS)
    with pytest.raises(RuntimeSetupError, match="torch build 'rocm'"):
        setup_steps(env, "rocm")


def test_job_runs_steps_in_order_with_progress(tmp_path: Path) -> None:
    out = tmp_path / "order.txt"
    code = f"open({str(out)!r}, 'a').write('{{}}'); print('line {{}}')"
    steps = [Step(f"step {i}", (PY, "-c", code.format(i, i)), weight=w) for i, w in enumerate((1, 3))]
    job = StepJob(steps, tmp_path / "log.txt")
    assert job.progress == 0.0 and job.status == "Starting"
    seen = set()
    while not job.poll():
        seen.add(round(job.progress, 2))
        time.sleep(0.01)
    assert job.state == "done" and job.error is None and job.progress == 1.0
    assert out.read_text() == "01"
    assert seen <= {0.0, 0.25}
    assert "line 1" in job.output and "$ " in (tmp_path / "log.txt").read_text()


def test_failed_step_gives_one_line_naming_it(tmp_path: Path) -> None:
    steps = [
        Step("Fine", (PY, "-c", "pass")),
        Step(
            "Installing torch",
            (PY, "-c", "import sys; print('ERROR: No matching distribution'); sys.exit(3)"),
        ),
        Step("Never", (PY, "-c", "raise SystemExit(9)")),
    ]
    job = StepJob(steps, tmp_path / "log.txt")
    _drive(job)
    assert job.state == "failed"
    assert job.error == (
        f"Installing torch failed (exit status 3): ERROR: No matching distribution (log: {tmp_path / 'log.txt'})"
    )
    assert "\n" not in job.error and job.status == job.error


def test_missing_program_and_cancel(tmp_path: Path) -> None:
    job = StepJob([Step("Creating", ("/no/such/python", "-m", "venv", "x"))], tmp_path / "log.txt")
    _drive(job)
    assert job.state == "failed" and job.error.startswith("Creating could not start /no/such/python")
    slow = StepJob([Step("Sleeping", (PY, "-c", "import time; time.sleep(60)"))], tmp_path / "log2.txt")
    slow.poll()
    t0 = time.monotonic()
    slow.cancel()
    assert slow.state == "cancelled" and slow.poll() is True and time.monotonic() - t0 < 10


def test_check_of_a_python_without_torch_says_what_is_missing(tmp_path: Path) -> None:
    env = tmp_path / "bare"
    job = StepJob(
        [Step("venv", (PY, "-m", "venv", "--without-pip", str(env))), check_step(env_python(env))],
        tmp_path / "log.txt",
    )
    _drive(job)
    assert job.state == "done"
    with pytest.raises(
        RuntimeSetupError,
        match=r"lacks torch, diffusers, transformers, safetensors, numpy, cv2, accelerate \(torch: ",
    ):
        parse_check(job.output)
    with pytest.raises(RuntimeSetupError, match="the check printed no report: boom"):
        parse_check("boom\n")
