"""The render pool's `hold` and `on_view` (the pipelined `run` stage): with workers that answer at
once, no task goes out while `hold` says wait, the waiting workers go on once it lets them, and
every view is reported once."""

from __future__ import annotations

import queue
from pathlib import Path

from dst3d_addon.cli.render_pool import RenderRun
from dst3d_addon.core.progress import Progress
from dst3d_addon.core.render_plan import ModelJob, Shard, plan_render
from dst3d_addon.core.render_settings import RenderSettings
from dst3d_addon.core.sampling import Distance, SamplingSpec, parse_strategy


class InstantWorker:
    """A render worker that answers every message at once (`WorkerProcess`'s interface)."""

    sent_while_held = 0
    holding = staticmethod(lambda: False)

    def __init__(self, command, log_path, *, inbox: queue.Queue, **kwargs) -> None:
        self.inbox, self.log_path, self.pid = inbox, Path(log_path), 1

    def start(self, banner: str | None = None) -> None:
        pass

    def send(self, message: dict) -> None:
        if message["type"] == "init":
            self.inbox.put((self, {"type": "ready"}))
        elif message["type"] == "task":
            if InstantWorker.holding():
                InstantWorker.sent_while_held += 1
            model = ModelJob.from_dict(message["model"])
            for view in message["views"]:
                self.inbox.put((self, {"type": "view", "record": {"id": model.annotation_id(view)}}))
            self.inbox.put((self, {"type": "task_done"}))
        elif message["type"] == "exit":
            self.inbox.put((self, None))

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def close_stdin(self) -> None:
        pass

    def stop(self, grace: float = 10.0) -> int:
        return 0


def test_hold_keeps_idle_workers_waiting_until_it_lets_them_go(tmp_path):
    settings = RenderSettings(64, 64, SamplingSpec(parse_strategy("1"), Distance("fit", 0.8), 0.0))
    model = ModelJob("airliner", "m", str(tmp_path / "m.glb"))
    plan = plan_render(tmp_path / "ds", settings.as_dict(), [model], 8, Shard(), tool_version="test")
    seen: list[str] = []
    asked = {"yes": 0}

    def holding() -> bool:
        return len(seen) >= 4 and asked["yes"] < 3

    def hold() -> bool:
        if holding():
            asked["yes"] += 1
            return True
        return False

    InstantWorker.holding = staticmethod(holding)
    run = RenderRun(plan, settings, 2, None, Progress(8, enabled=False), process_factory=InstantWorker)
    run.hold, run.on_view = hold, lambda record: seen.append(record["id"])
    run.run()
    assert InstantWorker.sent_while_held == 0
    assert asked["yes"] == 3 and run.waited > 0  # it held, then let them go
    assert sorted(seen) == [model.annotation_id(v) for v in range(8)] and run.written == 8
