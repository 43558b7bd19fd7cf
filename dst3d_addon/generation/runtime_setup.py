"""The managed worker environment: set it up, or check an existing Python (no bpy, no torch here).

The managed environment is a venv in the extension's user folder with torch (CUDA or CPU build)
and the packages `worker_env` lists. Setting it up takes minutes, so it runs as a `StepJob`: each
step is a subprocess, `poll()` starts the next one when the last has ended and never blocks, so
Blender's modal operator polls it from a timer and a test drives it step by step. The operator
passes in the paths and Blender's online setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import Dst3dError
from .worker_env import OPTIONAL_MODULES, RUNTIME_MODULES, WORKER_PACKAGES

#: torch builds: the package index of each (macOS takes PyPI's own build, which has MPS).
TORCH_BUILDS: dict[str, str] = {
    "cuda": "https://download.pytorch.org/whl/cu128",
    "cpu": "https://download.pytorch.org/whl/cpu",
}

#: Printed by the check step: one JSON object with the versions and the devices.
_CHECK_CODE = (
    "import importlib, json\n"
    "out = {}\n"
    f"for name in {RUNTIME_MODULES + OPTIONAL_MODULES!r}:\n"
    "    try:\n"
    "        out[name] = getattr(importlib.import_module(name), '__version__', '?')\n"
    "    except Exception as exc:\n"
    "        out[name] = None\n"
    "        out.setdefault('errors', {})[name] = f'{type(exc).__name__}: {exc}'.splitlines()[0]\n"
    "if out.get('torch'):\n"
    "    import torch\n"
    "    out['cuda'] = bool(torch.cuda.is_available())\n"
    "    out['mps'] = bool(getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available())\n"
    "print('DST3D_CHECK ' + json.dumps(out))\n"
)

CHECK_PREFIX = "DST3D_CHECK "


class RuntimeSetupError(Dst3dError):
    """The worker's Python cannot be set up or used; the message says why and what to do."""


@dataclass(frozen=True)
class Step:
    """One subprocess of a job: a title for the progress display, its command, its share of the time."""

    title: str
    command: tuple[str, ...]
    weight: float = 1.0


def env_python(env_dir: str | os.PathLike) -> Path:
    """The interpreter of a venv folder (Scripts\\python.exe on Windows, bin/python elsewhere)."""
    env_dir = Path(env_dir)
    if sys.platform == "win32":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def check_step(python: str | os.PathLike) -> Step:
    """The step that imports the required modules in `python` and prints their versions."""
    return Step("Checking torch, diffusers and transformers", (str(python), "-c", _CHECK_CODE), 1.0)


