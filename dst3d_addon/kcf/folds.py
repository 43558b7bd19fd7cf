"""Which fold each image belongs to: whole groups (image, view or CAD model) per fold, balanced.

The split depends only on the run seed and the group keys, never on the order the file system or
the records list them in: groups are ordered by a seeded hash of their key and dealt, largest
first, to the fold that holds the fewest images so far.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..core.errors import SettingError, setting
from ..core.seeds import derive_seed


class FoldError(SettingError):
    """Too few groups for the asked number of folds."""


def assign_folds(groups: Sequence[str], folds: int, seed: int) -> list[int]:
    """The fold (0 <= f < folds) of each image, given each image's group key."""
    sizes = Counter(groups)
    if len(sizes) < folds:
        raise FoldError(
            f"{setting('folds')} {folds}: only {len(sizes)} group(s) of images to split; "
            f"use fewer folds or a finer {setting('group_by')}"
        )
    order = sorted(sizes, key=lambda g: (-sizes[g], derive_seed("kcf-fold", int(seed), g), g))
    load = [0] * folds
    fold_of: dict[str, int] = {}
    for g in order:
        f = min(range(folds), key=lambda i: (load[i], i))
        fold_of[g] = f
        load[f] += sizes[g]
    return [fold_of[g] for g in groups]
