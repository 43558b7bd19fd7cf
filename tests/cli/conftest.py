"""The in-process command-line tests: `run_cli(*argv)` calls cli.main in this process.

Each test runs in its own empty folder (relative paths in argv land there, and the messages that
print them stay the same on every machine) without $DST3D_WORKER_PYTHON, so the kcf stage's
default worker Python is this one.
"""

from __future__ import annotations

import pytest

from dst3d_addon import cli
from tests.cli.cli_helpers import SCRIPT


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """`run_cli(*argv) -> (exit code, stderr lines)`; also checks that nothing went to stdout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DST3D_WORKER_PYTHON", raising=False)

    def run(*argv: str) -> tuple[int, list[str]]:
        code = cli.main(list(argv), SCRIPT)
        out, err = capsys.readouterr()
        assert out == "", f"stdout: {out!r}"
        return code, err.splitlines()

    return run
