"""The LLM prompt writer's logic, without torch: what to ask, how answers become prompts, when to stop.

For each group the writer asks the template's request (`{count}` prompts per answer) again and
again, `batch_size` answers per call of `answer`, each answer k sampled with its own seed
`derive_seed("llm-prompt", run seed, group, k)`. Every answer is parsed (filters.parse_answer)
and filtered (filters.PromptFilter) until N prompts survive or `max_answers` answers were asked
for (the cap). `answer(messages, seeds)` is the model: the worker passes the real one
(worker/model.py); tests pass canned answers.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.seeds import derive_seed
from .filters import PromptFilter, parse_answer
from .llm_template import LlmTemplate
from .targets import PromptTarget
from .templates import Written

#: The model: (chat messages, one seed per answer wanted) -> one answer text per seed.
Answer = Callable[[list[dict[str, str]], list[int]], list[str]]

#: Prompts one answer is asked for (the last answers of a group ask for as many).
PER_ANSWER = 10


@dataclass(frozen=True)
class LlmSettings:
    """What decides the LLM writer's prompts (recorded per group), apart from the model's weights."""

    model: str
    seed: int = 0
    suffix: str = ""
    per_answer: int = PER_ANSWER
    batch_size: int = 4
    max_answers: int | None = None
    max_new_tokens: int = 512
    temperature: float = 0.9
    top_p: float = 0.95

    def answers_cap(self, n: int) -> int:
        """Answers asked for at most per group: `max_answers`, or 3x what N needs plus 2."""
        if self.max_answers is not None:
            return self.max_answers
        return 3 * math.ceil(n / self.per_answer) + 2


class LlmWriter:
    """Writes a group's prompts from a model's answers (see the module docstring)."""

    name = "llm"

    def __init__(self, template: LlmTemplate, settings: LlmSettings) -> None:
        self.template = template
        self.settings = settings

    def record_settings(self) -> dict[str, object]:
        """What prompts.jsonl records as the group's settings (a rerun with the same skips it)."""
        s = self.settings
        return {
            "writer": self.name,
            "model": s.model,
            "seed": s.seed,
            "suffix": s.suffix,
            "template_sha256": self.template.sha256,
            "per_answer": s.per_answer,
            "batch_size": s.batch_size,
            "max_answers": s.max_answers,
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
        }

    def seed_of(self, target: PromptTarget, k: int) -> int:
        """The seed of answer k of a group."""
        return derive_seed("llm-prompt", self.settings.seed, target.key, int(k))

    def write(
        self,
        target: PromptTarget,
        n: int,
        answer: Answer,
        progress: Callable[[int, int], None] = lambda asked, kept: None,
    ) -> Written:
        """N prompts for the group, or what the cap allowed; `progress(asked, kept)` after each call."""
        s = self.settings
        check = PromptFilter(target.synonyms, s.suffix)
        sources: list[str] = []
        dropped: Counter[str] = Counter()
        cap = s.answers_cap(n)
        asked = 0
        while len(check.kept) < n and asked < cap:
            ks = list(range(asked, min(asked + s.batch_size, cap)))
            count = min(s.per_answer, n)
            messages = self.template.render(target.name, count, target.keywords, target.synonyms)
            answers = answer(messages, [self.seed_of(target, k) for k in ks])
            if len(answers) != len(ks):
                raise RuntimeError(f"the model gave {len(answers)} answers for {len(ks)} seeds")
            for k, text in zip(ks, answers, strict=True):
                items = parse_answer(text)
                if not items:
                    dropped["empty_answer"] += 1
                for item in items:
                    if len(check.kept) >= n:
                        break
                    if check.offer(item):
                        sources.append(f"llm:k={k}")
            asked = ks[-1] + 1
            progress(asked, len(check.kept))
        dropped.update(check.dropped)
        return Written(list(check.kept), sources, dict(dropped), asked)


def write_all(
    writer: LlmWriter,
    targets: Sequence[PromptTarget],
    n: int,
    answer: Answer,
    on_group: Callable[[PromptTarget, Written, float], None],
    progress: Callable[[PromptTarget, int, int], None] = lambda target, asked, kept: None,
) -> None:
    """Write every group in order, handing each to `on_group(target, written, seconds)` when done."""
    for target in targets:
        start = time.perf_counter()
        written = writer.write(target, n, answer, lambda asked, kept, t=target: progress(t, asked, kept))
        on_group(target, written, time.perf_counter() - start)
