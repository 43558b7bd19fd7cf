"""Keywords of a CAD model from its dataset's metadata, as 3D-DST's helpers read them.

- ShapeNet: the model's `wnlemmas` (comma-separated) and `name` from ShapeNet's metadata CSV files
  (`<synset>.csv`: fullId, wnsynset, wnlemmas, up, front, name, tags; found next to the synset
  folders, or given with `--metadata`), and the category's names from `taxonomy.json`.
- Objaverse: the tag names and the first category's name of the model's annotation (the JSON that
  objaverse's `load_annotations` returns, uid -> {"tags": [{"name"}], "categories": [{"name"}]},
  plain or gzipped, given with `--metadata`).
- OmniObject3D: the category of `omniobject3d_<category>_<nnn>` ("toy_car" -> "toy car").
- Any `--cad` file: a sidecar `<stem>.json` or `model.json` beside it, {"name": ..., "keywords": [...]}.
- `--keywords`: given words, for every model.

Missing metadata is not an error: a model without keywords is described by its class name alone.
A metadata file or sidecar that cannot be read is (PromptError naming the file).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import setting
from ..core.prompts import PromptError, decode_text

METADATA = setting("metadata")
KEYWORDS = setting("keywords")
_SHAPENET_SYNSET = re.compile(r"^\d{8}$")
_OMNI = re.compile(r"^omniobject3d_(?P<category>.+)_\d+$")
#: Sidecar names beside a CAD file, besides `<stem>.json`.
SIDECAR = "model.json"


def _words(values: Iterable[object]) -> list[str]:
    out = []
    for v in values:
        text = " ".join(str(v).replace("_", " ").split()) if v is not None else ""
        if text:
            out.append(text)
    return list(dict.fromkeys(out))


def _read_text(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PromptError(f"{what} {path}: file not found") from None
    except OSError as err:
        raise PromptError(f"{what} {path}: cannot read ({err.strerror or err})") from None
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise PromptError(f"{what} {path}: not a gzip file ({err})") from None
    return decode_text(data, what, path)


def _json(path: Path, what: str) -> Any:
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PromptError(f"{what} {path}:{err.lineno}: not valid JSON ({err.msg})") from None


class KeywordSources:
    """Where keywords come from: metadata files, sidecars, and words given for every model."""

    def __init__(self, metadata: Sequence[str | os.PathLike] = (), extra: Sequence[str] = ()) -> None:
        self.extra = tuple(_words(extra))
        self.shapenet: dict[str, list[str]] = {}  # model id -> wnlemmas + name
        self.taxonomy: dict[str, list[str]] = {}  # ShapeNet synset offset -> its names
        self.objaverse: dict[str, list[str]] = {}  # uid -> tags + first category
        self._roots_seen: set[Path] = set()
        self._csvs_seen: set[Path] = set()
        for path in metadata:
            self.add_file(Path(path))

    # ------------------------------------------------------------------------------------ files
    def add_file(self, path: Path, what: str = METADATA) -> None:
        """Read one metadata file: a ShapeNet CSV, a ShapeNet taxonomy.json, or Objaverse annotations."""
        suffixes = "".join(path.suffixes[-2:]).lower()
        if path.suffix.lower() == ".csv":
            self._add_shapenet_csv(path, what)
            return
        if not suffixes.endswith((".json", ".json.gz")):
            raise PromptError(
                f"{what} {path}: unknown metadata file; give a ShapeNet <synset>.csv or taxonomy.json, "
                "or Objaverse annotations (.json or .json.gz)"
            )
        data = _json(path, what)
        if isinstance(data, list):
            self._add_taxonomy(path, data, what)
        elif isinstance(data, dict):
            self._add_objaverse(path, data, what)
        else:
            raise PromptError(f"{what} {path}: expected a JSON object or list, got {type(data).__name__}")

    def _add_shapenet_csv(self, path: Path, what: str) -> None:
        reader = csv.DictReader(io.StringIO(_read_text(path, what), newline=""))
        fields = [f.strip().casefold() for f in reader.fieldnames or []]
        if "fullid" not in fields:
            raise PromptError(
                f"{what} {path}:1: no 'fullId' column (a ShapeNet metadata CSV has fullId, wnlemmas, name)"
            )
        try:
            for row in reader:
                row = {k.strip().casefold(): (v or "") for k, v in row.items() if k}
                model = row.get("fullid", "").split(".", 1)[-1].strip()
                if model:
                    self.shapenet[model] = _words([*row.get("wnlemmas", "").split(","), row.get("name", "")])
        except csv.Error as err:
            raise PromptError(f"{what} {path}:{reader.line_num}: not valid CSV ({err})") from None

    def _add_taxonomy(self, path: Path, data: list, what: str) -> None:
        for i, node in enumerate(data):
            if not isinstance(node, dict) or not isinstance(node.get("synsetId"), str):
                raise PromptError(f"{what} {path}: item {i + 1} is not a taxonomy entry with a synsetId")
            self.taxonomy[node["synsetId"]] = _words(str(node.get("name", "")).split(","))

    def _add_objaverse(self, path: Path, data: dict, what: str) -> None:
        for uid, anno in data.items():
            if not isinstance(anno, dict):
                raise PromptError(f"{what} {path}: the annotation of {uid!r} is not an object")
            tags = [t.get("name") for t in anno.get("tags") or [] if isinstance(t, dict)]
            categories = [c.get("name") for c in anno.get("categories") or [] if isinstance(c, dict)]
            self.objaverse[str(uid)] = _words([*tags, *categories[:1]])

    def _discover_shapenet(self, cad: Path) -> str | None:
        """For a ShapeNet layout path, read the root's taxonomy.json and <synset>.csv once; returns
        the ShapeNet synset folder's name (None when the path is not ShapeNet's layout)."""
        parts = cad.parts
        for i in range(len(parts) - 2, 0, -1):
            if _SHAPENET_SYNSET.match(parts[i]):
                root, synset = Path(*parts[:i]) if i else Path("."), parts[i]
                if root not in self._roots_seen:
                    self._roots_seen.add(root)
                    for candidate in (root / "taxonomy.json", root.parent / "taxonomy.json"):
                        if candidate.is_file():
                            self.add_file(candidate)
                            break
                csv_path = root / f"{synset}.csv"
                if csv_path not in self._csvs_seen and csv_path.is_file():
                    self._csvs_seen.add(csv_path)
                    self.add_file(csv_path)
                return synset
        return None

    # ------------------------------------------------------------------------------------ per model
    def for_model(self, cad_path: str | None, model_id: str) -> tuple[str, ...]:
        """The model's keywords (metadata found for it, its sidecar, then the given words)."""
        found: list[str] = []
        cad = Path(cad_path) if cad_path else None
        shapenet_synset = self._discover_shapenet(cad) if cad is not None else None
        if model_id in self.shapenet:
            found += self.shapenet[model_id]
        if shapenet_synset is not None and shapenet_synset in self.taxonomy:
            found += self.taxonomy[shapenet_synset]
        if model_id in self.objaverse:
            found += self.objaverse[model_id]
        m = _OMNI.match(model_id)
        category = m.group("category") if m else _omni_category(cad)
        if category:
            found += _words([category])
        if cad is not None:
            found += sidecar_keywords(cad)
        found += self.extra
        return tuple(dict.fromkeys(found))


