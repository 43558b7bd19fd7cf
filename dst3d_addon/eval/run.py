"""The eval stage's run (no torch here): plan it, start the worker, assemble the results.

`plan_eval` reads both sides' objects, fingerprints them with the settings and looks at the eval
folder: a folder of another eval (or of other files) is refused, and what this eval already did
there (epochs in the checkpoint, the trained model, the predictions, the results) is what a rerun
skips. `EvalRun` starts `python -m dst3d_addon.eval.worker` in the worker Python over the worker
pipe (`core/worker_pipe.py`), passes its messages on, and `finish` writes results.json and the
confusion picture. The batch script's door (`cli/eval.py`) words what they report.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.errors import DatasetError, setting
from ..core.export import check_target
from ..core.files import remove_stale_temps, write_json_atomic
from ..core.weights import read_header
from ..core.worker_pipe import WorkerProcess
from ..generation.worker_env import PIP_PACKAGES, WORKER_MODULES, package_path, worker_environment
from .picture import draw_confusion
from .results import (
    CHECKPOINT,
    CONFUSION,
    EVAL_JSON,
    FORMAT,
    JOB,
    LOG,
    MODEL,
    PREDICTIONS,
    RESULTS,
    assemble,
    read_json,
    write_results,
)
from .settings import EvalError, EvalSettings
from .sources import SideItems, read_items

WORKER_MODULE = "dst3d_addon.eval.worker"
TO = setting("to")


def default_to(settings: EvalSettings) -> Path:
    """`eval/<train folder>-on-<test folder>` in the current folder."""
    return Path("eval") / f"{settings.train.path.name}-on-{settings.test.path.name}"


def weights_epoch(path: Path, fingerprint: str) -> int | None:
    """The epochs a checkpoint or model of this eval holds (its metadata), else None."""
    if not path.is_file():
        return None
    try:
        meta = read_header(path).metadata
    except DatasetError:
        return None
    if meta.get("fingerprint") != fingerprint:
        return None
    try:
        return int(meta["epoch"])
    except (KeyError, ValueError):
        return None


@dataclass
class EvalPlan:
    """Both sides' objects, the fingerprint, the eval folder, and what is done there already."""

    settings: EvalSettings
    to: Path
    train: SideItems
    test: SideItems
    fingerprint: str
    epochs_done: int
    trained: bool
    predicted: bool
    finished: bool

    @property
    def passes(self) -> int:
        """Image passes still to go: each remaining epoch trains on every training object, then every
        test object is scored once (the progress bar's total)."""
        train = (
            0 if self.trained else (self.settings.training.epochs - self.epochs_done) * len(self.train.items)
        )
        return train + (0 if self.predicted else len(self.test.items))

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "tool": {"name": "dst3d", "version": __version__},
            "settings": self.settings.recorded(),
            "fingerprint": self.fingerprint,
            "train_objects": len(self.train.items),
            "test_objects": len(self.test.items),
        }


