"""Export: render the selected models' views into a dataset folder, then generate their images.

The same code as the batch script's `run` stage: the render stage's `render_view` with its
settings, dataset.json, classes and records (so `dst3d_batch.py` can resume or extend the
dataset), then the generate stage's driver `GenerateRun` in the session's worker. `poll()`
renders a few views per call (about 0.1 s of work) and then advances the generate run, so a timer
keeps Blender responsive and a test can drive it step by step. Without a worker Python, weights
or a GPU the export ends after rendering, with a line that says what was skipped. Each model's
own prompt list (else its captions, else its prompt) and negative prompt become its group of the
dataset's prompts.jsonl, from which the generate stage draws its images' prompts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from .. import __version__
from ..core.errors import DatasetError, Dst3dError
from ..core.generation_settings import GenerationSettings
from ..core.prompt_table import PromptGroup, rewrite_groups
from ..core.prompts import PromptSource
from ..core.render_plan import ModelJob, RecordWriter, Shard, plan_render
from ..core.render_settings import RenderSettings
from ..core.views import BlenderRender, Mesh, render_view
from ..generation.client import WorkerClient
from ..generation.errors import Cancelled, GenerationError
from ..generation.run import GenerateRun, RunOptions
from ..generation.runtime_setup import RuntimeSetupError
from .generate_session import WorkerSession, worker_config
from .model import model_job, model_mesh, render_settings
from .preferences import get_preferences, model_choice
from .prompts_job import object_group
from .properties import generation_settings
from .wording import panel_text

#: Work per poll in the render phase (seconds): small enough to keep the UI responsive.
RENDER_BUDGET_S = 0.1


class ExportError(Dst3dError):
    """The export cannot start (nothing selected, no folder, a folder that cannot be written, ...)."""


@dataclass
class ExportModel:
    """One selected model: its job (class, id, CAD path), its mesh and, for Blender-rendered edges,
    its renderer."""

    job: ModelJob
    mesh: Mesh
    render: BlenderRender | None = None


@dataclass
class GenerationPlan:
    """What the generate phase needs; `skip` instead says why there is none."""

    settings: GenerationSettings | None = None
    prompts: PromptSource | None = None
    options: RunOptions | None = None
    client: WorkerClient | None = None
    skip: str = ""


class ExportJob:
    """Render, then generate, one dataset folder. States: running (phase render, then generate), done,
    failed, cancelled; `message` is the one-line outcome, `skipped` says generation did not run."""

    title = "Export"
    image_name = None

    def __init__(
        self,
        out: Path,
        settings: RenderSettings,
        models: list[ExportModel],
        views: int,
        generation: GenerationPlan,
        prompt_groups: list[PromptGroup] | None = None,
    ) -> None:
        self.out = Path(out)
        self.settings = settings
        self.models = models
        self.views = views
        self.generation = generation
        try:
            plan = plan_render(
                self.out,
                settings.as_dict(),
                [m.job for m in models],
                views,
                Shard(),
                tool_version=__version__,
            )
        except DatasetError as exc:
            raise ExportError(panel_text(exc)) from None
        except OSError as exc:
            raise ExportError(
                f"Dataset Folder {self.out}: cannot write there ({exc.strerror or exc})"
            ) from None
        self.dataset = plan.dataset
        if prompt_groups:  # each model's own prompts and negative prompt (dataset-format.md, prompts.jsonl)
            rewrite_groups(self.out, prompt_groups)
        self.records = RecordWriter(plan)
        self.queue = [(i, view) for i, views_left in enumerate(plan.pending()) for view in views_left]
        self.to_render = plan.total
        self.rendered = 0
        self.skipped_views = plan.skipped
        self.phase = "render"
        self.state = "running"
        self.status = f"Rendering 0/{self.to_render} views"
        self.message = ""
        self.skipped = False
        self.run: GenerateRun | None = None
        self.written = 0
        self.gen_step = (0, 0)
        self.log_lines: list[str] = []
        self._cancel = False
        self.started = time.monotonic()

    @property
    def done(self) -> bool:
        return self.state != "running"

    @property
    def progress(self) -> float:
        """0..1 over both phases (rendering counts for half when images are generated)."""
        render = self.rendered / self.to_render if self.to_render else 1.0
        if self.generation.skip:
            return render
        if self.phase == "render" or self.run is None:
            return 0.5 * render
        total = self.run.total
        step, steps = self.gen_step
        images = (self.written + (step / steps if steps else 0.0)) / total if total else 1.0
        return 0.5 + 0.5 * min(1.0, images)

    def cancel(self) -> None:
        """Stop after the current view, or at the current image's next step; what is written stays."""
        self._cancel = True
        if self.run is not None:
            self.run.cancel()

    def poll(self) -> bool:
        """Advance the export by a little (never blocks for long); True once it has ended."""
        if self.done:
            return True
        try:
            if self.phase == "render":
                self._render_some()
            else:
                self._generate_some()
        except (Dst3dError, ValueError, OSError) as exc:
            what = "rendering" if self.phase == "render" else "generating"
            self._end(
                "failed", f"Export stopped while {what} ({self._counts()}): {panel_text(exc)}".splitlines()[0]
            )
        return self.done

    def _counts(self) -> str:
        text = f"{self.rendered} views rendered"
        if self.run is not None:
            text += f", {self.written} images generated"
        return text

    def _end(self, state: str, message: str) -> None:
        self.state, self.message, self.status = state, message, message

    def _render_some(self) -> None:
        if self._cancel:
            self._end("cancelled", f"Export cancelled ({self._counts()}); export again to resume")
            return
        start = time.monotonic()
        while self.queue:
            index, view = self.queue.pop(0)
            model = self.models[index]
            record = render_view(self.out, self.settings, model.job, view, model.mesh, model.render)
            self.records.add(record)
            self.rendered += 1
            if model.render is not None or time.monotonic() - start > RENDER_BUDGET_S:
                break
        self.status = f"Rendering {self.rendered}/{self.to_render} views"
        if not self.queue:
            self.records.finish()
            self._start_generation()

    def _start_generation(self) -> None:
        self.phase = "generate"
        plan = self.generation
        if plan.skip:
            self._skip(plan.skip)
            return
        try:
            self.run = GenerateRun(
                self.out,
                plan.settings,
                plan.prompts,
                plan.options,
                plan.client,
                log=self.log_lines.append,
                on_images=self._on_images,
                on_step=self._on_step,
            )
        except DatasetError as exc:
            self._end("failed", f"Rendered {self.rendered} views; generation refused: {panel_text(exc)}")
            return
        except GenerationError as exc:
            self._skip(panel_text(exc))
            return
        self._after_run_poll()

    def _on_images(self, n: int) -> None:
        self.written += n
        self.gen_step = (0, 0)

    def _on_step(self, step: int, steps: int) -> None:
        self.gen_step = (step, steps)

    def _skip(self, reason: str) -> None:
        self.skipped = True
        self._end(
            "done",
            f"Rendered {self.rendered} views into {self.out}; generation skipped: {reason}",
        )

    def _generate_some(self) -> None:
        run = self.run
        assert run is not None
        if self._cancel and run.state in ("starting", "loading"):
            # Nothing is generated yet: stop here (the worker may finish loading; it keeps the model).
            self._end("cancelled", f"Export cancelled ({self._counts()}); export again to resume")
            return
        run.poll(0)
        self._after_run_poll()

    def _after_run_poll(self) -> None:
        run = self.run
        assert run is not None
        if run.state == "done":
            seconds = time.monotonic() - self.started
            self._end(
                "done",
                f"Exported {self.out}: {self.rendered} views rendered ({self.skipped_views} there already), "
                f"{run.written} images generated ({run.skipped} there already) in {seconds:.1f} s",
            )
        elif run.state == "unavailable":
            self._skip(panel_text(run.error))
        elif run.state == "failed":
            if isinstance(run.error, Cancelled):
                self._end("cancelled", f"Export cancelled ({self._counts()}); export again to resume")
            else:
                self._end(
                    "failed", f"Rendered {self.rendered} views; generation failed: {panel_text(run.error)}"
                )
        elif run.state == "generating":
            step, steps = self.gen_step
            self.status = f"Generating {self.written}/{run.total} images" + (
                f", step {step}/{steps}" if steps else ""
            )
        else:
            self.status = "Starting the worker" if run.state == "starting" else "Loading the model"

    def apply_to_blender(self, context: bpy.types.Context) -> bool:
        """Nothing to show in Blender: the dataset is on disk (the panel draws the progress)."""
        return False


