"""A dataset's prompt lists (`prompts.jsonl`, dataset-format.md) and the prompt files users give.

`prompts.jsonl` holds one record per *group*: the prompts of a class, or of one model of a class
(a model's group wins over its class's), with where each prompt came from (a writer of the
`prompts` stage, the panel, a `--prompts` file), the group's negative prompt when it has its own,
and the writer's figures (kept, dropped, diversity). The generate stage picks each image's prompt
from its group by the image's seed (`prompts.PromptSource`).

Records are appended one group at a time under the file's lock (a killed writer loses at most the
group it was writing, and a torn last line is cut off by the next append) and the file is rewritten
in key order, atomically, when a writer finishes: the same groups give the same bytes.

A prompt file (`--prompts FILE`, JSON or CSV) maps class names, synsets or model ids to prompts and
a negative prompt; `resolve_entries` turns its entries into groups of a dataset's classes and models.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dataset import DATASET_JSON
from .errors import DatasetError, setting
from .files import append_records, iter_records, locked, write_bytes_atomic
from .prompts import PromptError, check_template, class_phrase, read_text_file
from .records import iter_annotations
from .synsets import is_synset

#: The file in the dataset folder.
PROMPTS_FILE = "prompts.jsonl"
#: The setting messages about a user's prompt file name.
PROMPTS = setting("prompts")
#: Formats of a user's prompt file, by suffix.
PROMPT_FILE_FORMATS = (".json", ".csv")

Key = tuple[str, str | None]


@dataclass(frozen=True)
class PromptGroup:
    """The prompts of a class (`model` None) or of one model of a class, and where they came from.

    `prompts` are templates like captions (`{class}` and `{synset}` are filled in per image; a
    writer's prompts name the object in plain words), and `suffix` is appended to each when an
    image gets it (a writer's ", best quality, extremely detailed"). `sources` says per prompt
    where it came from; `negative_prompt` None uses the run's. `settings` is what made the group (a writer's settings: a
    rerun with the same ones skips it); `stats`, `dropped` and `asked` are the writer's figures.
    """

    class_key: str
    model: str | None
    prompts: tuple[str, ...]
    sources: tuple[str, ...]
    negative_prompt: str | None = None
    suffix: str = ""
    name: str | None = None
    synset: str | None = None
    writer: str = ""
    keywords: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] | None = None
    dropped: Mapping[str, int] = field(default_factory=dict)
    asked: int | None = None

    @property
    def key(self) -> Key:
        return (self.class_key, self.model)

    def record(self) -> dict[str, Any]:
        """The prompts.jsonl record (dataset-format.md)."""
        return {
            "class": self.class_key,
            "model": self.model,
            "name": self.name,
            "synset": self.synset,
            "writer": self.writer,
            "keywords": list(self.keywords),
            "negative_prompt": self.negative_prompt,
            "suffix": self.suffix,
            "prompts": [{"text": t, "source": s} for t, s in zip(self.prompts, self.sources, strict=True)],
            "stats": None if self.stats is None else dict(self.stats),
            "dropped": dict(self.dropped),
            "asked": self.asked,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str) -> PromptGroup:
        """A group from its record; DatasetError naming `where` (file:line) and the field."""

        def bad(what: str, problem: str) -> DatasetError:
            return DatasetError(f"{where}: {what} {problem}")

        class_key = record.get("class")
        if not isinstance(class_key, str) or not class_key:
            raise bad("class", f"must be a non-empty string, got {class_key!r}")
        model = record.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise bad("model", f"must be null or a non-empty string, got {model!r}")
        items = record.get("prompts")
        if not isinstance(items, list):
            raise bad("prompts", f"must be a list, got {type(items).__name__}")
        texts, sources = [], []
        for i, item in enumerate(items):
            text = item.get("text") if isinstance(item, Mapping) else None
            if not isinstance(text, str) or not text.strip():
                raise bad(f"prompts[{i}].text", f"must be non-empty text, got {text!r}")
            try:
                check_template(text, f"prompts[{i}].text")
            except PromptError as err:
                raise DatasetError(f"{where}: {err.text}") from None
            texts.append(text)
            sources.append(str(item.get("source", "")))
        negative = record.get("negative_prompt")
        if negative is not None:
            if not isinstance(negative, str):
                raise bad("negative_prompt", f"must be null or text, got {negative!r}")
            try:
                check_template(negative, "negative_prompt")
            except PromptError as err:
                raise DatasetError(f"{where}: {err.text}") from None
        suffix = record.get("suffix") or ""
        if not isinstance(suffix, str):
            raise bad("suffix", f"must be text, got {suffix!r}")
        try:
            check_template(suffix, "suffix")
        except PromptError as err:
            raise DatasetError(f"{where}: {err.text}") from None
        keywords = record.get("keywords") or []
        dropped = record.get("dropped") or {}
        settings = record.get("settings") or {}
        stats = record.get("stats")
        for what, value, kind in (
            ("keywords", keywords, list),
            ("dropped", dropped, dict),
            ("settings", settings, dict),
        ):
            if not isinstance(value, kind):
                raise bad(what, f"must be a {kind.__name__}, got {type(value).__name__}")
        return cls(
            class_key=class_key,
            model=model,
            prompts=tuple(texts),
            sources=tuple(sources),
            negative_prompt=negative,
            suffix=suffix,
            name=record.get("name") if isinstance(record.get("name"), str) else None,
            synset=record.get("synset") if isinstance(record.get("synset"), str) else None,
            writer=str(record.get("writer") or ""),
            keywords=tuple(str(k) for k in keywords),
            settings=dict(settings),
            stats=dict(stats) if isinstance(stats, Mapping) else None,
            dropped={str(k): int(v) for k, v in dropped.items() if isinstance(v, int)},
            asked=record.get("asked") if isinstance(record.get("asked"), int) else None,
        )


def _sort_key(key: Key) -> tuple[str, int, str]:
    return (key[0], key[1] is not None, key[1] or "")


def read_groups(out: str | os.PathLike) -> dict[Key, PromptGroup]:
    """The groups of a dataset's prompts.jsonl by key (a key written twice: its last record wins);
    {} without the file. DatasetError names the file and line of a bad record."""
    path = Path(out) / PROMPTS_FILE
    groups: dict[Key, PromptGroup] = {}
    for line, record in iter_records(path):
        group = PromptGroup.from_record(record, f"{path}:{line}")
        groups[group.key] = group
    return groups


def append_groups(out: str | os.PathLike, groups: Iterable[PromptGroup]) -> None:
    """Append finished groups to prompts.jsonl (one locked write; see files.append_records)."""
    append_records(Path(out) / PROMPTS_FILE, [g.record() for g in groups])


def _lines(groups: Iterable[PromptGroup]) -> bytes:
    ordered = sorted(groups, key=lambda g: _sort_key(g.key))
    return b"".join(
        (json.dumps(g.record(), ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8") for g in ordered
    )


def rewrite_groups(out: str | os.PathLike, replace: Iterable[PromptGroup] = ()) -> dict[Key, PromptGroup]:
    """Rewrite prompts.jsonl atomically in key order, each key once, with the `replace` groups put
    in place of (or beside) the file's; returns the groups now in the file."""
    path = Path(out) / PROMPTS_FILE
    with locked(path):
        groups = read_groups(out)
        for group in replace:
            groups[group.key] = group
        if groups or path.exists():
            write_bytes_atomic(path, _lines(groups.values()))
    return groups


class PromptTable:
    """The prompt groups of a dataset, looked up per image (model first, then its class)."""

    def __init__(self, groups: Mapping[Key, PromptGroup], sha256: str, path: str = "") -> None:
        self.groups = dict(groups)
        self.sha256 = sha256
        self.path = path

    def lookup(self, class_key: str, model: str | None = None) -> PromptGroup | None:
        """The group of this model, else of its class, else None."""
        if model is not None and (class_key, model) in self.groups:
            return self.groups[(class_key, model)]
        return self.groups.get((class_key, None))

    def covers(self, class_key: str) -> bool:
        """Whether some group of the class has prompts."""
        return any(k[0] == class_key and g.prompts for k, g in self.groups.items())

    def __len__(self) -> int:
        return len(self.groups)


def load_prompt_table(out: str | os.PathLike) -> PromptTable | None:
    """The dataset's prompt table (None without prompts.jsonl). Its sha256 is what the generate
    stage's settings record, so other prompts are other settings."""
    path = Path(out) / PROMPTS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror or err})") from None
    groups = read_groups(out)
    if not groups:
        return None
    return PromptTable(groups, hashlib.sha256(data).hexdigest(), str(path))


