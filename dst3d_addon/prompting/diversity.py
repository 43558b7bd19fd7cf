"""How varied a list of prompts is: distinct-1 and distinct-2, and the mean pairwise Jaccard similarity.

- distinct-n: the number of different word n-grams over all prompts divided by the number of
  n-grams (n-grams never cross prompts). 1.0 means no n-gram repeats; a list of one sentence said
  100 times scores 1/100.
- Jaccard: for two prompts, |shared words| / |words of either| (word *sets*, lower case); the mean
  over every pair. 0 means no two prompts share a word; 1 that all use the same words.

Words are runs of letters, digits and apostrophes, lower-cased. Above `MAX_EXACT_PAIRS` pairs the
Jaccard mean is estimated on a seeded sample of pairs (said in the result), so 10,000 prompts cost
a second, not minutes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9']+")
#: Pairs measured exactly; beyond this a seeded sample of this many pairs.
MAX_EXACT_PAIRS = 200_000


def words(text: str) -> list[str]:
    """The words of a prompt, lower case."""
    return _WORD.findall(text.lower())


def distinct_n(prompts: Sequence[str], n: int) -> float:
    """Different n-grams / all n-grams over the prompts (0.0 when there are none)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in prompts:
        w = words(text)
        grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def mean_jaccard(prompts: Sequence[str], seed: int = 0) -> tuple[float, bool]:
    """(mean pairwise Jaccard similarity of the prompts' word sets, whether it was sampled)."""
    sets = [frozenset(words(t)) for t in prompts]
    count = len(sets)
    pairs = count * (count - 1) // 2
    if pairs == 0:
        return 0.0, False

    def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
        union = len(a | b)
        return len(a & b) / union if union else 1.0

    if pairs <= MAX_EXACT_PAIRS:
        total = sum(jaccard(sets[i], sets[j]) for i in range(count) for j in range(i + 1, count))
        return total / pairs, False
    rng = random.Random(seed)
    total = 0.0
    for _ in range(MAX_EXACT_PAIRS):
        i, j = rng.sample(range(count), 2)
        total += jaccard(sets[i], sets[j])
    return total / MAX_EXACT_PAIRS, True


@dataclass(frozen=True)
class Diversity:
    """The figures of one list of prompts (what prompts.jsonl's `stats` records)."""

    prompts: int
    distinct_1: float
    distinct_2: float
    jaccard: float
    sampled: bool = False

    def as_dict(self) -> dict[str, float | int | bool]:
        out: dict[str, float | int | bool] = {
            "prompts": self.prompts,
            "distinct_1": round(self.distinct_1, 4),
            "distinct_2": round(self.distinct_2, 4),
            "jaccard": round(self.jaccard, 4),
        }
        if self.sampled:
            out["jaccard_sampled"] = True
        return out

    def line(self) -> str:
        """`100 prompts, distinct-1 0.41, distinct-2 0.74, Jaccard 0.09`."""
        approx = "~" if self.sampled else ""
        return (
            f"{self.prompts} prompts, distinct-1 {self.distinct_1:.2f}, distinct-2 {self.distinct_2:.2f}, "
            f"Jaccard {approx}{self.jaccard:.3f}"
        )


def diversity(prompts: Sequence[str]) -> Diversity:
    """The figures of `prompts`."""
    jaccard, sampled = mean_jaccard(prompts)
    return Diversity(len(prompts), distinct_n(prompts, 1), distinct_n(prompts, 2), jaccard, sampled)
