"""What the `prompts` stage writes prompts for: one group per class, or per model where the models
of a class have different keywords, read from a dataset's annotations and the models' metadata."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.records import iter_annotations
from ..core.synsets import display_name, synonyms
from .keywords import KeywordSources


@dataclass(frozen=True)
class PromptTarget:
    """One group to write prompts for: its class (and model), the name prompts use, the names that
    count as naming it, and its keywords."""

    class_key: str
    model: str | None
    name: str
    synset: str | None
    synonyms: tuple[str, ...]
    keywords: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """`<class>` or `<class>/<model>`: what seeds are derived from."""
        return self.class_key if self.model is None else f"{self.class_key}/{self.model}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy (sent to the LLM worker)."""
        return {
            "class_key": self.class_key,
            "model": self.model,
            "name": self.name,
            "synset": self.synset,
            "synonyms": list(self.synonyms),
            "keywords": list(self.keywords),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptTarget:
        return cls(
            data["class_key"],
            data.get("model"),
            data["name"],
            data.get("synset"),
            tuple(data.get("synonyms") or (data["name"],)),
            tuple(data.get("keywords") or ()),
        )


def target_for(
    class_key: str,
    class_name: str,
    synset: str | None,
    model: str | None = None,
    keywords: Iterable[str] = (),
) -> PromptTarget:
    """A target with the class's readable name and synonyms (synsets.py)."""
    name = display_name(class_name, synset).replace("_", " ")
    names = synonyms(class_name, synset)
    return PromptTarget(class_key, model, name, synset, tuple(dict.fromkeys((name, *names))), tuple(keywords))


def plan_targets(
    out: str | os.PathLike, sources: KeywordSources, classes: Iterable[str] | None = None
) -> list[PromptTarget]:
    """The dataset's groups, in class order: a class whose models all have the same keywords is one
    group; otherwise each model is a group with its own keywords. `classes` (class keys, names or
    synsets) limits them."""
    wanted = {c.casefold() for c in classes or ()}
    found: dict[str, dict[str, Any]] = {}
    for record in iter_annotations(Path(out)):
        class_key = record["id"].split("/")[0]
        info = record["class"]
        if (
            wanted
            and not {class_key.casefold(), str(info["name"]).casefold(), str(info["synset"]).casefold()}
            & wanted
        ):
            continue
        entry = found.setdefault(class_key, {"name": info["name"], "synset": info["synset"], "models": {}})
        entry["models"].setdefault(record["cad"]["model_id"], record["cad"]["path"])
    targets: list[PromptTarget] = []
    for class_key in sorted(found):
        entry = found[class_key]
        per_model = {m: sources.for_model(path, m) for m, path in sorted(entry["models"].items())}
        distinct = set(per_model.values())
        if len(distinct) <= 1:
            keywords = next(iter(distinct), ())
            targets.append(target_for(class_key, entry["name"], entry["synset"], None, keywords))
        else:
            targets += [
                target_for(class_key, entry["name"], entry["synset"], model, keywords)
                for model, keywords in per_model.items()
            ]
    return targets
