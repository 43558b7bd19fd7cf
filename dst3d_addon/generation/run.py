"""The generate stage's run (no torch): plan the images a dataset still lacks, feed them to the
worker in batches, write their records. The batch script and Blender's Export operator both use it.

`GenerateRun` is a state machine advanced by `poll()`, which never blocks for long, so Blender can
drive it from a timer and a test step by step; `run()` drives it to the end for the batch script.
Rendered data is never touched: images are written next to it (atomically, by the worker) and a
record is appended only once its image is complete. Out of memory halves the batch and retries; a
crashed worker is restarted once per batch. A completed run puts generations.jsonl in
(id, k) order, so the file does not depend on batches, resumes or how many runs wrote it.

A run `following` a render (the `run` stage on a cluster) plans the views already in
annotations.jsonl when it starts, then takes the views the render reports (`feed`) as they come,
and ends once `end_feed` says no more will.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.dataset import (
    ALLOW_MIXED,
    ANNOTATIONS,
    DATASET_JSON,
    GENERATIONS,
    OUT,
    Dataset,
    describe_diff,
    settings_diff,
)
from ..core.errors import DatasetError, setting
from ..core.files import iter_records
from ..core.generation_plan import (
    GenerationItem,
    check_images_per_view,
    completed_keys,
    generation_key,
    generation_record,
    iter_items,
    sort_generations,
)
from ..core.generation_settings import TINY, GenerationSettings
from ..core.prompt_table import load_prompt_table
from ..core.prompts import PromptSource
from ..core.records import iter_annotations
from ..core.render_plan import Shard
from .client import Job, WorkerClient, WorkerConfig
from .errors import GenerationError, MissingRuntime, MissingWeights, OutOfMemory, WorkerCrashed


@dataclass
class RunOptions:
    """How to run (none of these change the images)."""

    images_per_view: int = 1
    batch_size: int = 4
    device: str = "auto"
    allow_pickle: bool = False
    allow_mixed: bool = False
    shard: Shard = field(default_factory=Shard)
    base_config: str | None = None
    cache_dir: str | None = None
    preview_every: int = 0
    batching: str = "exact"


class Unavailable(GenerationError):
    """Generation cannot run here (no weights, no torch, no GPU): the rendered data is still fine."""

    kind = "unavailable"


def pipeline_request(settings: GenerationSettings, options: RunOptions) -> dict[str, Any]:
    """The worker's PipelineRequest (as a dict) for these settings."""
    model = settings.model_description()
    return {
        "base": model["base"] if settings.pipeline not in ("tiny",) else TINY,
        "controlnet": model["controlnet"],
        "family": model["family"],
        "scheduler": settings.scheduler,
        "dtype": settings.dtype,
        "device": options.device,
        "allow_pickle": options.allow_pickle,
        "lora": settings.lora,
        "cache_dir": options.cache_dir,
        "base_config": options.base_config,
    }


class Batcher:
    """Consecutive items in groups of at most `size`, never mixing image sizes in one group, taken
    from a stream of items as they are needed (so the plan never sits whole in memory)."""

    def __init__(self, items: Iterable[GenerationItem]) -> None:
        self._items: Iterator[GenerationItem] = iter(items)
        self._next: GenerationItem | None = None

    def take(self, size: int) -> list[GenerationItem]:
        """The next batch ([] once the stream has ended)."""
        batch: list[GenerationItem] = []
        while len(batch) < size:
            item = self._next if self._next is not None else next(self._items, None)
            self._next = None
            if item is None:
                break
            if batch and (item.width, item.height) != (batch[0].width, batch[0].height):
                self._next = item
                break
            batch.append(item)
        return batch

    def extend(self, items: Iterable[GenerationItem]) -> None:
        """Hand these items out after the others (views rendered since the run started)."""
        self._items = itertools.chain(self._items, items)

    def put_back(self, items: Sequence[GenerationItem]) -> None:
        """Hand these items out again first (a batch that did not fit in memory)."""
        rest = [self._next] if self._next is not None else []
        self._next = None
        self._items = itertools.chain(items, rest, self._items)


def batches(items: Iterable[GenerationItem], size: int) -> list[list[GenerationItem]]:
    """All of `Batcher(items)`'s batches (for a few items)."""
    batcher = Batcher(items)
    return list(iter(lambda: batcher.take(size), []))


