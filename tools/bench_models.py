"""Small procedural CAD models with several models per class, for benchmarks that hold models out.

    python -m tools.bench_models --out runs/bench_models [--per-class 6] [--seed 0]

Two classes, each model drawn from seeded proportions so that no two are alike:

- `car`: a body on four wheels with a cabin set towards the back, a sloped hood in front and, on
  some, a rear spoiler;
- `chair`: a seat on four legs with a backrest at the back and, on some, armrests.

Both face -Y with +Z up (dst3d's object frame) and neither is front/back symmetric, so a pose
estimator can tell a view from its half-turned twin. Every part is a closed box, wedge or
cylinder wound outwards; parts may overlap (the renderer draws what is in front). The files are
ASCII PLY in the object frame (Blender's PLY import keeps +Z up), the same bytes for the same seed.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

CLASSES = ("car", "chair")


class Mesh:
    """Closed parts added one by one: vertices (N, 3) and triangles (M, 3)."""

    def __init__(self) -> None:
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.count = 0

    def add(self, verts: np.ndarray, faces: np.ndarray) -> None:
        verts = np.asarray(verts, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
        if np.sum(a * np.cross(b, c)) < 0:  # wind outwards (positive signed volume)
            faces = faces[:, ::-1]
        self.vertices.append(verts)
        self.faces.append(faces + self.count)
        self.count += len(verts)

    def prism(self, bottom: np.ndarray, top: np.ndarray) -> None:
        """A closed prism between two convex rings of the same length (counter-clockwise seen from above)."""
        n = len(bottom)
        verts = np.vstack([bottom, top])
        k = np.arange(n)
        k1 = (k + 1) % n
        sides = np.vstack([np.stack([k, k1, n + k1], 1), np.stack([k, n + k1, n + k], 1)])
        caps = [[0, j + 1, j] for j in range(1, n - 1)] + [[n, n + j, n + j + 1] for j in range(1, n - 1)]
        self.add(verts, np.vstack([sides, np.array(caps)]))

    def box(self, centre, size) -> None:
        cx, cy, cz = centre
        sx, sy, sz = (s / 2 for s in size)
        ring = np.array([[cx - sx, cy - sy], [cx + sx, cy - sy], [cx + sx, cy + sy], [cx - sx, cy + sy]])
        self.prism(np.c_[ring, np.full(4, cz - sz)], np.c_[ring, np.full(4, cz + sz)])

    def wedge_x(self, profile: np.ndarray, x0: float, x1: float) -> None:
        """A prism along X whose cross-section is the (y, z) polygon `profile` (convex)."""
        p = np.asarray(profile, dtype=np.float64)
        self.prism(np.c_[np.full(len(p), x0), p], np.c_[np.full(len(p), x1), p])

    def cylinder_x(self, centre, radius: float, width: float, segments: int = 16) -> None:
        """A wheel: a cylinder along X."""
        t = np.linspace(0, 2 * math.pi, segments, endpoint=False)
        profile = np.c_[centre[1] + radius * np.cos(t), centre[2] + radius * np.sin(t)]
        self.wedge_x(profile, centre[0] - width / 2, centre[0] + width / 2)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.vstack(self.vertices), np.vstack(self.faces)


def car(rng: np.random.Generator) -> Mesh:
    """A car facing -Y: body, sloped hood, cabin towards the back, four wheels, maybe a spoiler."""
    m = Mesh()
    length, width = rng.uniform(3.6, 4.8), rng.uniform(1.6, 1.95)
    wheel = rng.uniform(0.28, 0.38)
    body_h = rng.uniform(0.45, 0.65)
    z0 = wheel * 0.9
    y_front, y_back = -length / 2, length / 2
    hood = rng.uniform(0.6, 1.1)  # the sloped part at the front
    # Body: a side profile with the front corner cut into a slope, extruded across the width.
    m.wedge_x(
        [
            [y_front, z0],
            [y_back, z0],
            [y_back, z0 + body_h],
            [y_front + hood, z0 + body_h],
            [y_front, z0 + 0.45 * body_h],
        ],
        -width / 2,
        width / 2,
    )
    cab_len = rng.uniform(0.38, 0.52) * length
    cab_back = y_back - rng.uniform(0.15, 0.45)
    cab_h = rng.uniform(0.45, 0.65)
    slope = rng.uniform(0.35, 0.7)
    top = z0 + body_h
    m.wedge_x(
        [
            [cab_back - cab_len, top],
            [cab_back, top],
            [cab_back - 0.15, top + cab_h],
            [cab_back - cab_len + slope, top + cab_h],
        ],
        -0.42 * width,
        0.42 * width,
    )
    axle = length / 2 - rng.uniform(0.65, 0.95)
    for x in (-width / 2 + 0.12, width / 2 - 0.12):
        for y in (-axle, axle):
            m.cylinder_x((x, y, wheel), wheel, 0.26)
    if rng.random() < 0.5:  # a rear spoiler on two posts
        h = rng.uniform(0.18, 0.3)
        m.box((0.0, y_back - 0.2, top + h), (0.9 * width, 0.28, 0.05))
        for x in (-0.3 * width, 0.3 * width):
            m.box((x, y_back - 0.2, top + h / 2), (0.06, 0.06, h))
    return m


def chair(rng: np.random.Generator) -> Mesh:
    """A chair facing -Y: seat, four legs, a backrest at +Y, maybe armrests."""
    m = Mesh()
    w, d = rng.uniform(0.42, 0.6), rng.uniform(0.4, 0.55)
    seat_z, seat_t = rng.uniform(0.4, 0.5), rng.uniform(0.04, 0.08)
    leg = rng.uniform(0.035, 0.06)
    m.box((0.0, 0.0, seat_z), (w, d, seat_t))
    for x in (-w / 2 + leg, w / 2 - leg):
        for y in (-d / 2 + leg, d / 2 - leg):
            m.box((x, y, (seat_z - seat_t / 2) / 2), (leg, leg, seat_z - seat_t / 2))
    back_h = rng.uniform(0.35, 0.6)
    back_t = rng.uniform(0.04, 0.07)
    tilt = rng.uniform(0.0, 0.12)  # the backrest leans back by this much at its top
    z1, z2 = seat_z + seat_t / 2, seat_z + seat_t / 2 + back_h
    y1 = d / 2 - back_t / 2
    m.wedge_x(
        [
            [y1 - back_t / 2, z1],
            [y1 + back_t / 2, z1],
            [y1 + back_t / 2 + tilt, z2],
            [y1 - back_t / 2 + tilt, z2],
        ],
        -w / 2,
        w / 2,
    )
    if rng.random() < 0.5:  # armrests on front posts
        arm_z = z1 + rng.uniform(0.18, 0.25)
        for x in (-w / 2 + 0.02, w / 2 - 0.02):
            m.box((x, 0.0, arm_z), (0.05, d, 0.04))
            m.box((x, -d / 2 + 0.03, (z1 + arm_z) / 2), (0.04, 0.04, arm_z - z1))
    return m


MAKERS = {"car": car, "chair": chair}


def ply_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """An ASCII PLY of a triangle mesh (coordinates rounded to 1e-6, so the bytes are the same anywhere)."""
    lines = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(vertices)}",
        "property float x",
        "property float y",
        "property float z",
        f"element face {len(faces)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    lines += [" ".join(f"{round(float(c), 6):.6f}" for c in v) for v in vertices]
    lines += ["3 " + " ".join(str(int(i)) for i in f) for f in faces]
    return ("\n".join(lines) + "\n").encode("ascii")


def make_models(out: Path, per_class: int = 6, seed: int = 0, classes=CLASSES) -> dict[str, list[Path]]:
    """Write `per_class` models of each class as <out>/<class>_<NN>.ply; returns their paths per class."""
    out.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[Path]] = {}
    for c_index, cls in enumerate(classes):
        for i in range(per_class):
            rng = np.random.default_rng([seed, c_index, i])
            vertices, faces = MAKERS[cls](rng).arrays()
            path = out / f"{cls}_{i:02d}.ply"
            data = ply_bytes(vertices, faces)
            if not path.is_file() or path.read_bytes() != data:
                path.write_bytes(data)
            made.setdefault(cls, []).append(path)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_models"))
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for cls, paths in make_models(args.out, args.per_class, args.seed).items():
        print(f"{cls}: {len(paths)} models in {args.out}")


if __name__ == "__main__":
    main()
