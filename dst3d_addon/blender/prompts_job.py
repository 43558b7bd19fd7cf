"""Prompts per object in Blender: the object's prompt list, its writers, and its group in a dataset.

- `object_target` describes an object for the prompt writers (its class's readable name and
  synonyms, its CAD file's keywords: sidecar, ShapeNet or OmniObject3D metadata).
- `write_template_prompts` fills an object's list at once with the template writer.
- `PromptsJob` runs the LLM writer for one object in its worker process (never in Blender's), polled
  by the operators' timer like a preview; `apply_to_blender` fills the list when it is done.
- `object_prompts` / `object_group` are what Preview and Export Dataset use: the selected prompt,
  and each model's own list and negative prompt as its prompts.jsonl group.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import bpy

from ..core.errors import Dst3dError
from ..core.prompt_table import PromptGroup
from ..core.prompts import PAPER_SUFFIX, PromptSource, check_template
from ..core.render_plan import ModelJob
from ..core.synsets import display_name
from ..generation.errors import GenerationError
from ..prompting.keywords import KeywordSources
from ..prompting.llm_source import check_llm
from ..prompting.llm_template import load_llm_template
from ..prompting.llm_writer import LlmSettings, LlmWriter
from ..prompting.run import LlmRun, llm_job
from ..prompting.targets import PromptTarget, target_for
from ..prompting.templates import TemplateWriter, Written, load_words
from .cad_import import PROP_PATH
from .generate_session import WorkerSession, user_folder
from .model import model_job
from .preferences import get_preferences, worker_environment, worker_python
from .wording import panel_text

#: The panel's source tag of a prompt written or edited by hand (prompts.jsonl's `source`).
PANEL_SOURCE = "panel"
_NUMBERS = itertools.count(1)


class PromptsError(Dst3dError):
    """Prompts cannot be written for this object (one line)."""


def object_target(obj: bpy.types.Object) -> PromptTarget:
    """The object as the prompt writers see it (class name, synonyms, keywords of its CAD file)."""
    job = model_job(obj)
    path = str(obj.get(PROP_PATH, ""))
    keywords = KeywordSources().for_model(path or None, job.model_id)
    return target_for(job.class_key, job.class_name, job.synset, job.model_id, keywords)


def fill_list(obj: bpy.types.Object, texts: list[str]) -> None:
    """Replace the object's prompt list with `texts`; the first becomes the selected one."""
    items = obj.dst3d.prompts
    items.clear()
    for text in texts:
        items.add().text = text
    obj.dst3d.prompt_index = 0


def write_template_prompts(obj: bpy.types.Object, count: int, seed: int) -> Written:
    """Write `count` prompts for the object with the template writer into its list (at once)."""
    written = TemplateWriter(load_words(), seed, PAPER_SUFFIX).write(object_target(obj), count)
    fill_list(obj, [p + PAPER_SUFFIX for p in written.prompts])
    return written


def selected_prompt(obj: bpy.types.Object) -> str | None:
    """The list's selected prompt (None when the list is empty or holds only blank lines)."""
    items = [i.text.strip() for i in obj.dst3d.prompts]
    if not any(items):
        return None
    index = min(max(0, int(obj.dst3d.prompt_index)), len(items) - 1)
    return items[index] or next(t for t in items if t)


def object_prompts(obj: bpy.types.Object, source: PromptSource) -> PromptSource:
    """What Preview draws from for this object: its selected prompt if its list has one, else its
    prompt template and captions (`source`, from the object's settings)."""
    chosen = selected_prompt(obj)
    return source if chosen is None else source.for_object(prompt=chosen)


def object_group(obj: bpy.types.Object, job: ModelJob) -> PromptGroup:
    """The object's prompts.jsonl group for an export: its list, else its captions for its class,
    else its prompt template; and its own negative prompt."""
    s = obj.dst3d
    texts = [i.text.strip() for i in s.prompts if i.text.strip()]
    if not texts and s.captions_file.strip():
        captions = PromptSource.load(s.prompt, s.negative_prompt, bpy.path.abspath(s.captions_file.strip()))
        texts = list(captions.candidates(job.class_name, job.synset))
    if not texts:
        texts = [s.prompt]
    texts = list(dict.fromkeys(texts))
    for text in texts:
        check_template(text, f"{obj.name!r}'s prompt")
    check_template(s.negative_prompt, f"{obj.name!r}'s negative prompt")
    return PromptGroup(
        class_key=job.class_key,
        model=job.model_id,
        prompts=tuple(texts),
        sources=(PANEL_SOURCE,) * len(texts),
        negative_prompt=s.negative_prompt,
        name=display_name(job.class_name, job.synset),
        synset=job.synset,
        writer=PANEL_SOURCE,
        settings={"writer": PANEL_SOURCE},
    )


