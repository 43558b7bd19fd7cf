"""Ray clusters on 127.0.0.1 for the tests: a head node and more nodes, made and stopped here.

Each node is `ray start --block` in a process group of its own, so a test can stop one node (a lost
node) or the whole cluster without touching any other Ray on the machine (`ray stop` would). The
nodes share a random token (Ray's token authentication) that `env` passes to the commands run
against the cluster. A node may declare a GPU it does not have (`gpus=1`): generation actors then
schedule there and run the tiny pipeline on the CPU. A node may run under a prefix command
(`unshare` to give it its own view of the file system).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestCluster:
    """A Ray cluster of processes this test session started (see the module)."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        # Unix socket paths must stay short: a temporary folder directly under /tmp.
        self.temp = Path(tempfile.mkdtemp(prefix="dr", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "RAY_USAGE_STATS_ENABLED": "0",
            # A node that stops answering is called dead after about 3 s, not Ray's default 30.
            "RAY_health_check_initial_delay_ms": "1000",
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
        }
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def _start(self, words: list[str], prefix: Sequence[str] = ()) -> subprocess.Popen:
        log = self.temp / f"node{len(self.nodes)}.log"
        self.logs.append(log)
        with open(log, "wb") as handle:
            process = subprocess.Popen(
                [
                    *prefix,
                    RAY,
                    "start",
                    "--block",
                    "--disable-usage-stats",
                    "--node-ip-address",
                    "127.0.0.1",
                    *words,
                ],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.nodes.append(process)
        return process

    def start_head(self, cpus: int = 2, gpus: int = 0) -> None:
        self._start(
            [
                *("--head", "--port", str(self.port), "--num-cpus", str(cpus), "--num-gpus", str(gpus)),
                *("--include-dashboard", "false", "--temp-dir", str(self.temp)),
            ]
        )
        self.wait_for(1)

    def add_node(self, cpus: int = 1, gpus: int = 0, prefix: Sequence[str] = ()) -> subprocess.Popen:
        """Start one more node and wait until the cluster counts it."""
        process = self._start(
            [
                *("--address", self.address, "--num-cpus", str(cpus), "--num-gpus", str(gpus)),
                *(
                    "--dashboard-agent-listen-port",
                    str(free_port()),
                    "--metrics-export-port",
                    str(free_port()),
                ),
                *(
                    "--runtime-env-agent-port",
                    str(free_port()),
                    "--dashboard-agent-grpc-port",
                    str(free_port()),
                ),
            ],
            prefix,
        )
        self.wait_for(len(self.nodes))
        return process

    def alive_nodes(self) -> int:
        """Nodes the cluster counts alive (asked with `ray list nodes`-free Python: a tiny driver)."""
        code = (
            "import ray,sys;ray.init(address=sys.argv[1],log_to_driver=False,logging_level=40);"
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, self.address],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = result.stdout.strip().splitlines()
        return int(lines[-1]) if result.returncode == 0 and lines else -1

    def wait_for(self, nodes: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, log in zip(self.nodes, self.logs, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"ray start ended ({process.returncode}): {log.read_text()[-2000:]}")
            if self.alive_nodes() >= nodes:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test cluster did not reach {nodes} nodes in {timeout} s")

    @staticmethod
    def stop_node(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Stop one node (its whole process group; by default as a lost machine stops: at once)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for process in reversed(self.nodes):
            self.stop_node(process)
        # Ray's processes leave their own groups at times: kill whatever still names the temp dir.
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if str(self.temp).encode() in command:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(entry.name), signal.SIGKILL)
        shutil.rmtree(self.temp, ignore_errors=True)