def _omni_category(cad: Path | None) -> str | None:
    """`.../<category>/<category>_<nnn>/Scan/Scan.obj` (OmniObject3D's raw scans) -> category."""
    if cad is None or cad.name.lower() != "scan.obj" or len(cad.parts) < 4:
        return None
    model, category = cad.parts[-3], cad.parts[-4]
    return category if model.startswith(category + "_") else None


def sidecar_keywords(cad: Path) -> list[str]:
    """The name and keywords of a sidecar `<stem>.json` (or `model.json`) beside a CAD file; []
    without one, or when the JSON beside it is not a sidecar (ShapeNet's model_normalized.json)."""
    for candidate in (cad.with_suffix(".json"), cad.with_name(SIDECAR)):
        if candidate == cad or not candidate.is_file():
            continue
        data = _json(candidate, "sidecar")
        if not isinstance(data, dict) or not ({"name", "keywords"} & set(data)):
            continue
        name, words = data.get("name"), data.get("keywords", [])
        if name is not None and not isinstance(name, str):
            raise PromptError(f'sidecar {candidate}: "name" must be text, got {name!r}')
        if isinstance(words, str):
            words = words.split(",")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise PromptError(f'sidecar {candidate}: "keywords" must be a list of texts, got {words!r}')
        return _words([name, *words])
    return []


def parse_keywords(text: str | None) -> list[str]:
    """`--keywords "jet, white livery"` as a list."""
    return _words((text or "").split(","))
