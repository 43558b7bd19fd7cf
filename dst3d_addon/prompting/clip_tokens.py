"""How many CLIP tokens a prompt takes (Stable Diffusion's text encoder reads at most 77).

OpenAI CLIP's byte-level BPE on the merges dst3d ships (`generation/configs/clip/`, also what the
single-file loader's tokenizer is built from), in pure Python: the prompt writers check their
prompts without torch or transformers. Text is cleaned as CLIP's tokenizer cleans it (whitespace
collapsed, lower case); ftfy's mojibake repair is not done, which changes nothing for plain text.
"""

from __future__ import annotations

import functools
import html
import itertools
import re

from ..generation.model_configs import bytes_to_unicode, clip_vocab_and_merges

#: Stable Diffusion's CLIP context: 77 tokens, the start and end tokens included.
CLIP_MAX_TOKENS = 77
#: CLIP's pre-tokenizer: contractions, letter runs, single digits, other symbol runs.
_PATTERN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)


@functools.cache
def _ranks() -> dict[tuple[str, str], int]:
    _vocab, merges = clip_vocab_and_merges()
    return {tuple(m.split(" ")): i for i, m in enumerate(merges)}  # type: ignore[misc]


@functools.cache
def _byte_symbols() -> dict[int, str]:
    return bytes_to_unicode()


@functools.lru_cache(maxsize=65536)
def _bpe(word: str) -> int:
    """The number of BPE tokens of one pre-token (CLIP marks a word's last symbol with `</w>`)."""
    symbols = [*word[:-1], word[-1] + "</w>"]
    ranks = _ranks()
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(itertools.pairwise(symbols))]
        best = min((p for p in pairs if p[0] is not None), default=None)
        if best is None:
            break
        i = best[1]
        first, second = symbols[i], symbols[i + 1]
        merged: list[str] = []
        j = 0
        while j < len(symbols):  # merge every occurrence of the pair, left to right
            if j < len(symbols) - 1 and symbols[j] == first and symbols[j + 1] == second:
                merged.append(first + second)
                j += 2
            else:
                merged.append(symbols[j])
                j += 1
        symbols = merged
    return len(symbols)


def clean(text: str) -> str:
    """CLIP's cleaning: HTML entities decoded, whitespace collapsed, lower case."""
    return " ".join(html.unescape(html.unescape(text)).split()).lower()


def count_tokens(text: str) -> int:
    """The CLIP tokens of `text`, the start and end tokens included (<= 77 fits unchanged)."""
    symbols = _byte_symbols()
    total = 2
    for piece in _PATTERN.findall(clean(text)):
        total += _bpe("".join(symbols[b] for b in piece.encode("utf-8")))
    return total


def fits(text: str, limit: int = CLIP_MAX_TOKENS) -> bool:
    """Whether `text` fits in the text encoder's context (nothing of it is cut off)."""
    return count_tokens(text) <= limit
