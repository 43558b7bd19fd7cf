"""How long a dataset takes and how much it holds, from per-view costs: the sums behind the
README's scaling table (`tools/scaling_table.py` prints it).

Render runs on CPU cores (one render worker per core), generation on GPUs (one worker per GPU).
Run one after the other (a job array's task renders its shard, then generates it), the wall time
is the sum of the two stages; pipelined (`run` hands views to generation as they are rendered),
it is the slower stage's time plus the pipeline's fill, and that slower stage is the bottleneck.
Every figure assumes the work spreads evenly over the workers; start-up and model loading are
left out (minutes, against hours here).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Views the pipeline fills with before the other stage is busy: one render task (render_plan.TASK_VIEWS).
FILL_VIEWS = 256


@dataclass(frozen=True)
class Costs:
    """What one view and one image cost: time per worker and bytes on disk."""

    render_s_per_view: float  # seconds per view on one CPU core (one render worker)
    generate_s_per_image: float  # seconds per image on one GPU (one generation worker)
    view_bytes: int  # a view's files and record: control, mask, depth, render, annotation line
    image_bytes: int  # one generated image and its generation record


@dataclass(frozen=True)
class Job:
    """A dataset to make and the machines to make it on."""

    classes: int
    views_per_class: int
    gpus: int
    cores_per_gpu: int
    images_per_view: int = 1
    fill_views: int = FILL_VIEWS

    def __post_init__(self) -> None:
        for name in ("classes", "views_per_class", "gpus", "cores_per_gpu", "images_per_view"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.fill_views < 0:
            raise ValueError(f"fill_views must be at least 0, not {self.fill_views}")

    @property
    def cores(self) -> int:
        """CPU cores rendering: cores_per_gpu on every GPU's node share."""
        return self.gpus * self.cores_per_gpu

    @property
    def views(self) -> int:
        return self.classes * self.views_per_class

    @property
    def images(self) -> int:
        return self.views * self.images_per_view


@dataclass(frozen=True)
class Estimate:
    """One row of the scaling table. Hours are wall-clock unless named core- or GPU-hours."""

    job: Job
    render_hours: float  # the render stage alone, on all cores
    generate_hours: float  # the generate stage alone, on all GPUs
    fill_hours: float  # what a pipelined run adds to its slower stage
    core_hours: float  # CPU time rendering takes (the same on any number of cores)
    gpu_hours: float  # GPU time generation takes (the same on any number of GPUs)
    storage_bytes: int

    @property
    def bottleneck(self) -> str:
        """`render` (the CPUs) or `generate` (the GPUs): the stage a pipelined run waits on."""
        return "render" if self.render_hours > self.generate_hours else "generate"

    @property
    def pipelined_hours(self) -> float:
        """`run`'s wall time: the slower stage, plus the fill before the other stage keeps up."""
        return max(self.render_hours, self.generate_hours) + self.fill_hours

    @property
    def sequential_hours(self) -> float:
        """Render everything, then generate (a job array task, or `render` then `generate`)."""
        return self.render_hours + self.generate_hours

    @property
    def held_gpu_hours(self) -> float:
        """GPU-hours a pipelined run holds (billed), idle time included."""
        return self.job.gpus * self.pipelined_hours

    @property
    def gpu_busy(self) -> float:
        """Share of the held GPU time spent generating, in a pipelined run (0..1)."""
        return self.gpu_hours / self.held_gpu_hours if self.held_gpu_hours else 0.0


def cores_to_keep_up(costs: Costs, images_per_view: int = 1) -> float:
    """CPU cores per GPU at which rendering is exactly as fast as generation; with fewer, render
    is the bottleneck."""
    return costs.render_s_per_view / (costs.generate_s_per_image * images_per_view)


def estimate(job: Job, costs: Costs) -> Estimate:
    """Wall time, core- and GPU-hours, storage and the bottleneck of making `job` at `costs`."""
    core_seconds = job.views * costs.render_s_per_view
    gpu_seconds = job.images * costs.generate_s_per_image
    render = core_seconds / job.cores
    generate = gpu_seconds / job.gpus
    # Pipelined, the faster stage runs behind (or ahead of) the slower one by one chunk of views:
    # generation waits for the first rendered chunk, or rendering's last chunk waits to be generated.
    chunk = min(job.fill_views, job.views)
    if render > generate:
        fill = chunk * job.images_per_view * costs.generate_s_per_image / job.gpus
    else:
        fill = chunk * costs.render_s_per_view / job.cores
    storage = job.views * costs.view_bytes + job.images * costs.image_bytes
    return Estimate(
        job=job,
        render_hours=render / 3600,
        generate_hours=generate / 3600,
        fill_hours=fill / 3600,
        core_hours=core_seconds / 3600,
        gpu_hours=gpu_seconds / 3600,
        storage_bytes=storage,
    )
