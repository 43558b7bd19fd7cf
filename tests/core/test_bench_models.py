"""tools/bench_models.py: the same bytes for the same seed, models that differ, closed parts wound
outwards, and the front at -Y (a car's hood is lower than its cabin; a chair's back is at +Y)."""

from __future__ import annotations

import numpy as np

from tools.bench_models import CLASSES, MAKERS, make_models


def read_ply(path):
    lines = path.read_text().splitlines()
    nv = int(next(x for x in lines if x.startswith("element vertex")).split()[-1])
    start = lines.index("end_header") + 1
    V = np.array([[float(t) for t in line.split()] for line in lines[start : start + nv]])
    F = np.array([[int(t) for t in line.split()[1:]] for line in lines[start + nv :]])
    return V, F


def test_same_seed_same_bytes_and_models_differ(tmp_path):
    first = make_models(tmp_path / "a", per_class=3, seed=4)
    second = make_models(tmp_path / "b", per_class=3, seed=4)
    assert list(first) == list(CLASSES)
    for cls in CLASSES:
        assert [p.read_bytes() for p in first[cls]] == [p.read_bytes() for p in second[cls]]
        assert len({p.read_bytes() for p in first[cls]}) == 3


def test_parts_are_wound_outwards_and_the_front_faces_minus_y(tmp_path):
    for cls, paths in make_models(tmp_path, per_class=2, seed=0).items():
        for path in paths:
            V, F = read_ply(path)
            assert F.min() == 0 and F.max() == len(V) - 1
            a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
            assert np.sum(a * np.cross(b, c)) / 6 > 0  # the parts' volumes add up, none is inside out
            front, back = V[V[:, 1] < V[:, 1].mean()], V[V[:, 1] > V[:, 1].mean()]
            assert back[:, 2].max() > front[:, 2].max(), cls  # cabin or backrest towards +Y
    assert set(MAKERS) == set(CLASSES)
