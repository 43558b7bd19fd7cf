"""The worker pipe every worker kind speaks: framing, the worker's end (Channel) and the parent's end
(WorkerProcess), with a real child process."""

from __future__ import annotations

import sys
import textwrap
import time

import pytest

from dst3d_addon.core.worker_pipe import Channel, LineReader, WorkerProcess, describe_exit, encode
from dst3d_addon.generation.worker_env import package_path, worker_environment


def test_round_trip_with_partial_lines():
    data = encode({"type": "view", "record": {"id": "a/b/000001", "x": [1.5]}}) + encode(
        {"type": "task_done"}
    )
    reader = LineReader()
    assert reader.feed(data[:10]) == []
    messages = reader.feed(data[10:])
    assert [m["type"] for m in messages] == ["view", "task_done"]
    assert messages[0]["record"]["x"] == [1.5]
    with pytest.raises(ValueError):
        encode({"bad": float("nan")})


def test_lines_that_are_not_messages_come_back_marked():
    reader = LineReader()
    messages = reader.feed(b"Blender 4.5 (hash abc)\n[1, 2]\n" + encode({"type": "ready"}))
    assert messages == [
        {"type": "garbled", "line": "Blender 4.5 (hash abc)"},
        {"type": "garbled", "line": "[1, 2]"},
        {"type": "ready"},
    ]


def test_channel_writes_whole_lines(tmp_path):
    path = tmp_path / "out"
    with open(path, "wb") as stream:
        channel = Channel(stream)
        channel.send({"type": "a", "n": 1})
        channel.send({"type": "b"})
    assert LineReader().feed(path.read_bytes()) == [{"type": "a", "n": 1}, {"type": "b"}]


WORKER = textwrap.dedent(
    """
    import sys
    print("printed before the take-over")
    from dst3d_addon.core.worker_pipe import Channel
    channel = Channel.take_stdout()
    print("printed after the take-over goes to the log")
    for line in sys.stdin:
        if line.strip() == "stop":
            break
        channel.send({"type": "echo", "line": line.strip()})
    if len(sys.argv) > 1 and sys.argv[1] == "hang":
        import time
        time.sleep(60)
    sys.exit(3)
    """
)


def _messages(process: WorkerProcess, timeout: float = 30) -> list:
    """Every message of `process` until its end (None)."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, message = process.inbox.get(timeout=deadline - time.monotonic())
        if message is None:
            return got
        got.append(message)
    raise AssertionError("the worker did not end")


def test_worker_process_messages_log_and_exit(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    log = tmp_path / "logs" / "worker.log"
    process = WorkerProcess([sys.executable, str(script)], log, env=worker_environment(), cwd=package_path())
    process.start(banner="test worker")
    process.send({"type": "ignored"})
    process.close_stdin()
    messages = _messages(process)
    assert messages[0] == {"type": "garbled", "line": "printed before the take-over"}
    assert messages[1:] == [{"type": "echo", "line": '{"type":"ignored"}'}]
    assert process.wait(timeout=10) == 3
    assert describe_exit(3) == "exited with code 3"
    text = log.read_text()
    assert text.startswith("--- test worker ") and "printed after the take-over goes to the log" in text
    assert process.log_tail() == "printed after the take-over goes to the log"
    process.send({"type": "after the end"})  # never raises


def test_stop_ends_a_worker_that_does_not_listen(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    process = WorkerProcess(
        [sys.executable, str(script), "hang"],
        tmp_path / "w.log",
        env=worker_environment(),
        cwd=package_path(),
    )
    process.start()
    process.send({"type": "x"})
    process.process.stdin.write(b"stop\n")
    process.process.stdin.flush()
    assert process.inbox.get(timeout=30)[1]["type"] == "garbled"
    assert process.inbox.get(timeout=30)[1] == {"type": "echo", "line": '{"type":"x"}'}
    start = time.monotonic()
    code = process.stop(grace=0.5)  # it sleeps after "stop": SIGTERM ends it
    assert code is not None and code < 0 and not process.alive
    assert describe_exit(code).startswith("was killed by signal")
    assert time.monotonic() - start < 10
    assert _messages(process) == []
