"""3D-DST's model catalogue: which CAD model renders for which class, with its pose offset.

3D-DST ships its models as one CSV (`--model_path 3d-dst-models.csv`, read with pandas, so the
first row is a header) with the columns

    synset, model, distance, azimuth, elevation, strength, sampling

and renders each row with `scripts/blender_render.py` of github.com/wufeim/DST3D:

- `model`: a ShapeNetCore id, an Objaverse uid, `omniobject3d_<category>_<nnn>`, or `toys4k_...`
  (a .blend file: not supported here).
- `distance`: the camera distance in normalised units (longest bounding-box side = 1, as ours).
- `azimuth`, `elevation` (degrees): the model's pose offset. Their script samples a camera at a
  Blender-spherical (theta from +X, polar phi from +Z) relative to the model's canonical pose,
  then adds the offset in the imported scene: theta += azimuth, phi -= elevation.
- `strength`: passed to the renderer and stored in each annotation; not used by any released code.
- `sampling`: the pose-sampling strategy 1-5 (sampling.py).

3D-DST imports OBJ with Blender's importer defaults (forward -Z, up Y) and glTF with its fixed
+Y-up to +Z-up change; import_cad uses the same axis changes, so with forward="-Y", up="Z" the
offsets act on the same scene frame as theirs.

How this maps to dst3d (pose-convention.md): a = theta + 90 deg and e = 90 deg - phi for absolute angles
(`from_dst_angles`). The offsets are differences of angles, so they keep their value and sign:
azimuth_offset = radians(azimuth), elevation_offset = radians(elevation). In the scene frame
(after Blender's importer, +Z up, exactly as 3D-DST imports), the model's front is seen from the
view (a = azimuth_offset, e = elevation_offset); `alignment.offset_rotation` turns the model so
that this view becomes the front view. A camera at (a, e) relative to our aligned model is then
3D-DST's camera at theta = a - 90 deg + azimuth, phi = 90 deg - e - elevation, exactly when
elevation = 0 (every view) or a = 0 (the front meridian); elsewhere 3D-DST's elevation offset is a
shift of spherical coordinates, which no rigid rotation reproduces, and ours is the rigid
rotation that agrees on the front meridian. 3D-DST's released pose data set labels images with
the offset theta itself; dst3d labels poses relative to the aligned model.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import Dst3dError
from .ids import sanitize_model_id
from .render_plan import ModelJob
from .synsets import synset_name

#: The columns a catalogue CSV must have (extra columns are ignored).
COLUMNS = ("synset", "model", "distance", "azimuth", "elevation", "strength", "sampling")
_ALIASES = {"model_id": "model"}

#: 3D-DST's pose-sampling strategies.
SAMPLING_VALUES = ("1", "2", "3", "4", "5")

_OMNI_ID = re.compile(r"^omniobject3d_(?P<name>(?P<category>.+)_\d+)$")


@dataclass(frozen=True)
class CatalogEntry:
    """One catalogue row; angles in radians in dst3d's convention (see the module docstring)."""

    synset: str
    model_id: str
    distance: float
    azimuth_offset: float
    elevation_offset: float
    strength: float
    sampling: str


def from_dst_angles(theta: float, phi: float) -> tuple[float, float]:
    """3D-DST's Blender-spherical camera angles (theta from +X, polar phi) -> (azimuth, elevation)."""
    return theta + math.pi / 2.0, math.pi / 2.0 - phi


