"""Reading an LLM's answer as prompts, and the filter every written prompt must pass.

An instruction-tuned model answers with a numbered list, bullets, quotes, a "Sure! Here are ..."
line or all items on one line; `parse_answer` takes the sentences out of any of these. The filter
(`PromptFilter.offer`) then keeps a prompt only if it

- names the object (its name or a synonym, as a whole word, singular),
- fits Stable Diffusion's text encoder with the suffix the generate stage appends (77 CLIP tokens),
- is new (exactly, and after normalising case, punctuation, articles and spaces),
- says nothing that fights the pose label: more than one of the object ("two airliners", "a fleet
  of", "another airliner"), a viewpoint (the edge map decides it: "aerial view", "from below"), or
  text in the image ("a sign reading ...", quoted words, logos), which diffusion models draw badly.

Each refusal is counted by its reason (`REASONS`), which the `prompts` stage reports.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from .clip_tokens import CLIP_MAX_TOKENS, count_tokens

#: Why a prompt was dropped, in the order they are checked.
REASONS = {
    "format": "not a sentence (too short or a heading)",
    "no_name": "does not name the object",
    "several": "more than one of the object",
    "viewpoint": "names a viewpoint (the pose label decides it)",
    "text": "asks for text in the image",
    "too_long": "over 77 CLIP tokens with the suffix",
    "duplicate": "a duplicate (exact or near)",
    "empty_answer": "an LLM answer with no prompt in it",
}

_MARKER = re.compile(r"^\s*(?:\(?\d{1,3}[.):\]]|\d{1,3}\s*-|[-*+•·–—]|#\d+[.:]?)\s*")
_LABEL = re.compile(r"^\s*(?:prompt|caption|description|sentence|example)\s*\d*\s*[:.-]\s*", re.IGNORECASE)
_INLINE_NUMBERS = re.compile(r"\s+(?=\d{1,3}[.)]\s+\S)")
_QUOTES = "\"'“”‘’`«»"
_CHATTER = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|here (?:are|is)|below (?:are|is)|note|i hope|these|let me|as an ai)\b",
    re.IGNORECASE,
)
_SEVERAL = re.compile(
    r"\b(?:two|three|four|five|six|seven|eight|nine|ten|twelve|dozens?|several|multiple|many|numerous|"
    r"pairs? of|couple of|group of|fleet of|rows? of|line of|herd of|flock of|pack of|swarm of|school of|"
    r"set of|collection of|lots of|a few|twin|twins|another|other|second|identical)\b",
    re.IGNORECASE,
)
_VIEWPOINT = re.compile(
    r"\b(?:aerial|from above|from below|from behind|overhead|top[- ]down|bird'?s[- ]eye|worm'?s[- ]eye|"
    r"side view|front view|rear view|back view|profile|upside[- ]down|low[- ]angle|high[- ]angle|"
    r"view from|seen from|viewed from)\b",
    re.IGNORECASE,
)
_TEXT = re.compile(
    r"\b(?:text|texts|caption|captions|words?|letters?|lettering|written|writing|reads|reading|says|saying|"
    r"sign that|signs? with|logos?|watermarks?|labell?ed|labels?|inscriptions?|typography|font|headline|"
    r"slogan|banner with|poster with|license plate)\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[\"“”«»][^\"“”«»]{1,60}[\"“”«»]")
_NORMAL = re.compile(r"[^a-z0-9 ]+")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _clean_item(line: str) -> str:
    text = _MARKER.sub("", line, count=1)
    text = _LABEL.sub("", text, count=1)
    text = text.replace("**", "").replace("__", "").replace("{", "").replace("}", "")
    text = " ".join(text.split())
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES + ".":
        text = text.rstrip(".").strip(_QUOTES).strip()
    text = text.strip(_QUOTES).strip()
    return text.rstrip(" .;").strip()


def parse_answer(answer: str) -> list[str]:
    """The prompts in an LLM's answer, in order: one per list item or line; numbering, bullets,
    quotes, "Caption 3:" labels and markdown stripped; headings and chatter ("Sure! Here are 10
    captions:") skipped."""
    items: list[str] = []
    for raw in answer.replace("\r", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        parts = _INLINE_NUMBERS.split(line) if re.match(r"^\s*1[.)]\s", line) else [line]
        for part in parts:
            if part.rstrip().endswith(":") or _CHATTER.match(part.strip(" *#")):
                continue
            text = _clean_item(part)
            if text:
                items.append(text)
    return items


def normalise(text: str) -> str:
    """A prompt as near-duplicates compare: lower case, no punctuation or articles, single spaces."""
    text = _NORMAL.sub(" ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def _name_pattern(name: str) -> str:
    words = [re.escape(w) for w in re.split(r"[\s_-]+", name.strip()) if w]
    return r"[\s_-]+".join(words)


class PromptFilter:
    """Keeps the prompts of one object that pass every check (see the module docstring), each once.

    `names` are the object's name and synonyms; `suffix` is what the generate stage appends
    (counted in the token limit). `dropped` counts the refusals by reason.
    """

    def __init__(self, names: Sequence[str], suffix: str = "", limit: int = CLIP_MAX_TOKENS) -> None:
        names = [n for n in dict.fromkeys(n.strip() for n in names) if n]
        if not names:
            raise ValueError("PromptFilter: no name to look for")
        alternatives = "|".join(sorted((_name_pattern(n) for n in names), key=len, reverse=True))
        self._named = re.compile(rf"(?<![\w-])(?:{alternatives})(?!\w)", re.IGNORECASE)
        self._plural = re.compile(rf"(?<![\w-])(?:{alternatives})(?:s|es)(?!\w)", re.IGNORECASE)
        self.suffix = suffix
        self.limit = limit
        self.seen: set[str] = set()
        self.dropped: Counter[str] = Counter()
        self.kept: list[str] = []

    def check(self, text: str) -> str | None:
        """Why `text` would be dropped (a key of REASONS), or None if it passes (nothing is kept)."""
        if len(text.split()) < 3 or text.endswith(":"):
            return "format"
        if self._plural.search(text):
            return "several"
        if not self._named.search(text):
            return "no_name"
        rest = self._named.sub(" ", text)  # "four-poster" and "street sign" are names, not counts or text
        if _SEVERAL.search(rest):
            return "several"
        if _VIEWPOINT.search(rest):
            return "viewpoint"
        if _TEXT.search(rest) or _QUOTED.search(rest):
            return "text"
        if count_tokens(text + self.suffix) > self.limit:
            return "too_long"
        if normalise(text) in self.seen:
            return "duplicate"
        return None

    def offer(self, text: str) -> bool:
        """Keep `text` if it passes (True), else count why not (False)."""
        reason = self.check(text)
        if reason is not None:
            self.dropped[reason] += 1
            return False
        self.seen.add(normalise(text))
        self.kept.append(text)
        return True

    def offer_all(self, texts: Iterable[str], want: int | None = None) -> int:
        """Offer texts until `want` are kept (all of them when None); returns how many were kept now."""
        before = len(self.kept)
        for text in texts:
            if want is not None and len(self.kept) >= want:
                break
            self.offer(text)
        return len(self.kept) - before