class GenerateRun:
    """One generate stage over a dataset folder.

    States: "starting" (worker importing torch) -> "loading" (pipeline) -> "generating" -> "done",
    or "failed" (`error` set) / "unavailable" (`error` says what is missing; nothing was written).
    """

    def __init__(
        self,
        out: str | os.PathLike,
        settings: GenerationSettings,
        prompts: PromptSource,
        options: RunOptions,
        client: WorkerClient | None = None,
        *,
        log: Callable[[str], None] = lambda message: None,
        on_images: Callable[[int], None] = lambda n: None,
        on_step: Callable[[int, int], None] = lambda step, steps: None,
        following: bool = False,
    ) -> None:
        """`following`: more views come through `feed` until `end_feed` (annotations.jsonl may
        not exist yet); the run starts its worker at once and waits for them."""
        self.out = Path(out)
        self.following = following
        self._fed_views = following  # views may come twice (file and feed): hand each image out once
        self.settings = settings
        self.options = options
        self.log = log
        self.on_images = on_images
        self.on_step = on_step
        if not (self.out / ANNOTATIONS).is_file() and not following:
            raise DatasetError(f"{OUT} {self.out}: no {ANNOTATIONS} there; run the render stage first")
        # The dataset's prompt table (prompts.jsonl) joins the prompts given (dataset-format.md).
        self.prompts = prompts if prompts.table is not None else prompts.with_table(load_prompt_table(out))
        check_images_per_view(options.images_per_view)
        self.views: list[str] = []  # the ids of the views, in file order (the plan streams the rest)
        sizes: set[tuple[int, int]] = set()
        classes: set[tuple[str, str | None]] = set()
        for record in iter_annotations(self.out) if (self.out / ANNOTATIONS).is_file() else ():
            self.views.append(record["id"])
            sizes.add((record["camera"]["width"], record["camera"]["height"]))
            classes.add((record["class"]["name"], record["class"]["synset"]))
        self._warn_on_stretch(sizes)
        self._warn_on_uncaptioned(classes)
        self.client = client or WorkerClient(
            WorkerConfig(log_path=self.out / "logs" / f"generate-{os.getpid()}.log")
        )
        self._own_client = client is None
        self.request = pipeline_request(settings, options)
        self.state = "starting"
        self.error: GenerationError | None = None
        self.dataset: Dataset | None = None
        self.pending = Batcher(())
        self.total = 0
        self.skipped = 0
        self.written = 0
        self.batch_size = options.batch_size
        self.model: dict[str, Any] | None = None
        self._job: Job | None = None
        self._batch: list[GenerationItem] | None = None
        self._crash_retried = False
        self._fed: list[Mapping[str, Any]] = []  # views fed before the dataset was opened
        self._known: set[str] = set(self.views) if following else set()  # views planned (following)
        self._taken: set[str] = set()  # generation keys handed out (following only)
        self.started = time.monotonic()
        self.stage_settings = {
            **settings.as_dict(self.prompts.captions_digest, self.prompts.table_digest),
            "batching": options.batching,
        }
        self._check_settings()
        # Plan before starting anything: a finished shard costs no worker and no model load.
        self.owned = self._count(set())  # this shard's images, done or not
        self.total = self._count(completed_keys(Dataset(self.out, "generate", {})))
        self.skipped = self.owned - self.total
        if self.total == 0 and not following:
            self._finish()
        else:
            self.client.start()

    # ------------------------------------------------------------------------------ planning
    def _warn_on_stretch(self, sizes: set[tuple[int, int]]) -> None:
        """An explicit size of another aspect ratio stretches the control images: say so once."""
        width, height = self.settings.width, self.settings.height
        if width is None or height is None:
            return
        odd = [f"{w}x{h}" for w, h in sorted(sizes) if w * height != h * width]
        if odd:
            self.log(
                f"warning: {setting('width')}/{setting('height')} {width}x{height} has another aspect ratio than the control "
                f"images ({', '.join(odd[:3])}); they are stretched to it, and each annotation's camera "
                "(K, bbox) still describes its control image"
            )

    def _warn_on_uncaptioned(self, classes: set[tuple[str, str | None]]) -> None:
        """A caption file with no caption for a class of the dataset: say so, once per class."""
        for name in self.prompts.uncaptioned(classes):
            self.log(
                f"warning: {setting('captions')} {self.prompts.captions.path} has no caption for class {name!r}; "
                f"its images use the prompt template ({setting('prompt')})"
            )

    def _check_settings(self) -> None:
        """Refuse early (before any worker starts) a dataset generated with other settings."""
        info_path = self.out / DATASET_JSON
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # Dataset.open reports an unreadable dataset.json
        old = (info.get("stages") or {}).get("generate")
        if (
            old is None
            or self.options.allow_mixed
            or next(iter_records(self.out / GENERATIONS), None) is None
        ):
            return  # nothing generated yet binds the old settings
        new = json.loads(json.dumps(self.stage_settings))
        if old != new:
            raise DatasetError(
                f"{OUT} {self.out}: this dataset was generated with other settings "
                f"({describe_diff(settings_diff(old, new))}); pass {ALLOW_MIXED} to add to it anyway, "
                f"or choose a new {OUT}"
            )

    def _count(self, done: Container[str]) -> int:
        """This shard's images not in `done` (generation keys), counted from the ids alone."""
        k = self.options.images_per_view
        shard = self.options.shard
        return sum(
            1
            for view in self.views
            if shard.owns(view)
            for index in range(k)
            if generation_key(view, index) not in done
        )

    def plan(self, done: Container[str]) -> Iterator[GenerationItem]:
        """The images of this shard not in `done` (generation keys), as a stream (following a
        render: of the views there were when the run started; the others come through `feed`)."""
        annotations: Iterable[Mapping[str, Any]] = ()
        if (self.out / ANNOTATIONS).is_file():
            annotations = iter_annotations(self.out)
            if self.following:
                annotations = (a for a in annotations if a["id"] in self._known)
        return iter_items(
            annotations,
            self.settings,
            self.prompts,
            self.options.images_per_view,
            self.options.shard,
            done,
        )

    def _once(self, items: Iterable[GenerationItem]) -> Iterator[GenerationItem]:
        """`items` less those already handed out (a view both in the file and fed)."""
        for item in items:
            key = generation_key(item.annotation_id, item.k)
            if key not in self._taken:
                self._taken.add(key)
                yield item

    def feed(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Views the render has just written (annotation records): their images join the plan."""
        fresh = [r for r in records if r["id"] not in self._known and self.options.shard.owns(r["id"])]
        if not fresh or self.finished:
            return
        self._known.update(r["id"] for r in fresh)
        self.views.extend(r["id"] for r in fresh)
        self.owned += len(fresh) * self.options.images_per_view
        self.total += len(fresh) * self.options.images_per_view
        if self.dataset is None:
            self._fed.extend(fresh)
        else:
            self._plan_fed(fresh)

    def _plan_fed(self, records: Sequence[Mapping[str, Any]]) -> None:
        items = iter_items(
            records, self.settings, self.prompts, self.options.images_per_view, self.options.shard, ()
        )
        self.pending.extend(self._once(items))

    def end_feed(self) -> None:
        """No more views will come: the run ends once those it has are done."""
        self.following = False

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "unavailable")

    def _fail(self, error: GenerationError, state: str = "failed") -> None:
        self.error = error
        self.state = state
        self._job = None

    # ------------------------------------------------------------------------------ driving
    def poll(self, timeout: float = 0.0) -> bool:
        """Advance as far as the arrived messages allow (waiting up to `timeout` for one).

        Returns True once the run has finished (see `state`).
        """
        if self.finished:
            return True
        try:
            self._advance(timeout)
        except GenerationError as exc:
            self._fail(
                exc,
                "unavailable" if isinstance(exc, MissingWeights | MissingRuntime | Unavailable) else "failed",
            )
        except DatasetError as exc:
            self._fail(GenerationError(exc.text))
        return self.finished

    def _advance(self, timeout: float) -> None:
        if self.state == "starting":
            if self.client.hello is None:
                self._pump_ready(timeout)
                if self.client.hello is None:
                    return
            self._check_device(self.client.hello)
            self.log(
                f"worker ready: torch {self.client.hello.get('torch')} on "
                f"{', '.join(self.client.hello.get('devices') or []) or 'CPU'} ({self.client.python})"
            )
            self._job = self.client.load(self.request, fallback=self._fallback())
            self._job.listeners.append(self._on_message)
            self.state = "loading"
            return
        if self._job is None:
            if self.state == "generating":  # waiting for views to be fed
                self._next_batch()
                if self._job is None and self.state == "generating" and timeout > 0:
                    time.sleep(timeout)
            return
        self.client.pump(timeout)
        if not self._job.done:
            return
        job, self._job = self._job, None
        if self.state == "loading":
            if job.error is not None:
                raise job.error
            self.model = dict(job.result.get("model") or {})
            self._open_dataset()
            self._next_batch()
        elif self.state == "generating":
            self._batch_done(job)

    def _pump_ready(self, timeout: float) -> None:
        self.client.pump(timeout)
        if self.client.hello is None and not self.client.alive:
            self.client.wait_ready(timeout=1.0)  # raises the start-up error (fatal / crash)

    def _check_device(self, hello: dict[str, Any]) -> None:
        if self.options.device != "auto" or self.request["base"] == TINY:
            return
        if not hello.get("cuda") and not hello.get("mps"):
            raise Unavailable(
                f"the worker Python {hello.get('python')} sees no CUDA GPU; {self.request['base']} on the CPU "
                f"takes minutes per image, so nothing was generated (pass {setting('device')} cpu to run it anyway)"
            )

    def _on_message(self, job: Job, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "status":
            self.log(str(message.get("message")))
        elif kind == "progress":
            self.on_step(job.step, job.steps)

    def _open_dataset(self) -> None:
        self.dataset = Dataset.open(
            self.out,
            "generate",
            self.stage_settings,
            allow_mixed=self.options.allow_mixed,
            tool_version=__version__,
            binding=GENERATIONS,
        )
        done = completed_keys(self.dataset)
        self.total = self._count(done)
        self.skipped = self.owned - self.total
        plan = self.plan(done)
        self.pending = Batcher(self._once(plan) if self._fed_views else plan)
        self.state = "generating"
        if self._fed:
            fed, self._fed = self._fed, []
            self._plan_fed(fed)

    def _submit(self, batch: list[GenerationItem]) -> None:
        assert self.dataset is not None
        self._batch = batch
        job_settings = dict(self.settings.job_settings())
        job_settings["width"], job_settings["height"] = batch[0].width, batch[0].height
        items = [
            {
                "control": str(self.dataset.path(item.control)),
                "prompt": item.prompt,
                "negative_prompt": item.negative_prompt,
                "seed": item.seed,
                "output": str(self.dataset.path(item.output)),
            }
            for item in batch
        ]
        preview_dir = self.out / "logs" / "previews" if self.options.preview_every else None
        self._job = self.client.generate(
            self.request,
            job_settings,
            items,
            fallback=self._fallback(),
            preview_every=self.options.preview_every,
            preview_dir=preview_dir,
            batching=self.options.batching,
        )
        self._job.listeners.append(self._on_message)

    def _fallback(self) -> dict[str, Any] | None:
        return dict(self.settings.fallback) if self.settings.lora and self.settings.fallback else None

    def _next_batch(self) -> None:
        batch = self.pending.take(self.batch_size)
        if not batch:
            self._batch = None
            if not self.following:
                self._finish()
            return
        self._crash_retried = False
        self._submit(batch)

    def _batch_done(self, job: Job) -> None:
        batch = self._batch
        assert batch is not None and self.dataset is not None
        if job.error is None:
            result = job.result or {}
            used = dict(result.get("settings") or {})
            model = dict(result.get("model") or self.model or {})
            records = [generation_record(item, model, used) for item in batch]
            self.dataset.append(GENERATIONS, records)
            self.written += len(batch)
            self.on_images(len(batch))
            self._next_batch()
            return
        error = job.error
        if isinstance(error, OutOfMemory) and len(batch) > 1:
            half = (len(batch) + 1) // 2
            self.batch_size = max(1, min(self.batch_size, half))
            self.log(f"out of memory at batch {len(batch)}; retrying with batch {half}")
            self.pending.put_back(batch)
            self._next_batch()
            return
        if isinstance(error, OutOfMemory):
            raise OutOfMemory(
                f"{error}; even one image does not fit: try {setting('dtype')} fp16, a smaller "
                f"{setting('width')}/{setting('height')}, or another {setting('device')}"
            )
        if isinstance(error, WorkerCrashed) and not self._crash_retried:
            self.log(f"{error}; restarting it and retrying the batch")
            self._crash_retried = True
            self._submit(batch)
            return
        raise error

    def _finish(self) -> None:
        """Done: put generations.jsonl in order (see the module)."""
        sort_generations(Dataset(self.out, "generate", {}))
        self.state = "done"

    def cancel(self) -> None:
        """Stop the current batch at its next step; the images already written stay."""
        if self._job is not None:
            self._job.cancel()

    def run(self, poll_interval: float = 0.2) -> str:
        """Drive the run to its end (blocking); returns the final state."""
        while not self.poll(poll_interval):
            pass
        return self.state

    def close(self) -> None:
        """Release the worker if this run started it."""
        if self._own_client:
            self.client.release()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