def read_catalog(path: str | os.PathLike) -> list[CatalogEntry]:
    """Read a 3D-DST models CSV; a Dst3dError names the file, line and column of any bad value."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise Dst3dError(f"model catalogue not found: {p}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise Dst3dError(f"{p}: cannot read the model catalogue ({exc})") from exc
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if header is None:
        raise Dst3dError(f"{p}: the model catalogue is empty")
    names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise Dst3dError(f"{p}: line 1: missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})")
    index = {c: names.index(c) for c in COLUMNS}
    entries = []
    for lineno, row in enumerate(rows, start=2):
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        entries.append(_parse_row(p, lineno, row, index))
    return entries


def _parse_row(p: Path, lineno: int, row: list[str], index: dict[str, int]) -> CatalogEntry:
    def cell(col: str) -> str:
        i = index[col]
        if i >= len(row) or not row[i].strip():
            raise Dst3dError(f"{p}: line {lineno}, column {col!r}: missing value")
        return row[i].strip()

    def number(col: str) -> float:
        value = cell(col)
        try:
            x = float(value)
        except ValueError:
            x = math.nan
        if not math.isfinite(x):
            raise Dst3dError(f"{p}: line {lineno}, column {col!r}: {value!r} is not a finite number")
        return x

    distance = number("distance")
    if distance <= 0:
        raise Dst3dError(f"{p}: line {lineno}, column 'distance': {cell('distance')!r} must be positive")
    sampling_value = number("sampling")
    sampling = str(int(sampling_value)) if sampling_value.is_integer() else cell("sampling")
    if sampling not in SAMPLING_VALUES:
        raise Dst3dError(
            f"{p}: line {lineno}, column 'sampling': {cell('sampling')!r} is not one of 3D-DST's strategies 1-5"
        )
    return CatalogEntry(
        synset=cell("synset"),
        model_id=cell("model"),
        distance=distance,
        azimuth_offset=math.radians(number("azimuth")),
        elevation_offset=math.radians(number("elevation")),
        strength=number("strength"),
        sampling=sampling,
    )


def filter_synsets(entries: Iterable[CatalogEntry], synsets: Iterable[str] | None) -> list[CatalogEntry]:
    """The entries of the given synsets (all when `synsets` is None or empty), in catalogue order.

    A requested synset with no entry is a Dst3dError (most likely a typo).
    """
    entries = list(entries)
    wanted = [s.strip() for s in (synsets or []) if s.strip()]
    if not wanted:
        return entries
    known = {e.synset for e in entries}
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise Dst3dError(f"synset(s) {', '.join(unknown)} not in the model catalogue")
    keep = set(wanted)
    return [e for e in entries if e.synset in keep]


class ModelResolver:
    """Find a catalogue model's CAD file under the dataset roots the user has.

    Every root is tried with every layout below (a root may be any of the three datasets):

    - ShapeNetCore: `<root>/<shapenet synset>/<id>/models/model_normalized.obj` (v2), also
      `<root>/<shapenet synset>/<id>/model_normalized.obj` and `.../<id>/model.obj` (v1), or
      `<root>/<id>/...` when the root is one category folder. The category folder is searched
      for, as in 3D-DST: ShapeNet's folders are its own synsets, not the catalogue's ImageNet ones.
    - Objaverse: `<root>/<uid>.glb`, or anywhere below a root (`<root>/glbs/000-123/<uid>.glb`, the
      layout objaverse's downloader writes); the trees are indexed once, on the first miss.
    - OmniObject3D raw scans: `omniobject3d_<category>_<nnn>` ->
      `<root>/raw/raw_scans/<category>/<category>_<nnn>/Scan/Scan.obj` (3D-DST's layout), or the
      same below `<root>/raw_scans/` or `<root>/` directly.

    Toys4k models (`toys4k_...`, .blend files) are not supported.
    """

    def __init__(self, roots: Iterable[str | os.PathLike]) -> None:
        self.roots = [Path(r) for r in roots]
        for root in self.roots:
            if not root.is_dir():
                raise Dst3dError(f"model root not found (or not a folder): {root}")
        self._glb_index: dict[str, Path] | None = None

    def resolve(self, model_id: str) -> Path:
        """The CAD file of `model_id`; a Dst3dError says where it was looked for."""
        model_id = model_id.strip()
        if not self.roots:
            raise Dst3dError(f"model {model_id}: no model root given to look for it")
        where = ", ".join(str(r) for r in self.roots)
        if model_id.lower().startswith("toys4k"):
            raise Dst3dError(f"model {model_id}: Toys4k models (.blend files) are not supported")
        m = _OMNI_ID.match(model_id)
        if m is not None:
            rel = Path(m.group("category")) / m.group("name") / "Scan" / "Scan.obj"
            for root in self.roots:
                for base in (root / "raw" / "raw_scans", root / "raw_scans", root):
                    if (base / rel).is_file():
                        return base / rel
            raise Dst3dError(f"model {model_id} not found: no {rel.as_posix()} under {where}")
        if not model_id or "/" in model_id or "\\" in model_id or model_id in (".", ".."):
            raise Dst3dError(f"model id {model_id!r} is not a ShapeNet, Objaverse or OmniObject3D id")
        for root in self.roots:
            found = _shapenet_file(root, model_id)
            if found is not None:
                return found
        for root in self.roots:
            if (root / f"{model_id}.glb").is_file():
                return root / f"{model_id}.glb"
        found = self._glb(model_id)
        if found is not None:
            return found
        raise Dst3dError(
            f"model {model_id} not found under {where} (as a ShapeNet, Objaverse or OmniObject3D model)"
        )

    def _glb(self, uid: str) -> Path | None:
        if self._glb_index is None:
            index: dict[str, Path] = {}
            for root in self.roots:
                for dirpath, _dirs, files in os.walk(root):
                    for name in files:
                        if name.lower().endswith(".glb"):
                            index.setdefault(name[:-4], Path(dirpath) / name)
            self._glb_index = index
        return self._glb_index.get(uid)


def _shapenet_file(root: Path, model_id: str) -> Path | None:
    folders = [root / model_id] + [d / model_id for d in sorted(root.iterdir()) if d.is_dir()]
    for folder in folders:
        for rel in ("models/model_normalized.obj", "model_normalized.obj", "model.obj"):
            if (folder / rel).is_file():
                return folder / rel
    return None


def resolve_model(model_id: str, roots: Iterable[str | os.PathLike]) -> Path:
    """One-off `ModelResolver(roots).resolve(model_id)` (reuse a ModelResolver for many models)."""
    return ModelResolver(roots).resolve(model_id)


def jobs_from_catalog(
    csv_path: str | os.PathLike,
    roots: str | os.PathLike | Iterable[str | os.PathLike],
    synsets: Iterable[str] | None = None,
    class_name: str | None = None,
    missing: list[str] | None = None,
) -> list[ModelJob]:
    """The render jobs of a 3D-DST catalogue: one per row of the chosen synsets, files resolved.

    Each job carries the row's pose offset (radians), its sampling strategy, and its distance as
    `distance_scale` (the sampled distance is multiplied by it: a run with `--distance 1` places
    the camera at the catalogue's distance, as 3D-DST's renderer does). The class is `class_name`
    when given, else the synset's readable name (synsets.py: "airliner"), else the synset id. A model that cannot be found is a Dst3dError naming it, or, when
    a `missing` list is given, is skipped with its line added to that list (as a run over --cad
    files skips a missing file and renders the others).
    """
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    entries = filter_synsets(read_catalog(csv_path), synsets)
    resolver = ModelResolver(roots)
    jobs = []
    for entry in entries:
        try:
            path = resolver.resolve(entry.model_id)
        except Dst3dError as exc:
            if missing is None or "root not found" in exc.text:
                raise
            missing.append(exc.text)
            continue
        jobs.append(
            ModelJob(
                class_name=class_name or synset_name(entry.synset) or entry.synset,
                model_id=sanitize_model_id(entry.model_id),
                cad_path=str(path),
                synset=entry.synset,
                azimuth_offset=entry.azimuth_offset,
                elevation_offset=entry.elevation_offset,
                distance_scale=entry.distance,
                strategy=entry.sampling,
            )
        )
    return jobs
