"""Readable names of WordNet synsets: what prompts, reports and exports call a class.

A class known only by its synset id (a catalogue run without `--class-name`) reads as its first
WordNet lemma: n02690373 is "airliner", n02958343 "car". The table (`resources/synset_names.tsv`,
made by `tools/make_synset_names.py` from timm's ImageNet lists; WordNet 3.0's lemmas, its license
next to it) covers ImageNet-1k and ShapeNetCore's 55 categories; it also gives each synset's other
lemmas (the synonyms a written prompt may use) and a coarse family (vehicle, furniture, animal, ...)
that picks the template writer's scenes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent / "resources"
TABLE = RESOURCES / "synset_names.tsv"

#: What a WordNet noun synset id looks like.
SYNSET = re.compile(r"^n\d{8}$")
#: ShapeNetCore v2's 55 categories: its folder names, WordNet 3.0 noun offsets (the synset is "n" + one).
SHAPENET_55 = (
    "02691156",
    "02747177",
    "02773838",
    "02801938",
    "02808440",
    "02818832",
    "02828884",
    "02843684",
    "02871439",
    "02876657",
    "02880940",
    "02924116",
    "02933112",
    "02942699",
    "02946921",
    "02954340",
    "02958343",
    "02992529",
    "03001627",
    "03046257",
    "03085013",
    "03207941",
    "03211117",
    "03261776",
    "03325088",
    "03337140",
    "03467517",
    "03513137",
    "03593526",
    "03624134",
    "03636649",
    "03642806",
    "03691459",
    "03710193",
    "03759954",
    "03761084",
    "03790512",
    "03797390",
    "03928116",
    "03938244",
    "03948459",
    "03991062",
    "04004475",
    "04074963",
    "04090263",
    "04099429",
    "04225987",
    "04256520",
    "04330267",
    "04379243",
    "04401088",
    "04460130",
    "04468005",
    "04530566",
    "04554684",
)
#: The families of the template writer (`resources/synset_names.tsv`'s third column).
FAMILIES = (
    "aircraft",
    "watercraft",
    "vehicle",
    "furniture",
    "structure",
    "animal",
    "aquatic",
    "plant",
    "object",
)


@dataclass(frozen=True)
class SynsetInfo:
    """One synset of the table: its lemmas (the first is its name) and its family."""

    synset: str
    lemmas: tuple[str, ...]
    family: str

    @property
    def name(self) -> str:
        return self.lemmas[0]


@functools.cache
def _table() -> dict[str, SynsetInfo]:
    table: dict[str, SynsetInfo] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        synset, lemmas, family = line.split("\t")
        table[synset] = SynsetInfo(synset, tuple(x.strip() for x in lemmas.split(",") if x.strip()), family)
    return table


def is_synset(text: str | None) -> bool:
    """Whether `text` looks like a WordNet noun synset id (n + 8 digits)."""
    return isinstance(text, str) and SYNSET.match(text.strip()) is not None


def synset_info(synset: str | None) -> SynsetInfo | None:
    """The table's entry for `synset` (None when unknown or not a synset id)."""
    if not is_synset(synset):
        return None
    return _table().get(synset.strip().lower())


def synset_name(synset: str | None) -> str | None:
    """The readable name of a synset ("airliner"), or None when the table does not know it."""
    info = synset_info(synset)
    return None if info is None else info.name


def known_synsets() -> tuple[str, ...]:
    """Every synset the table names, sorted."""
    return tuple(sorted(_table()))


def display_name(class_name: str | None, synset: str | None = None) -> str:
    """What a class is called in prompts, reports and exports.

    The given class name, unless it is empty or only a synset id (what a catalogue run without
    `--class-name` used to record): then the table's name of that synset, else the id itself.
    """
    name = (class_name or "").strip()
    if name and not is_synset(name):
        return name
    for candidate in (name, synset):
        found = synset_name(candidate)
        if found is not None:
            return found
    return name or (synset or "").strip() or "object"


def synonyms(class_name: str | None, synset: str | None = None) -> tuple[str, ...]:
    """The ways a prompt may name the class: its display name first, then the synset's lemmas."""
    names = [display_name(class_name, synset)]
    info = synset_info(synset) or synset_info(class_name)
    if info is not None:
        names += list(info.lemmas)
    seen: dict[str, str] = {}
    for n in names:
        seen.setdefault(n.casefold().replace("_", " "), n.replace("_", " "))
    return tuple(seen.values())


def family_of(class_name: str | None, synset: str | None = None) -> str | None:
    """The synset's family from the table (None when the table does not know the synset)."""
    info = synset_info(synset) or synset_info(class_name)
    return None if info is None else info.family