# --------------------------------------------------------------------------- users' prompt files


@dataclass(frozen=True)
class PromptEntry:
    """One entry of a user's prompt file: a key (class name, synset or model id; `model` set when
    the file said which model), its prompts and negative prompt, and where it was in the file."""

    key: str
    model: str | None
    prompts: tuple[str, ...]
    negative_prompt: str | None
    where: str


class _Entries:
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self.entries: dict[tuple[str, str | None], dict[str, Any]] = {}

    def fail(self, line: int | str | None, problem: str) -> PromptError:
        where = f"{self.what} {self.path}" + ("" if line is None else f":{line}")
        return PromptError(f"{where}: {problem}")

    def text(self, line: int | str, value: object, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(line, f"{what} must be non-empty text, got {value!r}")
        try:
            check_template(value.strip(), what)
        except PromptError as err:
            raise self.fail(line, err.text) from None
        return value.strip()

    def add(
        self, line: int | str, key: object, model: object, prompts: Sequence[object], negative: object
    ) -> None:
        key = key.strip() if isinstance(key, str) else key
        model = model.strip() if isinstance(model, str) and model.strip() else None
        if not isinstance(key, str) or not key:
            if model is None:
                raise self.fail(line, "no class, synset or model given")
            key = ""
        texts = [self.text(line, p, "prompt") for p in prompts]
        if negative is not None and not (isinstance(negative, str) and not negative.strip()):
            negative = self.text(line, negative, "negative prompt")
        else:
            negative = None
        entry = self.entries.setdefault((key, model), {"prompts": [], "negative": None, "where": line})
        if negative is not None:
            if entry["negative"] not in (None, negative):
                raise self.fail(line, f"a second negative prompt for {key or model!r} ({negative!r})")
            entry["negative"] = negative
        entry["prompts"].extend(texts)

    def result(self) -> list[PromptEntry]:
        if not any(e["prompts"] or e["negative"] for e in self.entries.values()):
            raise self.fail(None, "no prompts in the file (it is empty or holds only comments)")
        return [
            PromptEntry(
                key, model, tuple(dict.fromkeys(e["prompts"])), e["negative"], f"{self.path}:{e['where']}"
            )
            for (key, model), e in self.entries.items()
        ]


def _read_json_entries(text: str, e: _Entries) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise e.fail(err.lineno, f"not valid JSON ({err.msg})") from None
    if isinstance(data, dict):  # {key: prompt | [prompts] | {"prompts": [...], "negative_prompt": ...}}
        for key, value in data.items():
            pos = text.find(json.dumps(key))
            line = text.count("\n", 0, pos) + 1 if pos >= 0 else 1
            if isinstance(value, dict):
                _object(e, line, {"key": key, **value})
            else:
                e.add(line, key, None, value if isinstance(value, list) else [value], None)
    elif isinstance(data, list):
        for number, obj in enumerate(data, start=1):
            _object(e, f"item {number}", obj)
    else:
        raise e.fail(1, f"expected an object or a list, got {type(data).__name__}")


def _object(e: _Entries, line: int | str, obj: object) -> None:
    if not isinstance(obj, dict):
        raise e.fail(line, f"expected a JSON object, got {type(obj).__name__}")
    prompts = obj.get("prompts", [])
    if not isinstance(prompts, list):
        raise e.fail(line, f'"prompts" must be a list of texts, got {type(prompts).__name__}')
    if "prompt" in obj:
        prompts = [*prompts, obj["prompt"]]
    if not prompts and obj.get("negative_prompt") is None:
        raise e.fail(line, 'no "prompts", "prompt" or "negative_prompt"')
    key = obj.get("key", obj.get("class", obj.get("synset")))
    e.add(line, key, obj.get("model"), prompts, obj.get("negative_prompt"))


def _read_csv_entries(text: str, e: _Entries) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [cell.strip().casefold() for cell in row]
                if not {"class", "synset", "model"} & set(header):
                    raise e.fail(line, f"the header {row} has no 'class', 'synset' or 'model' column")
                if not {"prompt", "negative_prompt"} & set(header):
                    raise e.fail(line, f"the header {row} has no 'prompt' or 'negative_prompt' column")
                continue
            if len(row) > len(header):
                raise e.fail(line, f"{len(row)} fields but the header has {len(header)}")
            cells = dict(zip(header, (c.strip() for c in row), strict=False))
            prompt = cells.get("prompt", "")
            key = cells.get("class") or cells.get("synset") or ""
            e.add(
                line,
                key,
                cells.get("model"),
                [prompt] if prompt else [],
                cells.get("negative_prompt") or None,
            )
    except csv.Error as err:
        raise e.fail(reader.line_num, f"not valid CSV ({err})") from None


def load_prompt_file(path: str | os.PathLike, what: str = PROMPTS) -> list[PromptEntry]:
    """Read a user's prompt file; PromptError names the option, the file and the line.

    - JSON: {key: prompt | [prompts] | {"prompts": [...], "negative_prompt": "..."}}, or a list of
      {"class" or "synset" or "model": ..., "prompts": [...], "prompt": ..., "negative_prompt": ...}.
    - CSV: a header with `class` (or `synset`) and/or `model`, and `prompt` and/or
      `negative_prompt`; one prompt a row, several rows per class or model.
    A key is a class name, a synset or a model id. Prompts are templates (`{class}`, `{synset}`).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in PROMPT_FILE_FORMATS:
        raise PromptError(f"{what} {p}: unknown format {suffix or '(no suffix)'!r}; use .json or .csv")
    text = read_text_file(p, what, "a prompt file")
    e = _Entries(p, what)
    (_read_json_entries if suffix == ".json" else _read_csv_entries)(text, e)
    return e.result()


def resolve_entries(
    entries: Iterable[PromptEntry],
    classes: Mapping[str, Mapping[str, Any]],
    models: Iterable[tuple[str, str]],
    *,
    source: str,
) -> tuple[list[PromptGroup], list[str]]:
    """(groups for a dataset's classes and models, the entries that match none of them, worded).

    A key matches a class key, a synset, or a class name (case and underscores aside) of
    `classes` (dataset.json's class key -> {"name", "synset"}); otherwise a model id of `models`
    ((class key, model id) pairs). An entry with `model` set is that model's (of its class when
    the key names one). Entries of the same group are merged in file order.
    """
    models = sorted(set(models))
    by_name: dict[str, str] = {}
    for class_key, desc in classes.items():
        by_name.setdefault(class_key.casefold(), class_key)
        for value in (desc.get("synset"), desc.get("name")):
            if isinstance(value, str) and value:
                by_name.setdefault(
                    class_phrase(value).casefold() if not is_synset(value) else value.casefold(), class_key
                )
    groups: dict[Key, dict[str, Any]] = {}
    unmatched: list[str] = []
    for entry in entries:
        key = entry.key
        class_key = by_name.get(key.casefold()) or by_name.get(class_phrase(key).casefold()) if key else None
        targets: list[Key]
        if entry.model is not None:
            targets = [
                (c, m) for c, m in models if m == entry.model and (class_key is None or c == class_key)
            ]
        elif class_key is not None:
            targets = [(class_key, None)]
        else:
            targets = [(c, m) for c, m in models if m == key]
        if not targets:
            unmatched.append(f"{entry.where}: {entry.model or key!r} is no class or model of the dataset")
            continue
        for target in targets:
            g = groups.setdefault(target, {"prompts": [], "negative": None})
            g["prompts"].extend(p for p in entry.prompts if p not in g["prompts"])
            if entry.negative_prompt is not None:
                g["negative"] = entry.negative_prompt
    result = []
    for (class_key, model), g in sorted(groups.items(), key=lambda kv: _sort_key(kv[0])):
        desc = classes.get(class_key) or {}
        result.append(
            PromptGroup(
                class_key=class_key,
                model=model,
                prompts=tuple(g["prompts"]),
                sources=(source,) * len(g["prompts"]),
                negative_prompt=g["negative"],
                name=desc.get("name"),
                synset=desc.get("synset"),
                writer="file",
                settings={"writer": "file", "source": source},
            )
        )
    return result, unmatched


#: Writers whose groups a prompt file or the panel may replace (the user's own lists).
USER_WRITERS = ("file", "panel", "")


def dataset_targets(out: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
    """(the classes of dataset.json, the (class key, model id) pairs of its annotations)."""
    root = Path(out)
    try:
        info = json.loads((root / DATASET_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    classes = info.get("classes") if isinstance(info, dict) else None
    models: set[tuple[str, str]] = set()
    found: dict[str, dict[str, Any]] = {}
    for record in iter_annotations(root):
        class_key = record["id"].split("/")[0]
        models.add((class_key, record["cad"]["model_id"]))
        found.setdefault(class_key, dict(record["class"]))
    if isinstance(classes, dict):
        found.update({k: dict(v) for k, v in classes.items() if isinstance(v, dict)})
    return found, models


def merge_prompt_file(
    out: str | os.PathLike, entries: Sequence[PromptEntry], source: str
) -> tuple[list[PromptGroup], list[str]]:
    """Put a prompt file's groups into the dataset's prompts.jsonl; returns (the groups, the
    entries that match no class or model, worded). A group a prompt writer made (the `prompts`
    stage) is not replaced: PromptError names it, and nothing is written."""
    classes, models = dataset_targets(out)
    groups, unmatched = resolve_entries(entries, classes, models, source=source)
    existing = read_groups(out)
    for g in groups:
        old = existing.get(g.key)
        if old is not None and old.writer not in USER_WRITERS and old.prompts:
            who = g.class_key if g.model is None else f"{g.class_key}/{g.model}"
            raise PromptError(
                f"{PROMPTS} {source}: {who} already has {len(old.prompts)} prompts from the {old.writer} "
                f"writer in {Path(out) / PROMPTS_FILE}; leave {who} out of the file, or move prompts.jsonl away"
            )
    if groups:
        rewrite_groups(out, groups)
    return groups, unmatched