def _check_models(objects: list[bpy.types.Object], jobs: list[ModelJob]) -> None:
    """Every model needs its CAD file (the records name it) and its own annotation ids."""
    seen: dict[tuple[str, str], str] = {}
    for obj, job in zip(objects, jobs, strict=True):
        if not job.cad_path:
            raise ExportError(
                f"{obj.name!r} was not imported from a CAD file (the dataset records each model's file): "
                "import it with Import Aligned CAD, or deselect it"
            )
        key = (job.class_key, job.model_id)
        if key in seen:
            raise ExportError(
                f"{seen[key]!r} and {obj.name!r} are both model {job.model_id!r} of class {job.class_key!r} "
                "and would write the same views: select one of them"
            )
        seen[key] = obj.name


def _blender_renderer(obj: bpy.types.Object, settings: RenderSettings) -> BlenderRender | None:
    """The Blender render of a view for the edge modes that need one (freestyle, canny-shaded)."""
    if settings.edges == "canny":
        return None
    from .control_preview import blender_render

    mode = "freestyle" if settings.edges == "freestyle" else "shaded"
    return lambda pose: blender_render(obj, settings.intrinsics, mode, pose)


def make_export_job(context: bpy.types.Context, session: WorkerSession) -> ExportJob:
    """The export of the selected models with the scene's settings into `scene.dst3d.export_dir`.

    Raises ExportError (or ValueError / SettingsError naming the setting) with one line.
    """
    scene = context.scene
    s = scene.dst3d
    objects = sorted((o for o in context.selected_objects if o.type == "MESH"), key=lambda o: o.name)
    if not objects:
        raise ExportError("Select the models to export (mesh objects)")
    if not s.export_dir.strip():
        raise ExportError("Choose a Dataset Folder first")
    out = Path(bpy.path.abspath(s.export_dir)).expanduser()
    settings = render_settings(scene)
    jobs = [model_job(o) for o in objects]
    _check_models(objects, jobs)
    groups = [object_group(o, job) for o, job in zip(objects, jobs, strict=True)]
    models = [
        ExportModel(job, model_mesh(o, scene), _blender_renderer(o, settings))
        for o, job in zip(objects, jobs, strict=True)
    ]

    plan = GenerationPlan()
    try:
        prefs = get_preferences(context)
        pipeline, controlnet = model_choice(prefs)
        config = worker_config(context)
    except RuntimeSetupError as exc:
        plan.skip = str(exc)
    else:
        plan.settings = generation_settings(scene, None, pipeline, controlnet, prefs.precision)
        plan.prompts = PromptSource.load(
            plan.settings.prompt, plan.settings.negative_prompt, plan.settings.captions
        )
        plan.options = RunOptions(images_per_view=int(s.images_per_view), device=prefs.device)
        plan.client = session.client(config)
    return ExportJob(out, settings, models, int(s.views), plan, groups)
