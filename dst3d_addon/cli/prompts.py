"""The prompts stage's door: its options, and what the user reads of the writers' runs (one line per
group with its figures, a summary, one-line errors). No torch here: the LLM writer runs in a worker."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..core.progress import Progress, format_duration
from ..core.prompt_table import PROMPTS_FILE
from ..core.prompts import PAPER_SUFFIX, check_template
from ..generation.errors import GenerationError, MissingRuntime, MissingWeights
from ..generation.worker_env import default_python
from ..prompting.keywords import KeywordSources, parse_keywords
from ..prompting.llm_source import DEFAULT_LLM, TINY_LLM, check_llm, llm_here
from ..prompting.llm_template import load_llm_template
from ..prompting.llm_writer import PER_ANSWER, LlmSettings, LlmWriter
from ..prompting.run import LlmRun, llm_job
from ..prompting.stage import MAX_PROMPTS, PromptsStage
from ..prompting.targets import PromptTarget, plan_targets
from ..prompting.templates import TemplateWriter, Written, load_words
from .options import UsageError, cli_text, device, fail, positive_int, say, seed

WRITERS = ("auto", "templates", "llm")


def add_parser(stages: argparse._SubParsersAction) -> None:
    """Add the prompts stage to the batch script's sub-parsers."""
    p = stages.add_parser(
        "prompts",
        help="write N varied prompts per class (or per model) into the dataset's prompts.jsonl",
        description="Write prompts that name each class and vary its scene, light, weather, time and "
        "photo style, with a local LLM (in the worker Python) or from word lists; the generate stage "
        "then picks each image's prompt from them by its seed.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (rendered already)")
    p.add_argument(
        "--n",
        type=positive_int("--n", most=MAX_PROMPTS),
        default=100,
        metavar="N",
        help="prompts per class or model (default 100)",
    )
    p.add_argument(
        "--writer",
        choices=WRITERS,
        default="auto",
        help="llm: a local instruction-tuned LLM; templates: word lists; auto (default): the LLM when its "
        "model is at hand (a folder or in the cache), else templates",
    )
    p.add_argument("--classes", nargs="+", default=[], metavar="CLASS", help="only these classes")
    p.add_argument("--seed", type=seed("--seed"), default=0, help="each prompt's sample derives from it")
    p.add_argument(
        "--suffix",
        default=PAPER_SUFFIX,
        metavar="TEXT",
        help=f"appended to every prompt when an image gets it (default {PAPER_SUFFIX!r}, 3D-DST's; '' for none)",
    )
    p.add_argument("--allow-mixed", action="store_true", help="rewrite groups written with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    k = p.add_argument_group("keywords (from the CAD models' metadata)")
    k.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="FILE",
        help="a ShapeNet <synset>.csv or taxonomy.json, or Objaverse annotations (.json/.json.gz); repeatable "
        "(ShapeNet's next to its synset folders are found without this)",
    )
    k.add_argument(
        "--keywords", metavar="WORDS", help='keywords for every model, comma-separated ("jet, white livery")'
    )
    t = p.add_argument_group("template writer")
    t.add_argument("--words", metavar="FILE", help="word lists replacing the shipped ones (same format)")
    m = p.add_argument_group("LLM writer")
    m.add_argument(
        "--llm",
        default=DEFAULT_LLM,
        metavar="ID|PATH",
        help=f"a hub id (default {DEFAULT_LLM}), a local model folder, or '{TINY_LLM}' (random weights: noise)",
    )
    m.add_argument(
        "--llm-template", metavar="FILE", help="the instruction and examples (replaces the shipped one)"
    )
    m.add_argument(
        "--batch-size",
        type=positive_int("--batch-size", most=256),
        default=4,
        metavar="B",
        help="answers per call",
    )
    m.add_argument(
        "--max-answers",
        type=positive_int("--max-answers", most=100_000),
        metavar="K",
        help=f"answers asked per group at most (default 3x what N needs at {PER_ANSWER} a answer, + 2)",
    )
    m.add_argument(
        "--max-new-tokens",
        type=positive_int("--max-new-tokens", most=8192),
        default=512,
        metavar="T",
        help="tokens per answer at most (512)",
    )
    m.add_argument("--device", type=device, default="auto", help="auto (CUDA if any), cpu, cuda, cuda:N, mps")
    m.add_argument("--threads", type=positive_int("--threads", most=1024), metavar="N", help="CPU threads")
    m.add_argument(
        "--python",
        metavar="PATH",
        help="the worker's Python, with torch and transformers (default: $DST3D_WORKER_PYTHON or this one)",
    )


def _describe(target: PromptTarget) -> str:
    name = f" ({target.name})" if target.name != target.class_key else ""
    return f"{target.key}{name}"


def _dropped(dropped: dict[str, int]) -> str:
    parts = [f"{v} {k.replace('_', ' ')}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1]) if v]
    return ", ".join(parts) if parts else "none"


class _Door:
    """What the user reads while groups are written: the bar, one line per group."""

    def __init__(self, stage: PromptsStage, quiet: bool) -> None:
        self.stage = stage
        self.quiet = quiet
        self.progress = Progress(len(stage.pending), "groups", enabled=not quiet and bool(stage.pending))

    def say(self, line: str) -> None:
        self.progress.clear()
        say(line)

    def group(self, target: PromptTarget, written: Written, seconds: float) -> None:
        group = self.stage.record(target, written)
        stats = group.stats or {}
        short = (
            f" (only {len(written.prompts)} of {self.stage.n}: the cap was reached)"
            if len(written.prompts) < self.stage.n
            else ""
        )
        if not self.quiet or short:
            self.say(
                f"dst3d prompts: {_describe(target)}: {len(written.prompts)} prompts{short}, distinct-1 "
                f"{stats.get('distinct_1', 0):.2f}, distinct-2 {stats.get('distinct_2', 0):.2f}, Jaccard "
                f"{stats.get('jaccard', 0):.3f}; asked {written.asked}, dropped: {_dropped(written.dropped)} "
                f"({format_duration(seconds)})"
            )
        self.progress.update(1)


def _writer_choice(args: argparse.Namespace) -> tuple[str, str | None]:
    """(the writer to use, why auto did not take the LLM)."""
    if args.writer != "auto":
        return args.writer, None
    reason = llm_here(args.llm)
    return ("templates", reason) if reason else ("llm", None)


def run_prompts(args: argparse.Namespace) -> int:
    """The prompts stage; returns the exit code."""
    out = Path(args.out).expanduser()
    check_template(args.suffix, "--suffix")
    words = load_words(args.words) if args.words is not None else load_words()
    template = load_llm_template(args.llm_template) if args.llm_template is not None else load_llm_template()
    sources = KeywordSources(args.metadata, parse_keywords(args.keywords))
    writer, why = _writer_choice(args)
    missing = check_llm(args.llm) if writer == "llm" else None
    if not (out / "annotations.jsonl").is_file():
        raise UsageError(f"--out {out}: no annotations.jsonl there; run the render stage first")
    targets = plan_targets(out, sources, args.classes)
    if args.classes and not targets:
        raise UsageError(f"--classes {' '.join(args.classes)}: no such class in {out}")
    if missing is not None:
        fail(missing)
        return 1
    llm_settings = LlmSettings(
        model=args.llm,
        seed=args.seed,
        suffix=args.suffix,
        batch_size=args.batch_size,
        max_answers=args.max_answers,
        max_new_tokens=args.max_new_tokens,
    )
    templates = TemplateWriter(words, args.seed, args.suffix)
    settings = (
        templates.settings() if writer == "templates" else LlmWriter(template, llm_settings).record_settings()
    )
    stage = PromptsStage.open(
        out, args.n, writer, settings, args.suffix, targets, allow_mixed=args.allow_mixed
    )
    if why is not None:
        say(
            f"dst3d prompts: writing with the template writer: {why} (for LLM prompts, "
            f"`hf download {args.llm}` and pass --writer llm)"
        )
    say(
        f"dst3d prompts: {len(targets)} groups ({writer} writer, N = {args.n}): {len(stage.pending)} to write, "
        f"{len(stage.done)} already done -> {out / PROMPTS_FILE}"
    )
    door = _Door(stage, args.quiet)
    start = time.monotonic()
    try:
        if writer == "llm" and stage.pending:
            outcome = _run_llm(args, out, stage, template, llm_settings, door)
            if outcome == "fallback":  # auto, and the worker cannot run the LLM: nothing was written
                writer = "templates"
                stage = PromptsStage.open(
                    out,
                    args.n,
                    writer,
                    templates.settings(),
                    args.suffix,
                    targets,
                    allow_mixed=args.allow_mixed,
                )
                door = _Door(stage, args.quiet)
            elif outcome:
                return int(outcome)
        if writer == "templates":
            for target in stage.pending:
                t0 = time.perf_counter()
                door.group(target, templates.write(target, args.n), time.perf_counter() - t0)
    except KeyboardInterrupt:
        door.progress.close()
        say(
            f"dst3d prompts: interrupted after {len(stage.written)} groups; run the same command again to resume"
        )
        return 130
    door.progress.close()
    _summary(stage, time.monotonic() - start, writer)
    return 0


def _run_llm(
    args: argparse.Namespace, out: Path, stage: PromptsStage, template, settings: LlmSettings, door: _Door
) -> int | str:
    """Write the pending groups with the LLM worker; returns an exit code (0 when all were written),
    or "fallback" when `--writer auto` should use the template writer instead."""
    python = args.python or default_python()
    job = llm_job(
        args.llm, settings, template, stage.pending, args.n, device=args.device, threads=args.threads
    )
    run = LlmRun(
        job,
        out / "logs" / f"prompts-llm-{os.getpid()}.json",
        out / "logs" / "prompts-llm.log",
        python,
        on_group=door.group,
        on_progress=lambda group, asked, kept: door.progress.set_note(
            f"{group}: {kept} kept, {asked} answers"
        ),
        on_status=lambda line: door.say(f"dst3d prompts: {line}") if not args.quiet else None,
    )
    try:
        run.run()
    finally:
        job_file = out / "logs" / f"prompts-llm-{os.getpid()}.json"
        job_file.unlink(missing_ok=True)
    if run.state == "done":
        if not args.quiet and run.groups_done:
            say(f"dst3d prompts: LLM {run.model}")
        return 0
    door.progress.close()
    error = run.error or GenerationError("the LLM worker stopped")
    if args.writer == "auto" and isinstance(error, MissingRuntime | MissingWeights) and not stage.written:
        say(f"dst3d prompts: the LLM writer cannot run ({cli_text(error)}); writing with the template writer")
        return "fallback"
    fail(error)
    return 2 if error.kind == "bad_input" else 1


def _summary(stage: PromptsStage, seconds: float, writer: str) -> None:
    """The run's totals, the figures of the groups done before, and the groups short of N."""
    groups = stage.finish()
    before = [groups[(t.class_key, t.model)] for t in stage.done if (t.class_key, t.model) in groups]
    total = sum(len(g.prompts) for g in stage.written)
    rate = total / seconds if seconds > 0 else 0.0
    say(
        f"dst3d prompts: {len(stage.written)} groups written ({total} prompts, {rate:.1f} prompts/s with the "
        f"{writer} writer), {len(stage.done)} already done, in {format_duration(seconds)}"
    )
    for g in before:
        stats = g.stats or {}
        who = g.class_key if g.model is None else f"{g.class_key}/{g.model}"
        say(
            f"dst3d prompts: {who} (done before): {len(g.prompts)} prompts ({g.writer}), distinct-1 "
            f"{stats.get('distinct_1', 0):.2f}, distinct-2 {stats.get('distinct_2', 0):.2f}, Jaccard "
            f"{stats.get('jaccard', 0):.3f}"
        )
    short = stage.short()
    if short:
        reasons: dict[str, int] = {}
        for g in short:
            for k, v in g.dropped.items():
                reasons[k] = reasons.get(k, 0) + v
        say(
            f"dst3d prompts: warning: {len(short)} groups hold fewer than {stage.n} prompts (dropped: "
            f"{_dropped(reasons)}); raise --max-answers, or change the model or its template"
        )


STAGES = {"prompts": run_prompts}