def setup_steps(
    env_dir: str | os.PathLike,
    torch_build: str,
    base_python: str | os.PathLike | None = None,
    packages: Sequence[str] = WORKER_PACKAGES,
    platform: str = sys.platform,
) -> list[Step]:
    """The steps that create the managed environment in `env_dir` and install the worker's packages."""
    if torch_build not in TORCH_BUILDS:
        raise RuntimeSetupError(f"torch build {torch_build!r}: use one of {', '.join(TORCH_BUILDS)}")
    python = str(env_python(env_dir))
    pip = (python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off")
    torch = (*pip, "torch")
    if platform != "darwin":  # macOS: PyPI's wheel is the only build (CPU + MPS)
        torch = (*torch, "--index-url", TORCH_BUILDS[torch_build])
    return [
        Step(
            "Creating the Python environment",
            (str(base_python or sys.executable), "-m", "venv", str(env_dir)),
            1,
        ),
        Step("Updating pip", (*pip, "--upgrade", "pip"), 1),
        Step(f"Installing torch ({torch_build.upper()} build)", torch, 12),
        Step("Installing diffusers, transformers, accelerate", (*pip, *packages), 5),
        check_step(python),
    ]


def parse_check(output: str) -> dict:
    """The check step's report from its output; RuntimeSetupError if missing or a module is absent."""
    for line in reversed(output.splitlines()):
        if line.startswith(CHECK_PREFIX):
            report = json.loads(line[len(CHECK_PREFIX) :])
            missing = [m for m in RUNTIME_MODULES if not report.get(m)]
            if missing:
                first = report.get("errors", {}).get(missing[0], "not installed")
                raise RuntimeSetupError(
                    f"the worker's Python lacks {', '.join(missing)} ({missing[0]}: {first}); "
                    "set up the managed environment or install them there"
                )
            return report
    raise RuntimeSetupError(f"the check printed no report: {last_line(output)}")


def describe_check(report: Mapping) -> str:
    """One line for the preferences: versions and the devices torch sees."""
    devices = ["CUDA" if report.get("cuda") else None, "MPS" if report.get("mps") else None]
    device = ", ".join(d for d in devices if d) or "CPU only"
    text = f"torch {report['torch']}, diffusers {report['diffusers']}, transformers {report['transformers']} ({device})"
    absent = [m for m in OPTIONAL_MODULES if not report.get(m)]
    return text + (f"; no {', '.join(absent)}: LoRA presets fall back" if absent else "")


def last_line(text: str) -> str:
    """The last non-empty line of a process's output (what a one-line error quotes)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "no output"
    return line if len(line) <= 240 else line[:237] + "..."


class StepJob:
    """Runs steps one after another as subprocesses; `poll()` advances it and never blocks.

    `state` is running, done, failed or cancelled; `progress` (0..1) counts finished steps by
    weight; `status` is the current step's title and its latest output line; `error` is one line
    naming the failed step, its exit status, its last output line and the log. All output goes
    to `log_path`.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        log_path: str | os.PathLike,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not steps:
            raise ValueError("StepJob needs at least one step")
        self.steps = list(steps)
        self.log_path = Path(log_path)
        self.env = dict(os.environ if env is None else env)
        self.state = "running"
        self.index = -1
        self.error: str | None = None
        self.output = ""  # the current step's output so far
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._offset = 0

    @property
    def done(self) -> bool:
        """Whether the job has ended (done, failed or cancelled)."""
        return self.state != "running"

    @property
    def progress(self) -> float:
        """The share of the work done (finished steps by weight)."""
        total = sum(s.weight for s in self.steps)
        finished = sum(s.weight for s in self.steps[: max(self.index, 0)])
        return 1.0 if self.state == "done" else finished / total

    @property
    def status(self) -> str:
        """What the job is doing, for the progress display."""
        if self.state == "done":
            return "Done"
        if self.state != "running":
            return self.error or self.state
        if self.index < 0:
            return "Starting"
        step = self.steps[self.index]
        latest = last_line(self.output) if self.output.strip() else ""
        return f"{step.title}: {latest}" if latest else step.title

    def poll(self) -> bool:
        """Read new output, start the next step when one has ended; True once the job has ended."""
        if self.done:
            return True
        if self._proc is None:
            self._start_next()
            return self.done
        self._read_output()
        code = self._proc.poll()
        if code is None:
            return False
        self._read_output()
        self._proc = None
        if code != 0:
            step = self.steps[self.index]
            self._finish(
                "failed",
                f"{step.title} failed (exit status {code}): {last_line(self.output)} (log: {self.log_path})",
            )
            return True
        if self.index + 1 == len(self.steps):
            self._finish("done", None)
            return True
        self._start_next()
        return self.done

    def wait(self, poll_interval: float = 0.05) -> None:
        """Poll until the job ends (for tests and scripts; Blender polls from a timer instead)."""
        import time

        while not self.poll():
            time.sleep(poll_interval)

    def cancel(self) -> None:
        """Stop the running step (the environment may be left half set up; run again to redo it)."""
        if self.done:
            return
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._read_output()
            self._proc = None
        self._finish("cancelled", "cancelled")

    def _start_next(self) -> None:
        self.index += 1
        self.output = ""
        step = self.steps[self.index]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed by _finish)
        self._log.write(f"\n$ {subprocess.list2cmdline(step.command)}\n".encode())
        self._log.flush()
        self._offset = self._log.tell()
        try:
            self._proc = subprocess.Popen(
                step.command,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        except OSError as exc:
            self._finish("failed", f"{step.title} could not start {step.command[0]}: {exc.strerror or exc}")

    def _read_output(self) -> None:
        with open(self.log_path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        self._offset += len(data)
        self.output += data.decode("utf-8", errors="replace")

    def _finish(self, state: str, error: str | None) -> None:
        self.state = state
        self.error = error
        if self._log is not None:
            self._log.close()
            self._log = None