def fingerprint(settings: EvalSettings, train: SideItems, test: SideItems) -> str:
    """A hash of the settings and every object of both sides (key, class, box, pose)."""

    def objects(side: SideItems) -> list:
        return [[it.key, it.class_name, list(it.box), list(it.pose)] for it in side.items]

    blob = json.dumps(
        {"settings": settings.recorded(), "train": objects(train), "test": objects(test)},
        sort_keys=True,
        allow_nan=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def check_folder(to: Path, settings: EvalSettings, fp: str) -> bool:
    """Refuse (EvalError naming --to) a folder of other files or of another eval; True when it holds
    this eval already. Reads only."""
    if to.exists() and not to.is_dir():
        raise EvalError(f"{TO} {to}: is a file, not a folder")
    if not to.is_dir():
        return False
    path = to / EVAL_JSON
    if not path.is_file():
        if any(not p.name.startswith(".") for p in to.iterdir()):
            raise EvalError(f"{TO} {to}: not empty and not a dst3d eval; choose a new or empty folder")
        return False
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_settings, old_fp = dict(old["settings"]), old["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise EvalError(f"{TO} {to}: {EVAL_JSON} is unreadable ({err}); choose a new {TO}") from None
    ours = settings.recorded()
    if old_settings != ours:
        changed = []
        for key in sorted(set(old_settings) | set(ours)):
            a, b = old_settings.get(key), ours.get(key)
            if isinstance(a, dict) and isinstance(b, dict):
                changed += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            elif a != b:
                changed.append(key)
        raise EvalError(
            f"{TO} {to}: holds an eval with other settings ({', '.join(changed)}); choose a new {TO}"
        )
    if old_fp != fp:
        raise EvalError(
            f"{TO} {to}: holds an eval of other images (a source or its keep set changed since); choose a new {TO}"
        )
    return True


def plan_eval(settings: EvalSettings, to: str | os.PathLike) -> EvalPlan:
    """Read both sides and look at the eval folder `to` (EvalError, DatasetError naming the option
    or file; nothing is written)."""
    target = Path(to).expanduser()
    for source in (settings.train, settings.test):
        check_target(source.path, target)  # never inside a source, nor holding one
    train = read_items(settings.train)
    test = read_items(settings.test)
    if settings.train.path == settings.test.path:
        shared = {it.view for it in train.items} & {it.view for it in test.items}
        if shared:
            what = "views" if settings.test.kind == "dst3d" else "images"
            raise EvalError(
                f"{setting('test')} {settings.test.path}: {len(shared)} of its {what} are also in "
                f"{setting('train')}; test on other {what} (another split or dataset)"
            )
    fp = fingerprint(settings, train, test)
    check_folder(target, settings, fp)
    finished = read_json(target / RESULTS, fp) is not None
    predicted = read_json(target / PREDICTIONS, fp) is not None
    trained = weights_epoch(target / MODEL, fp) is not None
    epochs_done = settings.training.epochs if trained else (weights_epoch(target / CHECKPOINT, fp) or 0)
    return EvalPlan(settings, target, train, test, fp, epochs_done, trained, predicted, finished)


def _side_job(side: SideItems) -> dict[str, Any]:
    return {
        "files": [it.file for it in side.items],
        "boxes": [list(it.box) for it in side.items],
        "poses": [list(it.pose) for it in side.items],
    }


@dataclass(frozen=True)
class EvalOptions:
    """How to run the worker (none of these change what the results mean)."""

    python: str
    device: str = "auto"
    threads: int | None = None
    amp: bool = True


class EvalRun:
    """Trains (or resumes) and tests in one worker process; `on_message` sees each message.

    After `run()`: `error` (the worker's fatal line), `missing` (when the worker Python lacks a
    package) and the exit code; `finish()` then writes the results.
    """

    def __init__(
        self,
        plan: EvalPlan,
        options: EvalOptions,
        on_message: Callable[[Mapping[str, Any]], None] = lambda message: None,
    ) -> None:
        self.plan = plan
        self.options = options
        self.on_message = on_message
        self.log = plan.to / LOG
        self.error: str | None = None
        self.missing: dict | None = None

    def _job(self) -> dict[str, Any]:
        plan, settings = self.plan, self.plan.settings
        return {
            "to": str(plan.to.resolve()),
            "fingerprint": plan.fingerprint,
            "training": settings.training.as_dict(),
            "init": None if settings.init is None else str(settings.init.path),
            "train": _side_job(plan.train),
            "test": _side_job(plan.test),
            "device": self.options.device,
            "threads": self.options.threads,
            "amp": self.options.amp,
        }

    def start_folder(self) -> None:
        """Claim the eval folder: eval.json first (it is what a rerun checks), stale temporary files swept."""
        plan = self.plan
        try:
            plan.to.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EvalError(f"{TO} {plan.to}: cannot create the folder ({err.strerror or err})") from None
        if not check_folder(plan.to, plan.settings, plan.fingerprint):
            write_json_atomic(plan.to / EVAL_JSON, plan.manifest())
        remove_stale_temps(plan.to)

    def run(self) -> int:
        """Run the worker to its end; returns its exit code (KeyboardInterrupt stops it first)."""
        self.start_folder()
        job_path = self.plan.to / JOB
        write_json_atomic(job_path, self._job())
        process = WorkerProcess(
            [self.options.python, "-m", WORKER_MODULE, str(job_path.resolve())],
            self.log,
            env=worker_environment(),
            cwd=package_path(),
        )
        try:
            process.start()
        except OSError as err:
            raise EvalError(
                f"--python {self.options.python}: cannot start it ({err.strerror or err})"
            ) from None
        process.close_stdin()
        try:
            while True:
                try:
                    _, message = process.inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                if message is None:
                    return process.wait()
                kind = message.get("type")
                if kind == "fatal":
                    self.error = str(message.get("error"))
                elif kind == "missing":
                    self.missing = dict(message)
                self.on_message(message)
        except BaseException:
            process.stop()
            raise

    def missing_message(self) -> str:
        """The one line for a worker Python that lacks a package."""
        assert self.missing is not None
        packages = " ".join(PIP_PACKAGES[m] for m in WORKER_MODULES["eval"])
        return (
            f"--python {self.options.python}: cannot import {self.missing['module']} ({self.missing['error']}); "
            f"install {packages} into that Python (pip install {packages}), "
            "or pass --python PATH (or set DST3D_WORKER_PYTHON) to one that has them"
        )

    def finish(self) -> tuple[dict, Path, Path]:
        """results.json and confusion.png from the worker's predictions; returns (results, their paths)."""
        plan = self.plan
        predictions = read_json(plan.to / PREDICTIONS, plan.fingerprint)
        if predictions is None:
            raise EvalError(
                f"eval: no predictions in {plan.to / PREDICTIONS} after the worker finished; see {self.log}"
            )
        content = assemble(
            plan.test.items, predictions, plan.settings.recorded(), plan.fingerprint, __version__
        )
        picture = draw_confusion(content, plan.to / CONFUSION)
        return content, write_results(plan.to, content), picture


def load_results(plan: EvalPlan) -> tuple[dict, Path, Path]:
    """The results of a finished eval (a rerun that has nothing to do); draws a missing picture again."""
    content = read_json(plan.to / RESULTS, plan.fingerprint)
    if content is None:
        raise EvalError(f"{TO} {plan.to}: {RESULTS} went missing; rerun")
    picture = plan.to / CONFUSION
    if not picture.is_file():
        draw_confusion(content, picture)
    return content, plan.to / RESULTS, picture