class PromptsJob:
    """The LLM writer for one object in its worker: progress, then the list filled, or one line."""

    title = "Write Prompts"
    image_name = None  # it shows no image

    def __init__(self, obj: bpy.types.Object, run: LlmRun, count: int) -> None:
        self.object_name = obj.name
        self.run = run
        self.count = count
        self.state = "running"
        self.status = "Starting the LLM worker"
        self.message = ""
        self.error: GenerationError | None = None
        self.written: Written | None = None
        self.asked = 0
        self.kept = 0
        self.started = time.monotonic()
        self._applied = False

    def on_group(self, _target: PromptTarget, written: Written, _seconds: float) -> None:
        self.written = written

    def on_progress(self, _group: str, asked: int, kept: int) -> None:
        self.asked, self.kept = asked, kept

    @property
    def done(self) -> bool:
        return self.state != "running"

    @property
    def progress(self) -> float:
        return min(1.0, self.kept / self.count) if self.count else 0.0

    def cancel(self) -> None:
        """Stop the worker; the list stays as it was."""
        self.run.cancel()

    def poll(self) -> bool:
        """Handle the worker's messages (never blocks, no bpy); True once the job has ended."""
        if self.done:
            return True
        try:
            self.run.poll(0)
        except GenerationError as exc:
            self.run.state, self.run.error = "failed", exc
        if not self.run.finished:
            if self.run.state == "writing":
                self.status = f"Writing prompts: {self.kept}/{self.count} kept, {self.asked} answers"
            return False
        seconds = time.monotonic() - self.started
        if self.run.state == "done" and self.written is not None:
            kept = len(self.written.prompts)
            short = (
                f" (only {kept} of {self.count}: the LLM's answers were dropped)" if kept < self.count else ""
            )
            self._end(
                "done",
                f"Wrote {kept} prompts for {self.object_name!r} with the LLM in {seconds:.1f} s{short}",
            )
        elif self.run.error is not None and str(self.run.error) == "cancelled":
            self._end("cancelled", "Write Prompts cancelled; the list is as it was")
        else:
            self.error = self.run.error
            self._end("failed", panel_text(self.run.error or "the LLM worker stopped").splitlines()[0])
        return True

    def _end(self, state: str, message: str) -> None:
        self.state, self.message, self.status = state, message, message

    def apply_to_blender(self, context: bpy.types.Context) -> None:
        """On the main thread: fill the object's list with what the LLM wrote (once)."""
        if self.state != "done" or self._applied or self.written is None:
            return
        self._applied = True
        obj = bpy.data.objects.get(self.object_name)
        if obj is not None and self.written.prompts:
            fill_list(obj, [p + PAPER_SUFFIX for p in self.written.prompts])


def make_prompts_job(context: bpy.types.Context, session: WorkerSession, obj: bpy.types.Object) -> PromptsJob:
    """Start the LLM writer for `obj` (PromptsError / PromptError / RuntimeSetupError: one line)."""
    prefs = get_preferences(context)
    python = str(worker_python(prefs))
    llm = prefs.llm_model.strip()
    if not llm:
        raise PromptsError("Set Preferences > DST3D > Prompt LLM (a hub id or a model folder)")
    missing = check_llm(llm)
    if missing is not None:
        raise PromptsError(panel_text(missing))
    s = obj.dst3d
    target = object_target(obj)
    settings = LlmSettings(model=llm, seed=int(context.scene.dst3d.generation_seed), suffix=PAPER_SUFFIX)
    writer = LlmWriter(load_llm_template(), settings)
    job_file = session.scratch() / f"prompts_{next(_NUMBERS)}.json"
    job: PromptsJob | None = None

    def on_group(target_: PromptTarget, written: Written, seconds: float) -> None:
        if job is not None:
            job.on_group(target_, written, seconds)

    def on_progress(group: str, asked: int, kept: int) -> None:
        if job is not None:
            job.on_progress(group, asked, kept)

    run = LlmRun(
        llm_job(llm, settings, writer.template, [target], int(s.prompt_count), device=prefs.device),
        job_file,
        Path(user_folder()) / "prompt-writer.log",
        python,
        on_group=on_group,
        on_progress=on_progress,
        env=worker_environment(prefs),
    )
    job = PromptsJob(obj, run, int(s.prompt_count))
    run.start()
    return job
