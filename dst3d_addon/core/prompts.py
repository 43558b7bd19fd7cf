"""Prompts of the generate stage: templates, caption files, and the seeded choice of each image's prompt.

A prompt is a template with the placeholders `{class}` (the class name, underscores as spaces) and
`{synset}` (the WordNet id, empty when unknown); `{{` and `}}` are literal braces. Caption files
(3D-DST released LLM-written captions per ImageNet class) give several prompts per class; each
image picks one from its own seed, so the choice never depends on batching, sharding or resuming.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from .errors import Dst3dError, setting
from .seeds import derive_seed
from .synsets import display_name

#: The settings prompt messages name.
PROMPT = setting("prompt")
NEGATIVE_PROMPT = setting("negative_prompt")

#: 3D-DST's prompt and negative prompt, and what its prompt adds after the object (the suffix the
#: prompt writers append by default).
PAPER_PROMPT = "An image of {class}, best quality, extremely detailed"
PAPER_SUFFIX = ", best quality, extremely detailed"
PAPER_NEGATIVE = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, "
    "worst quality, low quality"
)

#: The placeholders a template may use.
PLACEHOLDERS = ("class", "synset")

#: Caption file formats, by suffix.
CAPTION_FORMATS = (".csv", ".jsonl", ".ndjson", ".json", ".txt")

_SYNSET = re.compile(r"^n\d{8}$")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class PromptError(Dst3dError, ValueError):
    """A bad prompt template or caption file; the message names the option or file:line."""


def read_text_file(path: str | os.PathLike, what: str, kind: str) -> str:
    """The text of a user's file (UTF-8, a BOM dropped); PromptError names `what` (the option or
    setting), the file and, for bytes that are not UTF-8, the line. `kind` words a folder given
    instead ("a caption file")."""
    return decode_text(read_file_bytes(path, what, kind), what, path)


def read_file_bytes(path: str | os.PathLike, what: str, kind: str) -> bytes:
    """The bytes of a user's file; PromptError naming `what` and the file (see `read_text_file`)."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise PromptError(f"{what} {p}: file not found") from None
    except IsADirectoryError:
        raise PromptError(f"{what} {p}: is a folder, not {kind}") from None
    except OSError as err:
        raise PromptError(f"{what} {p}: cannot read ({err.strerror or err})") from None


def decode_text(data: bytes, what: str, path: str | os.PathLike) -> str:
    """`data` as UTF-8 text (a BOM dropped); PromptError naming `what`, the file and the line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise PromptError(f"{what} {path}:{line}: not UTF-8 text") from None


# --------------------------------------------------------------------------- templates


def _parse(template: str, what: str) -> list[tuple[bool, str]]:
    """The template as (is_placeholder, text) parts; PromptError naming `what` if malformed."""
    if not isinstance(template, str):
        raise PromptError(f"{what}: must be text, got {type(template).__name__}")
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        if m.start() > pos:
            parts.append((False, template[pos : m.start()]))
        token = m.group(0)
        if token in ("{{", "}}"):
            parts.append((False, token[0]))
        elif token in ("{", "}"):
            raise PromptError(
                f"{what} {template!r}: unmatched {token!r} at character {m.start() + 1}; "
                f"write {token * 2} for a literal brace"
            )
        else:
            name = m.group(1).strip()
            if name not in PLACEHOLDERS:
                raise PromptError(
                    f"{what} {template!r}: unknown placeholder {token}; use {{class}} or {{synset}} "
                    "({{ and }} for literal braces)"
                )
            parts.append((True, name))
        pos = m.end()
    if pos < len(template):
        parts.append((False, template[pos:]))
    return parts


def check_template(template: str, what: str = PROMPT) -> None:
    """Raise PromptError (naming `what`) unless `template` is a valid prompt template."""
    _parse(template, what)


def class_phrase(class_name: str) -> str:
    """How a class name reads in a prompt: underscores as spaces ("pickup_truck" -> "pickup truck")."""
    return " ".join(str(class_name).replace("_", " ").split())


def render_template(template: str, class_name: str, synset: str | None = None, what: str = PROMPT) -> str:
    """The template with `{class}` and `{synset}` filled in (`{synset}` is empty when unknown).

    `{class}` is the class's readable name (`synsets.display_name`): a class recorded only by its
    synset id reads as that synset's name ("n02690373" -> "airliner")."""
    values = {"class": class_phrase(display_name(class_name, synset)), "synset": synset or ""}
    return "".join(values[text] if is_field else text for is_field, text in _parse(template, what))


