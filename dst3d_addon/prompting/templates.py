"""The template prompt writer: sentences assembled from editable word lists, seeded per prompt.

Each prompt k of a group draws from its own generator, seeded by (run seed, group, k): a frame
("a photo of a {detail} {name} {scene}"), a scene of the object's family (vehicles get roads and
runways, furniture rooms, animals habitats; indoor or outdoor), a style, sometimes a look of the
object (or one of its CAD keywords), and a tail of some of lighting, time of day, weather (outdoors
only) and camera. Prompts pass the same filter as the LLM's (filters.py) until N are kept or the cap
is reached. The lists live in `resources/template_words.txt`; `--words FILE` replaces them.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..core.errors import setting
from ..core.prompts import PromptError, decode_text, read_file_bytes
from ..core.seeds import derive_seed
from ..core.synsets import FAMILIES, family_of
from .filters import PromptFilter

RESOURCES = Path(__file__).resolve().parent / "resources"
WORDS_FILE = RESOURCES / "template_words.txt"
WORDS = setting("words")
#: The lists every word file must have, and the slots a frame may use.
LISTS = ("frames", "style", "detail", "lighting", "weather", "time", "camera")
SLOTS = ("name", "scene", "style", "detail")
_SECTION = re.compile(r"^\[\s*([a-z]+)(?:\s+([a-z]+))?\s*\]$")
_SLOT = re.compile(r"\{([^{}]*)\}")
#: Keywords that describe a file, not an object (Objaverse tags): never put into a prompt.
JUNK_KEYWORDS = frozenset(
    [
        "3d",
        "model",
        "lowpoly",
        "low-poly",
        "low",
        "poly",
        "game",
        "asset",
        "free",
        "obj",
        "fbx",
        "blend",
        "blender",
        "sketchfab",
        "cgtrader",
        "gltf",
        "glb",
        "stl",
        "scan",
        "photogrammetry",
        "pbr",
        "rigged",
        "animated",
        "texture",
        "textures",
        "substance",
        "unity",
        "unreal",
        "vr",
        "ar",
        "render",
        "cad",
        "mesh",
        "realistic",
    ]
)


class Target(Protocol):
    """What a writer needs of a group (targets.PromptTarget)."""

    key: str
    name: str
    synonyms: tuple[str, ...]
    synset: str | None
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class WordLists:
    """A word file: the lists, the scenes per family (outdoor, indoor) and the family match words."""

    path: str
    sha256: str
    lists: dict[str, tuple[str, ...]]
    outdoor: dict[str, tuple[str, ...]] = field(default_factory=dict)
    indoor: dict[str, tuple[str, ...]] = field(default_factory=dict)
    match: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def family(self, name: str, synset: str | None) -> str:
        """The family whose scenes a class gets: the synset table's, else the first family one of
        whose match words is a word of the name, else "object"."""
        found = family_of(name, synset)
        if found is not None and (self.outdoor.get(found) or self.indoor.get(found)):
            return found
        words = set(re.findall(r"[a-z]+", name.lower()))
        for fam, keys in self.match.items():
            if words & {k.lower() for k in keys} and (self.outdoor.get(fam) or self.indoor.get(fam)):
                return fam
        return "object"


def load_words(path: str | os.PathLike | None = None, what: str = WORDS) -> WordLists:
    """Read a word file (the shipped one by default); PromptError names the option, file and line."""
    p = Path(path) if path is not None else WORDS_FILE
    data = read_file_bytes(p, what, "a word file")
    text = decode_text(data, what, p)

    def fail(line: int | None, problem: str) -> PromptError:
        return PromptError(f"{what} {p}" + ("" if line is None else f":{line}") + f": {problem}")

    lists: dict[str, list[str]] = {}
    scenes: dict[str, dict[str, list[str]]] = {"outdoor": {}, "indoor": {}, "match": {}}
    current: list[str] | None = None
    kind = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _SECTION.match(line)
        if m:
            kind, family = m.group(1), m.group(2)
            if family is None and kind in LISTS:
                current = lists.setdefault(kind, [])
            elif family is not None and kind in scenes:
                if family not in FAMILIES:
                    raise fail(number, f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
                current = scenes[kind].setdefault(family, [])
            else:
                raise fail(
                    number,
                    f"unknown section {line}; use [{'], ['.join(LISTS)}], [outdoor FAMILY], "
                    "[indoor FAMILY] or [match FAMILY]",
                )
            continue
        if current is None:
            raise fail(number, f"{line!r} is outside any [section]")
        slots = _SLOT.findall(line)
        if kind == "frames":
            unknown = [s for s in slots if s.strip() not in SLOTS]
            if unknown or line.count("{") != line.count("}"):
                raise fail(
                    number,
                    f"frame {line!r}: unknown slot {{{unknown[0] if unknown else ''}}}; use "
                    + ", ".join(f"{{{s}}}" for s in SLOTS),
                )
            if "name" not in [s.strip() for s in slots]:
                raise fail(number, f"frame {line!r} has no {{name}} slot for the object's name")
        elif "{" in line or "}" in line:
            raise fail(number, f"{line!r}: braces belong in [frames] only")
        current.append(" ".join(line.split()))
    if not any(lists.values()) and not any(v for d in scenes.values() for v in d.values()):
        raise fail(None, "no word lists in the file (it is empty or holds only comments)")
    missing = [name for name in LISTS if not lists.get(name)]
    if missing:
        raise fail(None, f"no [{'], ['.join(missing)}] list")
    if not (scenes["outdoor"].get("object") or scenes["indoor"].get("object")):
        raise fail(None, "no [outdoor object] or [indoor object] scenes (what any class falls back to)")
    return WordLists(
        str(p),
        hashlib.sha256(data).hexdigest(),
        {k: tuple(v) for k, v in lists.items()},
        {k: tuple(v) for k, v in scenes["outdoor"].items()},
        {k: tuple(v) for k, v in scenes["indoor"].items()},
        {k: tuple(v) for k, v in scenes["match"].items()},
    )


_ARTICLE = re.compile(r"\b([Aa])n? (?=([\w'-]+))")
_AN_EXCEPTIONS = re.compile(r"^(?:uni|use|usu|ura|uro|eu|one|once)", re.IGNORECASE)
_AN_SILENT_H = re.compile(r"^(?:hour|honest|honou?r|heir)", re.IGNORECASE)


def fix_articles(text: str) -> str:
    """'a airliner' -> 'an airliner', 'an car' -> 'a car' (by the next word's first sound, roughly)."""

    def one(m: re.Match) -> str:
        word = m.group(2)
        vowel = (word[:1].lower() in "aeiou" and not _AN_EXCEPTIONS.match(word)) or bool(
            _AN_SILENT_H.match(word)
        )
        return m.group(1) + ("n " if vowel else " ")

    return _ARTICLE.sub(one, text)


def tidy(text: str) -> str:
    """Single spaces, no empty list items, a capital first letter."""
    text = " ".join(text.split())
    text = re.sub(r"\s+,", ",", text)
    text = re.sub(r",(\s*,)+", ",", text)
    text = re.sub(r":\s*,", ":", text).strip(" ,")
    text = fix_articles(text)
    return text[:1].upper() + text[1:]


def usable_keywords(keywords: Sequence[str], name: str) -> list[str]:
    """The CAD keywords that read well in a sentence: 1-3 plain words, not a file-format tag, not
    the name itself."""
    out = []
    for k in keywords:
        k = " ".join(str(k).replace("_", " ").split())
        words = k.lower().split()
        if (
            k
            and len(words) <= 3
            and len(k) <= 30
            and re.fullmatch(r"[A-Za-z][A-Za-z0-9' -]*", k)
            and not set(words) & JUNK_KEYWORDS
            and k.lower() != name.lower()
        ):
            out.append(k)
    return list(dict.fromkeys(out))


@dataclass
class Written:
    """What a writer kept for a group, from where, what it dropped and how much it asked for."""

    prompts: list[str]
    sources: list[str]
    dropped: dict[str, int]
    asked: int


class TemplateWriter:
    """Writes prompts from word lists (see the module docstring); the same seed, the same prompts."""

    name = "templates"

    def __init__(self, words: WordLists, seed: int = 0, suffix: str = "") -> None:
        self.words = words
        self.seed = int(seed)
        self.suffix = suffix

    def settings(self) -> dict[str, object]:
        """What decides this writer's prompts (recorded per group)."""
        return {
            "writer": self.name,
            "seed": self.seed,
            "suffix": self.suffix,
            "words_sha256": self.words.sha256,
        }

    def _pick(self, target: Target, slot: str, options: Sequence[str], k: int) -> str:
        """Slot `slot`'s phrase of prompt k: the group walks through a seeded shuffle of the list, so
        every phrase is used once before any is used again (a function of (seed, group, k) alone)."""
        cycle, index = divmod(int(k), len(options))
        order = list(options)
        random.Random(derive_seed("template-order", self.seed, target.key, slot, cycle)).shuffle(order)
        return order[index]

    def compose(self, target: Target, k: int) -> str:
        """Prompt k of the group (before the filter)."""
        rng = random.Random(derive_seed("template-prompt", self.seed, target.key, int(k)))
        w = self.words
        family = w.family(target.name, target.synset)
        outdoor = w.outdoor.get(family) or w.outdoor.get("object", ())
        indoor = w.indoor.get(family) or ()
        if not outdoor and not indoor:
            outdoor, indoor = w.outdoor.get("object", ()), w.indoor.get("object", ())
        places = [("outdoor", s) for s in outdoor] + [("indoor", s) for s in indoor]
        place, scene = self._pick(target, "scene", [f"{p}\t{s}" for p, s in places], k).split("\t")
        outside = place == "outdoor"
        frame = self._pick(target, "frames", w.lists["frames"], k)
        keywords = usable_keywords(target.keywords, target.name)
        if keywords and rng.random() < 0.35:
            detail = self._pick(target, "keywords", keywords, k)
        else:
            detail = self._pick(target, "detail", w.lists["detail"], k) if rng.random() < 0.85 else ""
        values = {
            "name": target.name,
            "scene": scene,
            "style": self._pick(target, "style", w.lists["style"], k),
            "detail": detail,
        }
        text = _SLOT.sub(lambda m: values[m.group(1).strip()], frame)
        tail = []
        if rng.random() < 0.8:
            tail.append(self._pick(target, "lighting", w.lists["lighting"], k))
        if rng.random() < 0.5:
            tail.append(self._pick(target, "time", w.lists["time"], k))
        if outside and rng.random() < 0.6:
            tail.append(self._pick(target, "weather", w.lists["weather"], k))
        if rng.random() < 0.75:
            tail.append(self._pick(target, "camera", w.lists["camera"], k))
        rng.shuffle(tail)
        return tidy(", ".join([text, *tail]))

    def write(self, target: Target, n: int, max_tries: int | None = None) -> Written:
        """N prompts for the group, or as many as the cap (`max_tries` compositions, default 50 per
        prompt) allows. The suffix is not part of them (the group records it); it counts towards
        the token limit."""
        check = PromptFilter(target.synonyms, self.suffix)
        cap = max_tries if max_tries is not None else max(100, 50 * n)
        sources: list[str] = []
        k = 0
        while len(check.kept) < n and k < cap:
            if check.offer(self.compose(target, k)):
                sources.append(f"{self.name}:k={k}")
            k += 1
        return Written(list(check.kept), sources, dict(check.dropped), k)
