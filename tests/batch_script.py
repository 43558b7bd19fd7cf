"""Run tools/dst3d_batch.py from the tests as a user would: to the end, or started and then killed.

By default the script runs in this Python (the bpy module); with `blender=PATH` it runs in that
Blender binary as `blender -b --factory-startup -noaudio -P tools/dst3d_batch.py -- ARGS`.

`start_batch` puts the script in a new session, so its process group holds the script and the
workers that stay in its group (generation, KCF). The render workers start sessions of their own
(Ctrl-C reaches only the parent, which stops them), so killing the group alone would leave them
running: `kill_group` also kills every process below the script, found through /proc, and
`survivors` tells whether any of them is still running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "dst3d_batch.py"
SAMPLE = ROOT / "assets" / "sample" / "airliner.glb"


def batch_command(*args: object, blender: str | None = None) -> list[str]:
    """`python tools/dst3d_batch.py ARGS...` with this Python, or the same through a Blender binary
    (each argument passed through str)."""
    if blender is not None:
        return [blender, "-b", "--factory-startup", "-noaudio", "-P", str(SCRIPT), "--", *map(str, args)]
    return [sys.executable, str(SCRIPT), *map(str, args)]


def run_batch(
    *args: object,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    blender: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the batch script to its end in the project root; returns it with its text output."""
    return subprocess.run(
        batch_command(*args, blender=blender),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=None if env is None else dict(env),
    )


def start_batch(
    *args: object, env: Mapping[str, str] | None = None, blender: str | None = None
) -> subprocess.Popen[bytes]:
    """Start the batch script in a session (and process group) of its own, output discarded."""
    return subprocess.Popen(
        batch_command(*args, blender=blender),
        cwd=ROOT,
        env=None if env is None else dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class ProcessId(NamedTuple):
    """A process as /proc names it: its pid and its start time (a reused pid has another one)."""

    pid: int
    start: int


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process from /proc/PID/stat; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ... starttime
    return int(fields[1]), fields[0], int(fields[19])


def descendants(pid: int) -> list[ProcessId]:
    """Every process below `pid` (children, their children, ...), from the parent ids in /proc."""
    children: dict[int, list[ProcessId]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(ProcessId(int(entry.name), stat[2]))
    found: list[ProcessId] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def kill_group(proc: subprocess.Popen) -> list[ProcessId]:
    """SIGKILL a script from `start_batch`, its process group and every process below it (each
    with its own group: the render workers have sessions of their own); waits for the script and
    returns the processes below it that were sent the signal.

    The group is stopped first, so that the script starts no new worker while its children are
    looked up.
    """
    own = os.getpgrp()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGSTOP)
    below = descendants(proc.pid)
    groups = {proc.pid}
    for child in below:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(child.pid))  # a render worker leads its own group
    for group in groups - {own}:  # never this test process' own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    proc.wait()
    return below


def survivors(processes: list[ProcessId], timeout: float = 10) -> list[ProcessId]:
    """The processes still running after up to `timeout` seconds (a zombie has ended)."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for p in processes:
            stat = _stat(p.pid)
            if stat is not None and stat[2] == p.start and stat[1] not in ("Z", "X"):
                running.append(p)
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.05)
