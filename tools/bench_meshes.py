"""Procedural meshes with a clear front, for KCF's benchmarks and tests (OBJ, written in a second).

    python -m tools.bench_meshes chair OUT.obj

Each mesh is a union of closed convex parts (boxes, slanted boxes, cylinders) in dst3d's object
frame (front towards -Y, +Z up) and is written as an OBJ in its Y-up axes, which the render stage
turns back. None of them looks the same from the front and from the back, so a view turned by 180
degrees in azimuth is an error a pose estimator can see:

- `chair`: seat, four legs, a backrest at the back and a crossbar between the front legs;
- `car`: a long bonnet in front, the cabin towards the back (raked windscreen, upright rear
  window), four wheels and a spoiler at the back;
- `kettle`: a round body, a spout in front and a handle at the back (the tests' mesh: the
  benchmark's two meshes are not used by any test).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: The corner order of a hexahedron: bottom (z low) face then top face, each counter-clockwise
#: seen from above, starting at (-x, -y).
_HEX_FACES = (
    (0, 2, 1), (0, 3, 2),  # bottom
    (4, 5, 6), (4, 6, 7),  # top
    (0, 1, 5), (0, 5, 4),  # front (-y)
    (1, 2, 6), (1, 6, 5),  # +x
    (2, 3, 7), (2, 7, 6),  # back (+y)
    (3, 0, 4), (3, 4, 7),  # -x
)  # fmt: skip


class Mesh:
    """Triangles gathered part by part."""

    def __init__(self) -> None:
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.count = 0

    def add(self, vertices: np.ndarray, faces) -> None:
        self.vertices.append(np.asarray(vertices, dtype=np.float64))
        self.faces.append(np.asarray(faces, dtype=np.int64) + self.count)
        self.count += len(vertices)

    def hexahedron(self, corners) -> None:
        """A convex solid of 8 corners (bottom four, then top four, in _HEX_FACES' order)."""
        self.add(np.asarray(corners), _HEX_FACES)

    def box(self, lo, hi) -> None:
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        bottom = [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)]
        top = [(x, y, z1) for x, y, _ in bottom]
        self.hexahedron(bottom + top)

    def cylinder(self, centre, axis: str, radius: float, length: float, segments: int = 20) -> None:
        """A closed cylinder along `axis` ("x", "y" or "z") centred at `centre`."""
        t = np.linspace(0.0, 2.0 * math.pi, segments, endpoint=False)
        circle = np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
        k = "xyz".index(axis)
        others = [i for i in range(3) if i != k]
        ring = np.zeros((2 * segments, 3))
        for j, h in enumerate((-length / 2, length / 2)):
            ring[j * segments : (j + 1) * segments, others[0]] = circle[:, 0]
            ring[j * segments : (j + 1) * segments, others[1]] = circle[:, 1]
            ring[j * segments : (j + 1) * segments, k] = h
        caps = np.zeros((2, 3))
        caps[:, k] = (-length / 2, length / 2)
        vertices = np.vstack([ring, caps])
        faces = []
        s = segments
        for i in range(s):
            j = (i + 1) % s
            faces += [(i, j, s + j), (i, s + j, s + i), (2 * s, j, i), (2 * s + 1, s + i, s + j)]
        # The winding above is outward when (others[0], others[1], k) is a right-handed frame.
        right_handed = (others[0], others[1], k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1))
        faces = np.asarray(faces) if right_handed else np.asarray(faces)[:, ::-1]
        self.add(vertices + np.asarray(centre, dtype=np.float64), faces)

    def write_obj(self, path: Path) -> Path:
        """The OBJ in Y-up axes (object (x, y, z) -> file (x, z, -y)), the axes its importer undoes."""
        v = np.vstack(self.vertices)
        f = np.vstack(self.faces) + 1
        lines = [f"# {path.stem}: procedural, dst3d tools/bench_meshes.py\n"]
        lines += [f"v {x:.5f} {z:.5f} {-y:.5f}\n" for x, y, z in v]
        lines += [f"f {a} {b} {c}\n" for a, b, c in f]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="ascii")
        return path


def chair() -> Mesh:
    """A dining chair, 0.45 m seat; the backrest is at the back (+Y)."""
    m = Mesh()
    m.box((-0.23, -0.22, 0.42), (0.23, 0.22, 0.47))  # seat
    for x in (-0.2, 0.17):
        for y in (-0.2, 0.17):
            m.box((x, y, 0.0), (x + 0.035, y + 0.035, 0.42))  # legs
    # The backrest leans back a little, from the back edge of the seat.
    m.hexahedron(
        [(-0.23, 0.17, 0.47), (0.23, 0.17, 0.47), (0.23, 0.22, 0.47), (-0.23, 0.22, 0.47),
         (-0.23, 0.24, 0.95), (0.23, 0.24, 0.95), (0.23, 0.29, 0.95), (-0.23, 0.29, 0.95)]
    )  # fmt: skip
    m.box((-0.2, -0.2, 0.12), (0.2, -0.17, 0.16))  # crossbar between the front legs
    return m


def car() -> Mesh:
    """A hatchback, 4.2 m long: bonnet in front (-Y), cabin towards the back, spoiler at the back."""
    m = Mesh()
    m.box((-0.85, -2.1, 0.3), (0.85, 2.1, 0.85))  # body
    # Cabin: raked windscreen at the front, upright rear window at the back.
    m.hexahedron(
        [(-0.8, -0.6, 0.85), (0.8, -0.6, 0.85), (0.8, 1.9, 0.85), (-0.8, 1.9, 0.85),
         (-0.72, 0.3, 1.4), (0.72, 0.3, 1.4), (0.72, 1.75, 1.4), (-0.72, 1.75, 1.4)]
    )  # fmt: skip
    m.box((-0.8, 1.85, 1.4), (0.8, 2.1, 1.45))  # spoiler
    for x in (-0.8, 0.8):
        for y in (-1.35, 1.3):
            m.cylinder((x, y, 0.33), "x", 0.33, 0.22)  # wheels
    return m


def kettle() -> Mesh:
    """A kettle: round body, spout in front (-Y), handle at the back (+Y)."""
    m = Mesh()
    m.cylinder((0.0, 0.0, 0.11), "z", 0.1, 0.22, segments=28)  # body
    m.cylinder((0.0, 0.0, 0.235), "z", 0.03, 0.03, segments=12)  # lid knob
    m.hexahedron(
        [(-0.02, -0.08, 0.05), (0.02, -0.08, 0.05), (0.02, -0.05, 0.05), (-0.02, -0.05, 0.05),
         (-0.012, -0.19, 0.2), (0.012, -0.19, 0.2), (0.012, -0.17, 0.2), (-0.012, -0.17, 0.2)]
    )  # fmt: skip
    m.box((-0.015, 0.09, 0.2), (0.015, 0.17, 0.23))  # handle: top bar
    m.box((-0.015, 0.14, 0.06), (0.015, 0.17, 0.2))  # handle: grip
    m.box((-0.015, 0.09, 0.06), (0.015, 0.17, 0.09))  # handle: bottom bar
    return m


MESHES: dict[str, Callable[[], Mesh]] = {"chair": chair, "car": car, "kettle": kettle}


def write_mesh(name: str, path: str | Path) -> Path:
    """Write mesh `name` (one of MESHES) as an OBJ at `path`."""
    return MESHES[name]().write_obj(Path(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=list(MESHES))
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(write_mesh(args.name, args.out))


if __name__ == "__main__":
    main()
