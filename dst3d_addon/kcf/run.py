"""The kcf and filter stages' runs (no torch here): they take settings, never command-line arguments.

`KcfRun` plans the folds of a dataset, starts the KCF worker (`python -m dst3d_addon.kcf.worker`
in the worker Python, over the worker pipe) on the folds not done yet (on a Ray cluster, a worker
per fold, several at a time), turns its messages into progress, and assembles kcf.json once every
fold is scored. `apply_filter` writes the kept set.
The batch script's door (`cli/kcf.py`) words what they report.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.dataset import Dataset
from ..core.errors import DatasetError, setting
from ..core.files import write_json_atomic
from ..core.keep import FILTER_STAGE, select_kept, write_keep
from ..core.worker_pipe import WorkerProcess, describe_exit
from ..generation.hub import model_unavailable
from ..generation.worker_env import (
    PIP_PACKAGES,
    WORKER_MODULES,
    package_path,
    python_exists,
    worker_environment,
)
from .folds import assign_folds
from .items import collect_items, collect_renders
from .learning import judge_images
from .recipes import PRETRAINED, RECIPE_FIELDS, choose, describe
from .results import KCF_JSON, assemble, load_kcf, read_fold, write_kcf
from .settings import KcfError, KcfSettings, default_pretrained

WORKER_MODULE = "dst3d_addon.kcf.worker"


@dataclass(frozen=True)
class KcfOptions:
    """How to run the worker (none of these change the scores' meaning)."""

    python: str
    device: str = "auto"
    threads: int | None = None
    amp: bool = True
    save_weights: bool = False


@dataclass
class KcfPlan:
    """The judged images, their folds, the inputs' fingerprint, the folds still to train, the
    settings (with what `plan_kcf` chose for them), the renders every fold also trains on
    (`train_renders`), and notes on what was chosen and why."""

    items: list[Any]
    folds: list[int]
    fingerprint: str
    pending: list[int]
    settings: KcfSettings
    renders: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return self.settings.epochs

    def fold_size(self, fold: int) -> int:
        """Images held out in `fold`."""
        return sum(1 for f in self.folds if f == fold)

    @property
    def passes(self) -> int:
        """Image passes the pending folds take: each trains on the others' images every epoch and
        scores its own once (the progress bar's total)."""
        return sum(self._passes(f) for f in self.pending)

    def _passes(self, fold: int) -> int:
        held_out = self.fold_size(fold)
        return self.epochs * (len(self.items) - held_out + len(self.renders)) + held_out


def plan_kcf(
    out: Path, settings: KcfSettings, *, allow_mixed: bool = False, auto: Collection[str] = ()
) -> KcfPlan:
    """Open `out` for the kcf stage and plan its folds (DatasetError, FoldError naming the problem).

    The settings named in `auto` (the training recipe's fields of kcf/recipes.py, `pretrained`,
    `train_renders`) are the run's to choose, from the data and the weights at hand; the plan holds
    the settings as chosen and a note saying what and why.
    """
    auto = frozenset(auto)
    items = collect_items(out, settings.images, settings.classes)
    renders: list[Any] = []
    notes: list[str] = []
    if settings.train_renders or ("train_renders" in auto and settings.images != "renders"):
        try:
            renders = collect_renders(out, settings.classes)
        except DatasetError as err:
            if "train_renders" not in auto:
                raise
            notes.append(f"training without the renders: {err.text}")
    settings = replace(settings, train_renders=bool(renders))
    settings, chosen = choose_settings(settings, auto, items, len(renders))
    notes += chosen
    if renders:
        notes.append(
            f"each fold also trains on the {len(renders)} renders of the views, whose labels are exact"
        )
    folds = assign_folds([it.group(settings.group_by) for it in items], settings.folds, settings.seed)
    fingerprint = settings.fingerprint(
        [{"file": it.file, "pose": list(it.pose), "fold": f} for it, f in zip(items, folds, strict=True)],
        [{"file": it.file, "pose": list(it.pose)} for it in renders],
    )
    Dataset.open(out, "kcf", settings.as_dict(), allow_mixed=allow_mixed, tool_version=__version__)
    pending = [f for f in range(settings.folds) if read_fold(out, f, fingerprint) is None]
    return KcfPlan(items, folds, fingerprint, pending, settings, renders, notes)


def choose_settings(
    settings: KcfSettings, auto: frozenset[str], items: list[Any], renders: int = 0
) -> tuple[KcfSettings, list[str]]:
    """`settings` with the fields named in `auto` chosen, and a note on the choice.

    `pretrained` becomes the backbone's ImageNet weights; the recipe's fields 3D-DST's recipe when
    those weights can be had, else the scratch recipe for the data's size (kcf/recipes.py), counting
    the `renders` each fold also trains on.
    """
    changes: dict[str, Any] = {}
    notes: list[str] = []
    recipe_auto = [f for f in RECIPE_FIELDS if f in auto]
    backbone = PRETRAINED["backbone"] if "backbone" in auto else settings.backbone
    pretrained = default_pretrained(backbone) if "pretrained" in auto else settings.pretrained
    if recipe_auto:
        if pretrained:
            reason = model_unavailable(pretrained)
        else:
            reason = "none exist" if "pretrained" in auto else f"{setting('pretrained')} none"
        train_images = len(items) - len(items) // settings.folds + renders
        fields = choose(reason is None, train_images)
        changes.update({f: fields[f] for f in recipe_auto})
        chosen = {**{f: getattr(settings, f) for f in RECIPE_FIELDS}, **changes}
        if reason is None:
            notes.append(f"ImageNet weights {pretrained}: 3D-DST's recipe, {describe(chosen)}")
        else:
            pretrained = None
            notes.append(
                f"no ImageNet weights for {backbone} ({pretrained or backbone}: {reason}): training from scratch with the recipe measured for "
                f"{train_images} training images per fold, {describe(chosen)}"
            )
    changes["pretrained"] = pretrained
    return replace(settings, **changes), notes


def check_python(python: str) -> str:
    """`python` if it can be started (KcfError naming it otherwise)."""
    if not python or not python_exists(python):
        raise KcfError(f"--python {python}: no such interpreter")
    return python


@dataclass
class _Attempt:
    """One worker of a run: the folds it was given, those it finished, the image passes it sent."""

    folds: list[int]
    done: set[int] = field(default_factory=set)
    passes: int = 0

    @property
    def left(self) -> list[int]:
        return [f for f in self.folds if f not in self.done]


class KcfRun:
    """Trains and scores the pending folds in worker processes; `on_message` sees each message.

    By default one local worker trains every pending fold in turn. With `workers` N, each fold has
    a worker of its own, N at a time, started by `process_factory` (`WorkerProcess`'s signature:
    a run on a Ray cluster passes remote ones). A worker that ends before its fold is done, by no
    doing of its own (lost with its Ray actor or node, killed by a signal), starts again up to
    `retries` times; `on_message` then sees {"type": "restart", "folds", "how", "passes", "attempt"},
    `passes` being the image passes the lost worker had reported.

    After `run()`: `folds_done` (the workers' fold_done messages), `error` (the fatal line, or how
    the worker that stopped the run ended), `missing` ({"module", "error"} when the worker Python
    lacks a package), `log` (that worker's log) and the exit code.
    """

    def __init__(
        self,
        out: Path,
        settings: KcfSettings,
        plan: KcfPlan,
        options: KcfOptions,
        on_message: Callable[[Mapping[str, Any]], None] = lambda message: None,
        *,
        process_factory: Callable[..., Any] = WorkerProcess,
        workers: int | None = None,
        retries: int = 0,
    ) -> None:
        self.out = out
        self.settings = settings
        self.plan = plan
        self.options = options
        self.on_message = on_message
        self.process_factory = process_factory
        self.workers = workers
        self.retries = retries
        self.log = out / "logs" / "kcf-worker.log"
        self.error: str | None = None
        self.missing: dict | None = None
        self.folds_done: list[dict] = []
        self.tries: dict[int, int] = {}  # fold -> times it was started again

    def _job(self) -> dict[str, Any]:
        plan, options = self.plan, self.options
        return {
            "out": str(self.out.resolve()),
            "settings": self.settings.as_dict(),
            "fingerprint": plan.fingerprint,
            "files": [it.file for it in plan.items],
            "poses": [list(it.pose) for it in plan.items],
            "folds": plan.folds,
            "render_files": [it.file for it in plan.renders],
            "render_poses": [list(it.pose) for it in plan.renders],
            "pending": plan.pending,
            "device": options.device,
            "threads": options.threads,
            "amp": options.amp,
            "save_weights": options.save_weights,
        }

    def log_of(self, folds: list[int]) -> Path:
        """The log of the worker training `folds` (a fold's own log when each has a worker)."""
        if self.workers is None:
            return self.log
        return self.out / "logs" / f"kcf-worker-fold{folds[0]}.log"

    def run(self) -> int:
        """Run the workers to their end; returns the exit code, 0 when every pending fold is done
        (KeyboardInterrupt stops them first)."""
        job_path = self.out / "kcf" / "job.json"
        write_json_atomic(job_path, self._job())
        pending = list(self.plan.pending)
        todo = deque([pending] if self.workers is None else [[f] for f in pending])
        at_once = max(1, self.workers or 1)
        inbox: queue.Queue = queue.Queue()
        running: dict[Any, _Attempt] = {}
        try:
            while todo or running:
                while todo and len(running) < at_once:
                    folds = todo.popleft()
                    running[self._start(job_path, folds, inbox)] = _Attempt(folds)
                try:
                    process, message = inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                if message is not None:
                    self._handle(message, running[process])
                    continue
                code = self._ended(process, running.pop(process), todo)
                if code != 0:
                    self._stop(running)
                    return code
            return 0
        except BaseException:
            self._stop(running)
            raise

    def _start(self, job_path: Path, folds: list[int], inbox: queue.Queue) -> Any:
        command = [self.options.python, "-m", WORKER_MODULE, str(job_path)]
        if self.workers is not None:
            command += [str(f) for f in folds]
        process = self.process_factory(
            command, self.log_of(folds), env=worker_environment(), cwd=package_path(), inbox=inbox
        )
        try:
            process.start()
        except OSError as err:
            raise KcfError(
                f"--python {self.options.python}: cannot start it ({err.strerror or err})"
            ) from None
        process.close_stdin()
        return process

    @staticmethod
    def _stop(running: Mapping[Any, _Attempt]) -> None:
        for process in running:
            process.stop()

    def _handle(self, message: Mapping[str, Any], attempt: _Attempt) -> None:
        kind = message.get("type")
        if kind == "batch":
            attempt.passes += int(message.get("n", 0))
        elif kind == "fold_done":
            self.folds_done.append(dict(message))
            attempt.done.add(int(message["fold"]))
        elif kind == "fatal":
            self.error = str(message.get("error"))
        elif kind == "missing":
            self.missing = dict(message)
        self.on_message(message)

    def _ended(self, process: Any, attempt: _Attempt, todo: deque[list[int]]) -> int:
        """What a worker's end means: 0 when its folds are done or start again, else the run's
        exit code (with `error` and `log` saying why)."""
        code = process.wait()
        # A fold whose file is there is done, though its worker was lost before it could say so.
        left = [f for f in attempt.left if read_fold(self.out, f, self.plan.fingerprint) is None]
        if not left and code in (0, None):
            return 0
        self.log = Path(process.log_path)
        if self.error is not None or self.missing is not None:
            return code or 1
        ended = getattr(process, "describe_end", None)
        how = ended() if ended is not None else describe_exit(code)
        lost = getattr(process, "lost", False) or (code is not None and code < 0)
        if left and lost and all(self.tries.get(f, 0) < self.retries for f in left):
            for f in left:
                self.tries[f] = self.tries.get(f, 0) + 1
            todo.appendleft(left)
            self.on_message(
                dict(type="restart", folds=left, how=how, passes=attempt.passes, attempt=self.tries[left[0]])
            )
            return 0
        which = f"fold {left[0]}" if len(left) == 1 else f"folds {', '.join(map(str, left))}"
        tries = f", {self.retries + 1} times in a row" if self.retries and lost else ""
        self.error = (
            f"the kcf worker of {which} ({self.options.python}) {how}{tries}; see {self.log}"
            if left
            else f"the kcf worker ({self.options.python}) {how}; see {self.log}"
        )
        return code or 1

    def missing_message(self) -> str:
        """The one line for a worker Python that lacks a package."""
        assert self.missing is not None
        packages = " ".join(PIP_PACKAGES[m] for m in WORKER_MODULES["kcf"])
        return (
            f"--python {self.options.python}: cannot import {self.missing['module']} ({self.missing['error']}); "
            f"install torch and transformers (pip install {packages}) into that Python, "
            "or pass --python PATH (or set DST3D_WORKER_PYTHON) to one that has them"
        )

    def finish(self) -> tuple[dict, Path]:
        """kcf.json from every fold's results (KcfError if one is missing); returns (content, path)."""
        results = [read_fold(self.out, f, self.plan.fingerprint) for f in range(self.settings.folds)]
        if any(r is None for r in results):
            raise KcfError(
                f"kcf: fold results missing under {self.out / 'kcf'} after the worker finished; see the log"
            )
        content = assemble(
            self.plan.items,
            self.plan.folds,
            results,
            self.settings.as_dict(),
            self.plan.fingerprint,
            __version__,
        )
        return content, write_kcf(self.out, content)


def check_learned(path: Path, images: list[dict]) -> None:
    """KcfError (one line) unless kcf.json's `images` show that the estimators learned the pose."""
    verdict = judge_images(images)
    if verdict is None:
        raise KcfError(
            f"{path}: its images lack a fold, pose or error, so whether the estimators learned cannot be "
            f"checked; rerun the kcf stage, or pass {setting('force')} to cut anyway"
        )
    if not verdict.learned:
        raise KcfError(
            f"{path}: the pose estimators did not learn ({verdict.describe()}), so the scores are noise and "
            f"a cut on them would be random; rerun kcf as its warning says, or pass {setting('force')} "
            "to cut anyway"
        )


@dataclass(frozen=True)
class FilterResult:
    """What `apply_filter` kept, of how many, and where it wrote the kept set."""

    kept: list[dict]
    total: int
    path: Path

    @property
    def highest_kept(self) -> float:
        """The highest score kept (nan when nothing is)."""
        return max((float(e["score"]) for e in self.kept), default=float("nan"))


def apply_filter(
    out: Path, *, keep_fraction: float | None, max_score: float | None, per_class: bool, force: bool = False
) -> FilterResult:
    """Write keep.jsonl from kcf.json: the lowest-scoring images by one rule (nothing is deleted).

    Scores of estimators that did not learn (see kcf/learning.py) are refused with KcfError unless
    `force`: a cut on them would be a cut at random.
    """
    kcf = load_kcf(out)
    entries = kcf["images"]
    if not force:
        check_learned(out / KCF_JSON, entries)
    kept = select_kept(entries, keep_fraction=keep_fraction, max_score=max_score, per_class=per_class)
    settings = {
        "images": kcf.get("settings", {}).get("images"),
        "keep_fraction": keep_fraction,
        "max_score": max_score,
        "per_class": per_class,
        "kcf_fingerprint": kcf.get("fingerprint"),
    }
    Dataset.open(out, FILTER_STAGE, settings, allow_mixed=True, tool_version=__version__)
    return FilterResult(kept, len(entries), write_keep(out, kept))
