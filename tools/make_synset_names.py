"""Rebuild dst3d's synset-name table (`dst3d_addon/core/resources/synset_names.tsv`) from timm's wheel.

    pip download --no-deps timm==1.0.31 -d /tmp/timm
    python -m tools.make_synset_names /tmp/timm/timm-1.0.31-py3-none-any.whl   (from the repository root)

timm (Apache-2.0) ships ImageNet-21k's synsets with their WordNet 3.0 lemmas
(`timm/data/_info/imagenet_synset_to_lemma.txt`) and glosses (`imagenet_synset_to_definition.txt`),
and the ImageNet-1k list (`imagenet_synsets.txt`). The table keeps the synsets dst3d needs: the
ImageNet-1k classes (the `synset` column of 3D-DST's model list holds these ids) and ShapeNetCore's
55 category synsets (its folder names). Each line is `synset<TAB>lemmas<TAB>family`: the lemmas as
WordNet lists them (the first is the name prompts use), and a coarse family for the template prompt
writer's scenes, guessed from the gloss. The lemmas are WordNet's; `LICENSE-WordNet-3.0` and
`LICENSE-timm` (copied from the wheel here) go with the table. The output is the same bytes for the
same wheel.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

from dst3d_addon.core.synsets import SHAPENET_55

OUT = Path(__file__).resolve().parents[1] / "dst3d_addon" / "core" / "resources"
INFO = "timm/data/_info/"


#: ImageNet-1k's first 398 classes are animals.
IMAGENET_ANIMALS = 398

#: Family rules, first match wins: (family, words of the gloss or lemmas).
FAMILY_RULES: tuple[tuple[str, str], ...] = (
    (
        "watercraft",
        r"boats?|ships?|warship|watercraft|canoe|yacht|submarine|schooner|catamaran|trimaran|gondola|liner|craft",
    ),
    (
        "aircraft",
        r"aircraft|airplanes?|aeroplane|airship|airliner|helicopter|glider|balloon|space shuttle|warplane",
    ),
    (
        "vehicle",
        r"vehicles?|locomotive|railway car|tractor|bicycle|wagon|carts?|cars?|truck|trolley|streetcar|motorcycle|scooter|sled|sledge|snowmobile|forklift|skateboard|stretcher|tank|rocket|missile|projectile|van|cab|bus",
    ),
    (
        "furniture",
        r"furniture|seat|table|bed|cabinet|shelf|shelves|bookcase|sofa|couch|desk|chair|bench|wardrobe|dresser|chest of drawers|cradle|crib|bathtub|tub|washbasin|lamp|pillow|bassinet|throne",
    ),
    (
        "structure",
        r"building|structure|tower|bridge|dam|monument|church|mosque|palace|castle|barn|fence|wall|gate|boathouse|shop|store|restaurant|library|prison|greenhouse|planetarium|fountain|megalith|arch|pier|breakwater|cliff|mountain|valley|volcano|geyser|seashore|lakeside|reef|promontory|sandbar|alp",
    ),
)
#: Where the head noun of a gloss ends ("a commercial airplane that carries passengers").
_GLOSS_HEAD = re.compile(r";|,|\(| that | which | who | used | for | with | in which | of a | consisting ")
#: Animals (and the 1k's first 398) that live in water.
AQUATIC = r"fish|shark|ray|whale|dolphin|crab|lobster|crayfish|jellyfish|coral|anemone|\beel\b|sea|marine|nautilus|conch|snail|slug|starfish|urchin|sea cucumber|sturgeon|salmon|dugong|sea lion|otter|turtle|platypus|isopod|chiton|flatworm|nematode|trilobite"


def family(synset: str, lemmas: str, gloss: str, imagenet_index: int | None) -> str:
    """A coarse family for the template writer's scenes (animal, aquatic, aircraft, watercraft,
    vehicle, furniture, structure, plant, object)."""
    head = _GLOSS_HEAD.split(gloss.lower(), maxsplit=1)[0]
    text = f"{lemmas.lower()} ; {head}"
    if imagenet_index is not None and imagenet_index < IMAGENET_ANIMALS:
        return "aquatic" if re.search(rf"\b(?:{AQUATIC})\b", text) else "animal"
    if synset.startswith(("n11", "n12", "n13")):
        return "plant"
    for name, pattern in FAMILY_RULES:
        if re.search(rf"\b(?:{pattern})\b", text):
            return name
    return "object"


def _table(archive: zipfile.ZipFile, name: str) -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in archive.read(INFO + name).decode("utf-8").splitlines():
        if line.strip():
            key, _, value = line.partition("\t")
            rows[key.strip()] = " ".join(value.split())
    return rows


def build(wheel: Path) -> tuple[str, bytes]:
    """(the table's text, timm's license bytes) from the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        lemmas = _table(archive, "imagenet_synset_to_lemma.txt")
        glosses = _table(archive, "imagenet_synset_to_definition.txt")
        imagenet = [
            s.strip() for s in archive.read(INFO + "imagenet_synsets.txt").decode().split() if s.strip()
        ]
        license_name = next(n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
        license_bytes = archive.read(license_name)
        version = (
            next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            .split("/")[0]
            .removesuffix(".dist-info")
            .split("-")[1]
        )
    index = {s: i for i, s in enumerate(imagenet)}
    wanted = sorted(set(imagenet) | {f"n{s}" for s in SHAPENET_55})
    missing = [s for s in wanted if s not in lemmas]
    if missing:
        raise SystemExit(f"{wheel}: no lemmas for {', '.join(missing)}")
    lines = [
        "# dst3d synset names: WordNet 3.0 synset id, its lemmas (the first is the name), a family for",
        f"# the template prompt writer. Made by tools/make_synset_names.py from timm {version}'s",
        "# imagenet_synset_to_lemma.txt (Apache-2.0, LICENSE-timm); the lemmas are WordNet 3.0's",
        "# (LICENSE-WordNet-3.0). ImageNet-1k's 1000 classes and ShapeNetCore's 55 categories.",
    ]
    for s in wanted:
        lines.append(f"{s}\t{lemmas[s]}\t{family(s, lemmas[s], glosses.get(s, ''), index.get(s))}")
    return "\n".join(lines) + "\n", license_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="timm's wheel (pip download --no-deps timm==1.0.31)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the folder to write into (default {OUT})")
    args = parser.parse_args(argv)
    text, license_bytes = build(args.wheel)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "synset_names.tsv").write_text(text, encoding="utf-8", newline="\n")
    (args.out / "LICENSE-timm").write_bytes(license_bytes)
    print(f"{args.out / 'synset_names.tsv'}: {text.count(chr(10)) - 4} synsets", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
