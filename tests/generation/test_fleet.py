"""Generate runs that follow a render, alone and as a fleet over parts of the shard, driven with a
client that answers at once (no worker): views fed as they come are each generated once, by the
run whose part owns them, nothing ends before `end_feed`, and generations.jsonl ends in order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dst3d_addon.core.cluster import sub_shard
from dst3d_addon.core.files import read_records
from dst3d_addon.core.generation_plan import generation_order
from dst3d_addon.core.generation_settings import settings_from_preset
from dst3d_addon.core.prompts import PromptSource
from dst3d_addon.core.render_plan import Shard
from dst3d_addon.generation.client import Job
from dst3d_addon.generation.fleet import GenerateFleet
from dst3d_addon.generation.run import GenerateRun, RunOptions
from tests.batch_script import SAMPLE, run_batch

pytestmark = pytest.mark.slow  # a real render makes the annotations


class InstantClient:
    """WorkerClient's interface as GenerateRun uses it; every job is done when it is made."""

    def __init__(self) -> None:
        self.hello: dict | None = None
        self.python = "instant"
        self.alive = False
        self.batches: list[list[str]] = []

    def start(self) -> None:
        self.alive, self.hello = True, {"torch": "none", "devices": []}

    def pump(self, timeout: float = 0) -> None:
        pass

    def _done(self, kind: str, result: dict) -> Job:
        job = Job(self, len(self.batches) + 1, kind)
        job.result, job.state = result, "done"
        return job

    def load(self, pipeline: dict, *, fallback: dict | None = None) -> Job:
        return self._done("load", {"model": {"base": "tiny", "controlnet": "tiny"}})

    def generate(self, pipeline: dict, settings: dict, items: list[dict], **kwargs) -> Job:
        self.batches.append([item["output"] for item in items])
        return self._done("generate", {"settings": dict(settings)})

    def release(self) -> None:
        self.alive = False


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fleet") / "ds"
    proc = run_batch("render", "--cad", SAMPLE, "--views", "6", "--resolution", "64", "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


def test_following_runs_take_fed_views_once_and_end_in_order(rendered, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(rendered, out)
    annotations = out / "annotations.jsonl"
    records = read_records(annotations)
    annotations.write_text("".join(json.dumps(r) + "\n" for r in records[:2]))  # rendered so far
    settings = settings_from_preset("paper", pipeline="tiny", steps=2)
    prompts = PromptSource.load(settings.prompt, settings.negative_prompt)
    clients = [InstantClient(), InstantClient()]
    runs = [
        GenerateRun(
            out,
            settings,
            prompts,
            RunOptions(images_per_view=2, batch_size=3, shard=sub_shard(Shard(), k, 2)),
            clients[k],  # type: ignore[arg-type]
            following=True,
        )
        for k in range(2)
    ]
    fleet = GenerateFleet(runs)
    fleet.feed(records[1:4])  # one view the file has already, two new ones
    for _ in range(5):
        assert fleet.poll(0) is False  # more may come
    assert fleet.written == fleet.total == 8
    with open(annotations, "a") as handle:  # the render goes on
        handle.writelines(json.dumps(r) + "\n" for r in records[4:])
    fleet.feed(records[3:])
    fleet.end_feed()
    assert fleet.poll(1.0) is True and fleet.state == "done"
    written = read_records(out / "generations.jsonl")
    keys = [(r["id"], r["k"]) for r in written]
    assert sorted(keys) == sorted((r["id"], k) for r in records for k in range(2))  # each once
    assert written == sorted(written, key=generation_order)
    for run, client in zip(runs, clients, strict=True):  # each run made its part's images only
        outputs = [Path(o) for batch in client.batches for o in batch]
        mine = [out / r["file"] for r in written if run.options.shard.owns(r["id"])]
        assert sorted(outputs) == sorted(mine)