# --------------------------------------------------------------------------- caption files


def _class_key(name: str) -> str:
    """Class names match case-insensitively, with underscores and runs of spaces alike."""
    return class_phrase(name).casefold()


@dataclass(frozen=True)
class Captions:
    """The prompts of a caption file: per synset, per class name, and for every class (.txt)."""

    path: str
    sha256: str
    by_synset: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    by_class: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    common: tuple[str, ...] = ()

    def lookup(self, class_name: str, synset: str | None = None) -> tuple[str, ...]:
        """The captions of a class: those of its synset, else of its name, else the common ones
        (a .txt file); () when the file has none for it (the caller falls back to its template)."""
        if synset and synset.casefold() in self.by_synset:
            return self.by_synset[synset.casefold()]
        key = _class_key(class_name)
        if key in self.by_class:
            return self.by_class[key]
        return self.common

    def __len__(self) -> int:
        return (
            len(self.common) + sum(map(len, self.by_synset.values())) + sum(map(len, self.by_class.values()))
        )


def _freeze(index: dict[str, list[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({k: tuple(v) for k, v in index.items()})


class _Collector:
    """Gathers (key kind, key, caption) entries, checking each caption as a template."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_synset: dict[str, list[str]] = {}
        self.by_class: dict[str, list[str]] = {}
        self.common: list[str] = []

    def fail(self, line: int | str | None, problem: str) -> PromptError:
        where = f"{self.path}" if line is None else f"{self.path}:{line}"
        return PromptError(f"{where}: {problem}")

    def caption(self, line: int | str, text: object) -> str:
        if not isinstance(text, str) or not text.strip():
            raise self.fail(line, f"caption must be non-empty text, got {text!r}")
        try:
            check_template(text.strip(), "caption")
        except PromptError as err:
            raise self.fail(line, str(err)) from None
        return text.strip()

    def add(self, line: int | str, cls: object, synset: object, captions: Iterable[object]) -> None:
        cls = cls.strip() if isinstance(cls, str) else cls
        synset = synset.strip() if isinstance(synset, str) else synset
        if cls in (None, "") and synset in (None, ""):
            raise self.fail(line, "no class or synset given")
        for what, value in (("class", cls), ("synset", synset)):
            if value is not None and not isinstance(value, str):
                raise self.fail(line, f"{what} must be text, got {value!r}")
        texts = [self.caption(line, c) for c in captions]
        if not texts:
            raise self.fail(line, "no caption given")
        if synset:
            self.by_synset.setdefault(synset.casefold(), []).extend(texts)
        if cls:
            # A synset written in the class column (n02690373) is matched as a synset.
            index = self.by_synset if _SYNSET.match(cls) else self.by_class
            index.setdefault(cls.casefold() if _SYNSET.match(cls) else _class_key(cls), []).extend(texts)

    def result(self, digest: str) -> Captions:
        if not (self.by_synset or self.by_class or self.common):
            raise self.fail(None, "no captions in the file (it is empty or holds only comments)")
        return Captions(
            str(self.path), digest, _freeze(self.by_synset), _freeze(self.by_class), tuple(self.common)
        )


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def _cell(row: list[str], index: int | None) -> str | None:
    return row[index] if index is not None and index < len(row) else None


def _read_csv(text: str, c: _Collector) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip().casefold() for cell in row]
                k_class = _column(header, ("class", "class_name", "name"))
                k_synset = _column(header, ("synset", "wnid"))
                k_caption = _column(header, ("caption", "prompt"))
                if k_class is None and k_synset is None:
                    raise c.fail(line, f"the header {row} has no 'class' or 'synset' column")
                if k_caption is None:
                    raise c.fail(line, f"the header {row} has no 'caption' or 'prompt' column")
                continue
            if len(row) > len(header):
                raise c.fail(line, f"{len(row)} fields but the header has {len(header)}")
            c.add(line, _cell(row, k_class), _cell(row, k_synset), [_cell(row, k_caption)])
    except csv.Error as err:
        raise c.fail(reader.line_num, f"not valid CSV ({err})") from None


def _add_object(c: _Collector, line: int | str, obj: object) -> None:
    if not isinstance(obj, dict):
        raise c.fail(line, f"expected a JSON object, got {type(obj).__name__}")
    keys = [k for k in ("caption", "captions", "prompt") if k in obj]
    if not keys:
        raise c.fail(line, 'no "caption", "captions" or "prompt" key')
    captions: list[object] = []
    for k in keys:
        value = obj[k]
        if k == "captions":
            if not isinstance(value, list):
                raise c.fail(line, f'"captions" must be a list of texts, got {type(value).__name__}')
            captions.extend(value)
        else:
            captions.append(value)
    c.add(line, obj.get("class", obj.get("class_name")), obj.get("synset"), captions)


def _read_jsonl(text: str, c: _Collector) -> None:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise c.fail(number, f"not valid JSON ({err.msg})") from None
        _add_object(c, number, obj)


def _line_of(text: str, needle: str) -> int:
    """The line where a JSON key first appears (for messages about a whole-file .json)."""
    pos = text.find(json.dumps(needle))
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def _read_json(text: str, c: _Collector) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise c.fail(err.lineno, f"not valid JSON ({err.msg})") from None
    if isinstance(data, list):  # a list of the same objects as a .jsonl file
        for number, obj in enumerate(data, start=1):
            _add_object(c, f"item {number}", obj)
    elif isinstance(data, dict):  # {class or synset: caption or [captions]}
        for key, value in data.items():
            line = _line_of(text, key)
            values = value if isinstance(value, list) else [value]
            if _SYNSET.match(key):
                c.add(line, None, key, values)
            else:
                c.add(line, key, None, values)
    else:
        raise c.fail(1, f"expected an object or a list, got {type(data).__name__}")


def _read_txt(text: str, c: _Collector) -> None:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            c.common.append(c.caption(number, line))


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes (what dataset.json records instead of its path)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_captions(path: str | os.PathLike, what: str = setting("captions")) -> Captions:
    """Read a caption file (.csv, .jsonl/.ndjson, .json or .txt); PromptError names file:line.

    - CSV: a header with a `class` (or `synset`) column and a `caption` (or `prompt`) column;
      several rows per class give several captions.
    - JSONL: one object a line with "class" or "synset" and "caption", "captions" (a list) or "prompt".
    - JSON: a list of such objects, or {class or synset: caption or [captions]}.
    - TXT: one prompt a line for every class (blank lines and `#` comments skipped).
    Captions are templates too: `{class}` and `{synset}` are filled in per image.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in CAPTION_FORMATS:
        raise PromptError(
            f"{what} {p}: unknown caption format {suffix or '(no suffix)'!r}; use {', '.join(CAPTION_FORMATS)}"
        )
    data = read_file_bytes(p, what, "a caption file")
    text = decode_text(data, what, p)
    c = _Collector(p)
    {
        ".csv": _read_csv,
        ".jsonl": _read_jsonl,
        ".ndjson": _read_jsonl,
        ".json": _read_json,
        ".txt": _read_txt,
    }[suffix](text, c)
    return c.result(hashlib.sha256(data).hexdigest())


# --------------------------------------------------------------------------- the choice per image


class PromptGroupLike(Protocol):
    """A group of a dataset's prompt table (prompt_table.PromptGroup): its prompts, the suffix
    appended to each, its own negative prompt (None: the run's)."""

    prompts: tuple[str, ...]
    suffix: str
    negative_prompt: str | None


class PromptTableLike(Protocol):
    """A dataset's prompt table (prompt_table.PromptTable): prompts per class or per model."""

    sha256: str

    def lookup(self, class_key: str, model: str | None = None) -> PromptGroupLike | None: ...


@dataclass(frozen=True)
class PromptSource:
    """Where each image's prompt comes from: its group of the dataset's prompt table
    (prompts.jsonl: its model's, else its class's) together with the captions of its class, else
    the template.

    A class neither the table nor the caption file mentions falls back to the template (a .txt
    caption file's prompts apply to every class, so with one the template is never used).
    `negative` is rendered with the same placeholders; a table group's own negative prompt wins.
    """

    template: str = PAPER_PROMPT
    negative: str = PAPER_NEGATIVE
    captions: Captions | None = None
    table: PromptTableLike | None = None

    def __post_init__(self) -> None:
        check_template(self.template, PROMPT)
        check_template(self.negative, NEGATIVE_PROMPT)

    @classmethod
    def load(cls, template: str, negative: str, captions: str | os.PathLike | None = None) -> PromptSource:
        """A source from the settings' prompt, negative prompt and caption file path (read here)."""
        return cls(template, negative, None if captions is None else load_captions(captions))

    @property
    def captions_digest(self) -> str | None:
        """The sha256 of the caption file's bytes, or None without one."""
        return None if self.captions is None else self.captions.sha256

    @property
    def table_digest(self) -> str | None:
        """The sha256 of the prompt table's file (prompts.jsonl), or None without one."""
        return None if self.table is None else self.table.sha256

    def with_table(self, table: PromptTableLike | None) -> PromptSource:
        """A copy that also draws from a dataset's prompt table."""
        return replace(self, table=table)

    def _group(self, class_name: str, synset: str | None, model: str | None) -> PromptGroupLike | None:
        if self.table is None:
            return None
        return self.table.lookup(synset or class_name, model)

    def candidates(
        self, class_name: str, synset: str | None = None, model: str | None = None
    ) -> tuple[str, ...]:
        """The prompts (templates) one image of this class (and model) may get: its table group's,
        then its captions (each once), else the template."""
        group = self._group(class_name, synset, model)
        found = tuple(p + group.suffix for p in group.prompts) if group is not None else ()
        if self.captions is not None:
            found += tuple(c for c in self.captions.lookup(class_name, synset) if c not in found)
        return found or (self.template,)

    def uncaptioned(self, classes: Iterable[tuple[str, str | None]]) -> list[str]:
        """Of (class name, synset) pairs, those a caption file was given for but has no caption of
        and the prompt table no prompts for (their images use the template): what a run should say
        rather than do silently."""
        if self.captions is None:
            return []
        return sorted(
            {
                name
                for name, synset in classes
                if not self.captions.lookup(name, synset) and not self._covered(name, synset)
            }
        )

    def _covered(self, class_name: str, synset: str | None) -> bool:
        covers = getattr(self.table, "covers", None)
        return bool(covers is not None and covers(synset or class_name))

    def choose(
        self, seed: int, class_name: str, synset: str | None = None, model: str | None = None
    ) -> tuple[str, str]:
        """(prompt, negative prompt) of the image with that seed: one of the candidates, picked by
        `derive_seed(seed, "prompt") % n`, so the same seed always gets the same prompt."""
        options = self.candidates(class_name, synset, model)
        chosen = options[derive_seed(int(seed), "prompt") % len(options)]
        group = self._group(class_name, synset, model)
        negative = self.negative
        if group is not None and group.negative_prompt is not None:
            negative = group.negative_prompt
        return (
            render_template(chosen, class_name, synset, "caption"),
            render_template(negative, class_name, synset, NEGATIVE_PROMPT),
        )

    def for_object(self, prompt: str | None = None, negative: str | None = None) -> PromptSource:
        """A copy for one object with its own prompt (replacing template and captions) and/or
        negative prompt; None keeps this source's."""
        if prompt is not None:
            check_template(prompt, "object prompt")
        if negative is not None:
            check_template(negative, "object negative prompt")
        return replace(
            self,
            template=self.template if prompt is None else prompt,
            captions=self.captions if prompt is None else None,
            table=self.table if prompt is None else None,
            negative=self.negative if negative is None else negative,
        )
