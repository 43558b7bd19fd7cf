"""The render pool when its workers end with views in hand (cli/render_pool.py), with fake workers.

On a cluster (`retries` > 0) a lost worker's views go to another worker, each view at most
`retries` more times, so a node lost with several workers on one model costs nothing, while a
view that kills every worker that takes it fails its model alone. Locally (`retries` 0) a worker
that ends with views in hand fails its model at once, as it always has.
"""

from __future__ import annotations

import io
import queue
from pathlib import Path
from typing import ClassVar

from dst3d_addon.cli.render_pool import RenderRun
from dst3d_addon.core.files import read_records, temp_name
from dst3d_addon.core.progress import Progress
from dst3d_addon.core.render_plan import ModelJob, Shard, plan_render
from dst3d_addon.core.render_settings import RenderSettings
from dst3d_addon.core.sampling import Distance, SamplingSpec, parse_strategy
from dst3d_addon.core.views import file_paths

MODELS = [ModelJob("c", "a", "a.obj"), ModelJob("c", "b", "b.obj")]
VIEWS = 12
SETTINGS = RenderSettings(64, 64, SamplingSpec(parse_strategy("1"), Distance("fit", 0.8), 0.0))


class FakeWorker:
    """A worker with `WorkerProcess`'s interface that renders instantly, and ends ("is lost")
    when it takes a view `kills` says to end on."""

    started: ClassVar[list[FakeWorker]] = []

    def __init__(self, command, log_path, *, inbox: queue.Queue, kills, out: Path, **_kwargs) -> None:
        self.inbox = inbox
        self.log_path = Path(log_path)
        self.kills = kills
        self.out = out
        self.ended = False
        FakeWorker.started.append(self)

    def start(self, banner: str | None = None) -> None:
        pass

    def send(self, message: dict) -> None:
        if self.ended:
            return
        kind = message["type"]
        if kind == "init":
            self.inbox.put((self, {"type": "ready"}))
        elif kind == "task":
            model = ModelJob.from_dict(message["model"])
            for view in message["views"]:
                annotation_id = model.annotation_id(view)
                if self.kills(annotation_id):
                    # half a file written, then the node goes away
                    depth = self.out / file_paths(annotation_id, True)["depth"]
                    depth.parent.mkdir(parents=True, exist_ok=True)
                    temp_name(depth).write_bytes(b"half")
                    self._end()
                    return
                self.inbox.put((self, {"type": "view", "record": {"id": annotation_id}}))
            self.inbox.put((self, {"type": "task_done"}))
        elif kind == "exit":
            self._end()

    def _end(self) -> None:
        self.ended = True
        self.inbox.put((self, None))

    def wait(self, timeout: float | None = None) -> int | None:
        return None

    def close_stdin(self) -> None:
        pass

    def stop(self, grace: float = 10.0) -> int | None:
        self.ended = True
        return None

    def describe_end(self) -> str:
        return "was lost with its Ray actor (node 10.0.0.2)"


def run_pool(tmp_path: Path, kills, retries: int, workers: int = 3) -> tuple[RenderRun, list[str]]:
    FakeWorker.started = []
    plan = plan_render(tmp_path, {"seed": 0}, MODELS, VIEWS, Shard(), tool_version="t")
    progress = Progress(plan.total, enabled=False, stream=io.StringIO())

    def factory(command, log_path, **kwargs):
        return FakeWorker(command, log_path, kills=kills, out=tmp_path, **kwargs)

    run = RenderRun(
        plan, SETTINGS, workers, None, progress, process_factory=factory, retries=retries, threads=1
    )
    run.run()
    ids = [r["id"] for r in read_records(tmp_path / "annotations.jsonl")]
    return run, ids


def every_id() -> list[str]:
    return sorted(m.annotation_id(v) for m in MODELS for v in range(VIEWS))


def test_views_of_lost_workers_go_to_others_and_all_are_written(tmp_path):
    lost_once = {"c/a/000003", "c/a/000004", "c/b/000007"}
    seen: set[str] = set()

    def kills(annotation_id: str) -> bool:  # each of these ends the first worker that takes it
        if annotation_id in lost_once and annotation_id not in seen:
            seen.add(annotation_id)
            return True
        return False

    run, ids = run_pool(tmp_path, kills, retries=2)
    assert ids == every_id()  # each view once, in id order
    assert run.failed == {} and run.lost > 0
    assert len(FakeWorker.started) >= 3 + len(lost_once)  # a new worker for each lost one
    assert not list(tmp_path.rglob("*.tmp"))  # the lost workers' temporary files are gone


def test_many_workers_lost_at_once_on_one_model_cost_it_nothing(tmp_path):
    """Every worker ends on its first task: each view is lost once, which the tries allow."""
    first_task: set[int] = set()

    def kills(annotation_id: str) -> bool:
        worker = len(FakeWorker.started)
        if worker <= 3 and worker not in first_task:
            first_task.add(worker)
            return True
        return False

    run, ids = run_pool(tmp_path, kills, retries=1, workers=3)
    assert run.failed == {}
    assert ids == every_id()


def test_a_view_that_kills_every_worker_fails_its_model_alone(tmp_path):
    run, ids = run_pool(tmp_path, lambda annotation_id: annotation_id == "c/a/000005", retries=2)
    assert list(run.failed) == ["c/a"]
    assert run.failed["c/a"] == (
        "a.obj: the render worker was lost with its Ray actor (node 10.0.0.2) on this model "
        f"(a view of it, 3 times); see {tmp_path / 'logs'}/" + run.failed["c/a"].rsplit("/", 1)[1]
    )
    assert [i for i in ids if i.startswith("c/b/")] == [f"c/b/{v:06d}" for v in range(VIEWS)]
    assert "c/a/000005" not in ids


def test_locally_a_worker_that_ends_fails_its_model_at_once(tmp_path):
    run, ids = run_pool(tmp_path, lambda annotation_id: annotation_id == "c/b/000002", retries=0)
    assert list(run.failed) == ["c/b"] and run.lost == 0
    assert "(a view of it" not in run.failed["c/b"]
    assert len([i for i in ids if i.startswith("c/a/")]) == VIEWS
