"""The `run` stage's door: render, then generate; on a Ray cluster both at once.

Locally the stages run one after the other. With `--ray` the render pool runs on a thread of its
own over the cluster's CPUs (less those the generation workers take) while this thread drives the
generation workers (one per GPU): each view is fed to them as soon as its record is written, so
the GPUs start after the first view, not after the last. Rendering never runs far ahead: a render
worker that finishes a task waits while more than `LEAD_BATCHES` batches per generation worker
are planned and not yet generated. With `--prompts` (matched against the rendered views) the
stages run one after the other on the cluster too.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from pathlib import Path

from ..core.generation_settings import TINY, GenerationSettings
from ..core.progress import Progress, format_duration
from ..core.prompt_table import load_prompt_file
from ..core.prompts import PromptSource
from ..generation.fleet import GenerateFleet
from ..generation.run import GenerateRun, RunOptions, pipeline_request
from .cluster import generation_workers, join, leave, render_pool_options
from .generate import (
    GenerateView,
    close_generation,
    make_generation,
    no_gpu,
    prepare_generation,
    report_generation,
    run_generate,
)
from .options import UsageError, say
from .render import render_inputs, render_views, run_render
from .render_pool import RenderRun

#: Batches per generation worker that may wait, planned, before rendering pauses.
LEAD_BATCHES = 4


def run_all(args: argparse.Namespace, script: Path | None) -> int:
    """The `run` stage: render, then generate (skipped with a message where it cannot run); with
    --ray, both at once on the cluster."""
    if args.prompts is not None:  # a bad prompt file is refused before anything is rendered
        if not Path(args.prompts).is_file():
            raise UsageError(f"--prompts {args.prompts}: no such file")
        load_prompt_file(args.prompts)
    if args.ray is None or args.prompts is not None:
        code = run_render(args, script)
        if code != 0:
            return code
        return run_generate(args, skip_unavailable=True)
    return _run_on_cluster(args, script)


def _run_on_cluster(args: argparse.Namespace, script: Path | None) -> int:
    inputs = render_inputs(args)
    if inputs is None:
        return 1
    settings, prompts, options = prepare_generation(args, skip_unavailable=True)
    cluster = join(args, "run")
    try:
        base = pipeline_request(settings, options)["base"]
        count, _ = generation_workers(cluster, options.device, base == TINY)
        if count == 0:  # render on the cluster, then say why generation was skipped
            code = render_views(args, script, *inputs, cluster)
            if code != 0:
                return code
            return report_generation(args, None, no_gpu(base), skip_unavailable=True)
        pool = render_pool_options(cluster, args, reserved=count)  # the generation workers' CPUs
        pipeline = Pipeline(args, settings, prompts, options, cluster, count)
        code = render_views(args, script, *inputs, cluster, pool=pool, runner=pipeline.run)
        if pipeline.generation is None:
            return code
        if code == 130:
            say(
                f"dst3d generate: interrupted after {pipeline.generation.written} new images; run the same "
                "command again to resume"
            )
            return code
        gen_code = pipeline.report(pipeline.render.waited if pipeline.render is not None else 0.0)
        return code or gen_code
    finally:
        leave(cluster)


class Pipeline:
    """Generation fed by a render running on another thread (see the module)."""

    def __init__(
        self,
        args: argparse.Namespace,
        settings: GenerationSettings,
        prompts: PromptSource,
        options: RunOptions,
        cluster: object,
        workers: int,
    ) -> None:
        self.args = args
        self.settings, self.prompts, self.options = settings, prompts, options
        self.cluster = cluster
        self.lead = LEAD_BATCHES * workers * options.batch_size
        self.view = GenerateView(args.quiet)
        self.generation: GenerateRun | GenerateFleet | None = None
        self.first_view: float | None = None  # when the render reported its first view
        self.render: RenderRun | None = None
        self._records: queue.Queue = queue.Queue()
        self._error: BaseException | None = None

    def _hold(self) -> bool:
        """Whether rendering should wait for generation (read on the render thread)."""
        run = self.generation
        return run is not None and not run.finished and run.total - run.written >= self.lead

    def _on_view(self, record: dict) -> None:
        """A view's record, on the render thread: queued for this one."""
        if self.first_view is None:
            self.first_view = time.monotonic()
        self._records.put(record)

    def _render(self, render: RenderRun) -> None:
        try:
            render.run()
        except BaseException as exc:  # handed to the driving thread
            self._error = exc

    def _feed(self, run: GenerateRun | GenerateFleet) -> None:
        records = []
        while True:
            try:
                records.append(self._records.get_nowait())
            except queue.Empty:
                break
        if records:
            run.feed(records)

    def run(self, render: RenderRun, progress: Progress) -> None:
        """Render on a thread while generating here; returns when both have ended."""
        progress.enabled = False  # one bar: the images', with the render's count as its note
        following = render.plan.total > 0  # else a finished dataset costs no worker
        run = make_generation(
            self.args, self.settings, self.prompts, self.options, self.cluster, self.view, following=following
        )
        self.generation = run
        if following:
            say(
                f"dst3d run: generating while rendering: {run.total} images of views rendered before, and "
                f"{self.args.images_per_view} per view as each is rendered"
            )
        self.render = render
        render.on_view = self._on_view
        render.hold = self._hold
        render.sort_records = False  # sorted here, so that no plan reads the file while it is replaced
        thread = threading.Thread(target=self._render, args=(render,), name="render", daemon=True)
        thread.start()
        rendering = True
        try:
            while True:
                self._feed(run)
                if rendering and not thread.is_alive():
                    rendering = False
                    self._feed(run)
                    render.records.finish()
                    run.end_feed()
                self.view.note = f"rendered {render.written}/{render.plan.total}" if rendering else ""
                self.view.follow(run)
                if run.poll(0.2):
                    if not rendering:
                        break
                    time.sleep(0.2)  # generation ended early (it failed): the render goes on
        except BaseException:
            run.cancel()
            render.stop()
            raise
        finally:
            close_generation(run)
            thread.join(timeout=60)
            self.view.close()
        if self._error is not None:
            raise self._error

    def report(self, waited: float) -> int:
        """Say how the generation ended, how soon it started after the render, and how long
        rendering waited for it (`waited`: seconds, summed over render workers); returns its
        exit code."""
        run = self.generation
        assert run is not None
        first_image = self.view.first_image
        if self.first_view is not None and first_image is not None:
            say(
                f"dst3d run: the first image came {format_duration(first_image - self.first_view)} "
                f"({first_image - self.first_view:.1f} s) after the first rendered view"
            )
        if waited > 0:
            say(f"dst3d run: render workers waited {waited:.1f} s in all for generation to catch up")
        return report_generation(self.args, run, run.error, skip_unavailable=True)
