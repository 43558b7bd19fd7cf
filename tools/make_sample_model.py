"""Build the bundled sample model, a procedural airliner, as a binary glTF (assets/sample/airliner.glb).

    .venv/bin/python tools/make_sample_model.py [--out PATH]

The aircraft is made of closed parts (fuselage, wings with winglets, horizontal stabilisers, fin,
engine nacelles with pylons, window panes), each a loft of cross-sections with consistent outward
winding. Normals are smooth within a surface and split where faces meet at a sharp angle (wing
edges, caps, part junctions). The geometry is built in the object frame of dst3d (metres, +Z up,
nose towards -Y) and written in glTF axes (+Y up), so that Blender's glTF import (glTF +Y -> +Z,
glTF +Z -> -Y) puts the nose at -Y and the fin at +Z. Same script, same bytes: coordinates are
rounded to a grid before anything that could differ in the last bit between machines.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "assets" / "sample" / "airliner.glb"

#: (name, linear RGBA base colour, roughness)
MATERIALS = [
    ("Body", (0.90, 0.91, 0.93, 1.0), 0.45),
    ("Wing", (0.62, 0.64, 0.68, 1.0), 0.5),
    ("Engine", (0.50, 0.52, 0.56, 1.0), 0.4),
    ("Dark", (0.03, 0.035, 0.045, 1.0), 0.3),
    ("Tail", (0.05, 0.12, 0.38, 1.0), 0.45),
]
BODY, WING, ENGINE, DARK, TAIL = range(len(MATERIALS))

POSITION_GRID = 1e-5  # metres
NORMAL_GRID = 1e-6
CREASE_DEG = 50.0

# Dimensions in metres, roughly those of a narrow-body airliner.
LENGTH = 37.6
RADIUS = 1.98
NOSE_LEN = 5.2
TAIL_START = 25.0
SEGMENTS = 32  # around the fuselage


# --------------------------------------------------------------------------- parts


@dataclass
class Part:
    """A closed triangle mesh with one material per face."""

    vertices: list[np.ndarray] = field(default_factory=list)
    faces: list[np.ndarray] = field(default_factory=list)
    materials: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def add(self, verts: np.ndarray, faces: np.ndarray, mats: np.ndarray | int) -> None:
        """Append a closed shell (faces index `verts`); orient it outward by its signed volume."""
        verts = np.asarray(verts, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        if signed_volume(verts, faces) < 0:
            faces = faces[:, ::-1]
        self.vertices.append(verts)
        self.faces.append(faces + self.count)
        self.materials.append(np.broadcast_to(np.asarray(mats, dtype=np.int64), (len(faces),)).copy())
        self.count += len(verts)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vertices, faces, face materials) of everything added."""
        return np.concatenate(self.vertices), np.concatenate(self.faces), np.concatenate(self.materials)


def signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed mesh, positive when its faces wind counter-clockwise seen from outside."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.sum(a * np.cross(b, c)) / 6.0)


def loft(
    rings: list[np.ndarray], start_pole: np.ndarray, end_pole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A closed tube through `rings` (each (N, 3), same N), closed by fans to the two pole points."""
    n = len(rings[0])
    verts = np.concatenate([start_pole[None], *rings, end_pole[None]])
    last = len(verts) - 1
    faces = []
    k = np.arange(n)
    k1 = (k + 1) % n
    faces.append(np.stack([np.zeros(n, np.int64), 1 + k1, 1 + k], axis=1))
    for i in range(len(rings) - 1):
        a, b = 1 + i * n + k, 1 + i * n + k1
        c, d = 1 + (i + 1) * n + k1, 1 + (i + 1) * n + k
        faces.append(np.stack([a, b, c], axis=1))
        faces.append(np.stack([a, c, d], axis=1))
    base = 1 + (len(rings) - 1) * n
    faces.append(np.stack([np.full(n, last), base + k, base + k1], axis=1))
    return verts, np.concatenate(faces)


def capped_loft(rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A tube through `rings` with flat caps (fans to each end ring's centroid)."""
    return loft(rings, rings[0].mean(axis=0), rings[-1].mean(axis=0))


# --------------------------------------------------------------------------- fuselage


def fuselage_profile(s: float) -> tuple[float, float]:
    """(radius, centre height) of the fuselage at distance s from the nose tip."""
    if s < NOSE_LEN:
        t = 1.0 - s / NOSE_LEN
        r = RADIUS * math.sqrt(max(0.0, 1.0 - t**2.2))
        return r, -0.45 * (RADIUS - r)  # drooped nose: the lower line stays flatter
    if s <= TAIL_START:
        return RADIUS, 0.0
    t = (s - TAIL_START) / (LENGTH - TAIL_START)
    r = RADIUS * (1.0 - 0.86 * t**1.35)
    return r, 0.88 * (RADIUS - r)  # upswept tail cone: the upper line stays nearly straight


def fuselage_ring(s: float) -> np.ndarray:
    """The ring of fuselage vertices at station s (angle 0 at the top, going towards +X)."""
    r, zc = fuselage_profile(s)
    phi = 2 * math.pi * np.arange(SEGMENTS) / SEGMENTS
    y = s - LENGTH / 2
    return np.stack([r * np.sin(phi), np.full(SEGMENTS, y), zc + r * np.cos(phi)], axis=1)


#: Stations (m from the nose) of the fuselage rings; the windscreen lies between 2.45 and 3.15.
NOSE_STATIONS = [0.05, 0.18, 0.4, 0.7, 1.1, 1.55, 2.0, 2.45, 3.15, 3.8, 4.5, 5.2]
WINDSCREEN = (2.45, 3.15)
BODY_STATIONS = [7.5, 10.0, 13.0, 16.0, 19.0, 22.0, 25.0]
TAIL_STATIONS = [26.3, 27.6, 28.9, 30.2, 31.5, 32.8, 34.0, 35.1, 36.1, 36.9, 37.25]


def fuselage(part: Part) -> None:
    """The fuselage: rounded, drooped nose, cylinder, upswept tail cone ending in an APU cone."""
    stations = NOSE_STATIONS + BODY_STATIONS + TAIL_STATIONS
    rings = [fuselage_ring(s) for s in stations]
    nose = np.array([0.0, -LENGTH / 2, fuselage_profile(0.0)[1]])
    r_end, zc_end = fuselage_profile(stations[-1])
    tail = np.array([0.0, LENGTH / 2, zc_end + 0.15 * r_end])
    verts, faces = loft(rings, nose, tail)
    mats = np.full(len(faces), BODY)
    # Windscreen: the quads between the two windscreen rings, on the upper sides and front.
    ring = NOSE_STATIONS.index(WINDSCREEN[0])
    first = SEGMENTS + 2 * SEGMENTS * ring  # the nose fan, then per ring pair n + n triangles
    for k in [*range(1, 6), *range(SEGMENTS - 6, SEGMENTS - 1)]:
        mats[[first + k, first + SEGMENTS + k]] = DARK
    part.add(verts, faces, mats)


def box(centre: np.ndarray, axes: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A closed box: `axes` rows are its unit axes, `half` its half-sizes along them."""
    signs = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)]) * 2 - 1
    verts = centre + (signs * half) @ axes
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))]
    return verts, np.array(faces)


def windows(part: Part) -> None:
    """Cabin window panes: thin dark boxes set into the fuselage sides."""
    phi = math.radians(68.0)  # from the top
    for side in (1.0, -1.0):
        normal = np.array([side * math.sin(phi), 0.0, math.cos(phi)])
        up = np.array([-side * math.cos(phi), 0.0, math.sin(phi)])
        along = np.array([0.0, 1.0, 0.0])
        axes = np.stack([along, up, normal])
        s = 7.0
        while s < 24.6:
            if not 14.4 < s < 15.4:  # a gap over the wing exits
                centre = np.array([0.0, s - LENGTH / 2, 0.0]) + (RADIUS - 0.012) * normal
                part.add(*box(centre, axes, np.array([0.11, 0.15, 0.022])), DARK)
            s += 0.53


# --------------------------------------------------------------------------- lifting surfaces


def airfoil_xs(n: int = 12) -> np.ndarray:
    """Chord positions (0 = leading edge, 1 = trailing edge), dense at both edges."""
    x = (1 - np.cos(np.pi * np.arange(n + 1) / n)) / 2
    return np.insert(x, 1, 0.0045)  # an extra point keeps the rounded leading edge smooth


def airfoil_section(
    le: np.ndarray, chord: float, chord_dir: np.ndarray, thick_dir: np.ndarray, tc: float
) -> np.ndarray:
    """A symmetric NACA 4-digit section (closed trailing edge) as a ring: TE, upper to LE, lower."""
    x = airfoil_xs()
    yt = 5 * tc * (0.2969 * np.sqrt(x) - 0.1260 * x - 0.3516 * x**2 + 0.2843 * x**3 - 0.1036 * x**4)
    upper = x[::-1], yt[::-1]  # TE .. LE
    lower = x[1:-1], -yt[1:-1]  # after LE .. before TE
    xs = np.concatenate([upper[0], lower[0]])
    ts = np.concatenate([upper[1], lower[1]])
    return le + chord * (xs[:, None] * chord_dir + ts[:, None] * thick_dir)


def unit(v: np.ndarray) -> np.ndarray:
    """v / |v|."""
    return v / np.linalg.norm(v)


Y = np.array([0.0, 1.0, 0.0])

#: Wing planform: (span x, leading edge y, chord, thickness/chord); dihedral added below.
WING_LE_ROOT = -5.3
WING_SWEEP = math.tan(math.radians(27.0))
WING_DIHEDRAL = math.tan(math.radians(5.5))
WING_ROOT_Z = -1.05
WING_TE_INBOARD = 1.9
WING_TIP = 16.6


def wing_le(x: float) -> float:
    """Leading edge y of the wing at span x."""
    return WING_LE_ROOT + WING_SWEEP * x


def wing_z(x: float) -> float:
    """Chord-plane height of the wing at span x."""
    return WING_ROOT_Z + WING_DIHEDRAL * x


def wing_chord(x: float) -> float:
    """Chord at span x: straight inboard trailing edge to the kink, then a straight taper."""
    kink, tip_chord = 6.2, 1.5
    if x <= kink:
        return WING_TE_INBOARD - wing_le(x)
    c_kink = WING_TE_INBOARD - wing_le(kink)
    return c_kink + (tip_chord - c_kink) * (x - kink) / (WING_TIP - kink)


def wing(part: Part, side: float) -> None:
    """One wing with a blended winglet (side = +1 for +X, -1 for -X)."""
    up = np.array([0.0, 0.0, 1.0])
    rings = []
    for x, tc in ((0.9, 0.15), (3.5, 0.135), (6.2, 0.12), (11.4, 0.11), (WING_TIP, 0.10)):
        le = np.array([side * x, wing_le(x), wing_z(x)])
        rings.append(airfoil_section(le, wing_chord(x), Y, up, tc))
    # Winglet: sections turn from horizontal to vertical over a short blend, then rise.
    tip_le = np.array([side * WING_TIP, wing_le(WING_TIP), wing_z(WING_TIP)])
    for angle, dx, dz, dy, chord in (
        (45.0, 0.28, 0.22, 0.32, 1.25),
        (88.0, 0.42, 0.6, 0.62, 1.0),
        (88.0, 0.5, 2.2, 1.85, 0.5),
    ):
        a = math.radians(angle)
        thick = np.array([-side * math.sin(a), 0.0, math.cos(a)])
        le = tip_le + np.array([side * dx, dy, dz])
        rings.append(airfoil_section(le, chord, Y, thick, 0.09))
    verts, faces = capped_loft(rings)
    part.add(verts, faces, WING)


def stabiliser(part: Part, side: float) -> None:
    """One horizontal stabiliser on the tail cone."""
    root_s, root_chord, tip_chord, span = 31.6, 3.7, 1.35, 6.2
    _r, zc = fuselage_profile(root_s + root_chord / 2)
    sweep, dihedral = math.tan(math.radians(33.0)), math.tan(math.radians(6.0))
    up = np.array([0.0, 0.0, 1.0])
    rings = []
    for x, chord in ((0.25, root_chord), (span, tip_chord)):
        le = np.array([side * x, root_s - LENGTH / 2 + sweep * x, zc + dihedral * x])
        rings.append(airfoil_section(le, chord, Y, up, 0.11))
    verts, faces = capped_loft(rings)
    part.add(verts, faces, WING)


def fin(part: Part) -> None:
    """The vertical fin, rooted inside the top of the tail cone."""
    root_s, root_chord, tip_chord, height = 27.9, 6.6, 2.2, 6.0
    sweep = math.tan(math.radians(38.0))
    side = np.array([1.0, 0.0, 0.0])
    base_z = 1.45
    top_z = RADIUS + height
    rings = []
    for z, chord in ((base_z, root_chord), (RADIUS + 0.3, root_chord - 0.25), (top_z, tip_chord)):
        le = np.array([0.0, root_s - LENGTH / 2 + sweep * (z - RADIUS), z])
        rings.append(airfoil_section(le, chord, Y, side, 0.10))
    verts, faces = capped_loft(rings)
    part.add(verts, faces, TAIL)


# --------------------------------------------------------------------------- engines

ENGINE_X = 5.75
ENGINE_RADIUS = 1.02
ENGINE_Z = wing_z(ENGINE_X) - 0.13 - 0.35 - ENGINE_RADIUS
ENGINE_FRONT_Y = wing_le(ENGINE_X) - 2.75

#: Nacelle outline: (distance from the intake lip plane, radius, material of the band that ends here).
NACELLE = [
    (0.32, 0.0, DARK),  # spinner-less fan face centre
    (0.32, 0.66, DARK),  # fan face
    (0.06, 0.84, DARK),  # intake wall
    (0.0, 0.93, ENGINE),  # lip
    (0.07, 1.0, ENGINE),
    (0.45, 1.02, ENGINE),
    (1.6, 1.0, ENGINE),
    (2.6, 0.9, ENGINE),
    (3.25, 0.78, ENGINE),  # fan cowl trailing edge
    (3.28, 0.6, DARK),  # fan nozzle step
    (3.75, 0.55, ENGINE),
    (4.15, 0.42, ENGINE),
    (4.2, 0.3, DARK),  # core nozzle step
    (4.65, 0.0, DARK),  # plug tip
]
NACELLE_SEGMENTS = 24


def nacelle(part: Part, side: float) -> None:
    """An engine nacelle (a surface of revolution along +Y) with its pylon."""
    centre = np.array([side * ENGINE_X, ENGINE_FRONT_Y, ENGINE_Z])
    psi = 2 * math.pi * np.arange(NACELLE_SEGMENTS) / NACELLE_SEGMENTS
    rings = [
        centre + np.stack([r * np.sin(psi), np.full_like(psi, a), r * np.cos(psi)], axis=1)
        for a, r, _m in NACELLE[1:-1]
    ]
    first = centre + np.array([0.0, NACELLE[0][0], 0.0])
    last = centre + np.array([0.0, NACELLE[-1][0], 0.0])
    verts, faces = loft(rings, first, last)
    n = NACELLE_SEGMENTS
    mats = [np.full(n, NACELLE[1][2])]  # the fan-face fan
    for _a, _r, m in NACELLE[2:-1]:
        mats.append(np.full(2 * n, m))
    mats.append(np.full(n, NACELLE[-1][2]))
    part.add(verts, faces, np.concatenate(mats))

    # Pylon: from inside the nacelle's top up into the wing.
    side_dir = np.array([1.0, 0.0, 0.0])
    x = side * ENGINE_X
    rings = []
    for z, le_y, chord in (
        (ENGINE_Z + 0.75, ENGINE_FRONT_Y + 0.7, 3.9),
        (ENGINE_Z + ENGINE_RADIUS + 0.12, ENGINE_FRONT_Y + 0.95, 4.0),
        (wing_z(ENGINE_X), wing_le(ENGINE_X) + 0.2, 2.4),
    ):
        rings.append(airfoil_section(np.array([x, le_y, z]), chord, Y, side_dir, 0.09))
    verts, faces = capped_loft(rings)
    part.add(verts, faces, WING)


# --------------------------------------------------------------------------- normals and output


def build() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, face materials) of the whole aircraft in the object frame (metres)."""
    part = Part()
    fuselage(part)
    windows(part)
    for side in (1.0, -1.0):
        wing(part, side)
        stabiliser(part, side)
        nacelle(part, side)
    fin(part)
    verts, faces, mats = part.arrays()
    return np.round(verts / POSITION_GRID) * POSITION_GRID, faces, mats


def split_normals(verts: np.ndarray, faces: np.ndarray, crease_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-corner normals: angle-weighted averages of the faces around a vertex whose normals
    are within `crease_deg` of the corner's own face (sharp edges stay sharp).

    Returns (normals (3F, 3) in corner order f0c0, f0c1, ...)."""
    tri = verts[faces]  # (F, 3, 3)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    fn /= np.sqrt(np.sum(fn * fn, axis=1))[:, None]
    weights = np.empty((len(faces), 3))
    for j in range(3):
        e1 = tri[:, (j + 1) % 3] - tri[:, j]
        e2 = tri[:, (j + 2) % 3] - tri[:, j]
        cross = np.cross(e1, e2)
        weights[:, j] = np.arctan2(np.sqrt(np.sum(cross * cross, axis=1)), np.sum(e1 * e2, axis=1))
    corner_vertex = faces.reshape(-1)
    corner_face = np.repeat(np.arange(len(faces)), 3)
    corner_weight = weights.reshape(-1)
    order = np.argsort(corner_vertex, kind="stable")
    _, starts, counts = np.unique(corner_vertex[order], return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(starts)), counts)
    k = counts[group]
    a = np.repeat(np.arange(len(order)), k)  # sorted corner a, paired with every corner b of its vertex
    b = np.repeat(starts[group], k) + (np.arange(len(a)) - np.repeat(np.cumsum(k) - k, k))
    fa, fb = corner_face[order[a]], corner_face[order[b]]
    cosang = np.sum(fn[fa] * fn[fb], axis=1)
    keep = cosang >= math.cos(math.radians(crease_deg))
    acc = np.zeros((len(order), 3))
    np.add.at(acc, a[keep], fn[fb[keep]] * corner_weight[order[b[keep]]][:, None])
    acc /= np.sqrt(np.sum(acc * acc, axis=1))[:, None]
    normals = np.empty_like(acc)
    normals[order] = acc
    return normals, fn


def to_gltf_axes(v: np.ndarray) -> np.ndarray:
    """Object frame (+Z up, nose -Y) to glTF (+Y up): (x, y, z) -> (x, z, -y)."""
    return np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)


def primitives(
    verts: np.ndarray, faces: np.ndarray, mats: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """One (positions, normals, indices, material) per material, in glTF axes, vertices split at creases."""
    normals, _ = split_normals(verts, faces, CREASE_DEG)
    nq = np.round(normals / NORMAL_GRID).astype(np.int64)
    corner_vertex = faces.reshape(-1)
    corner_mat = np.repeat(mats, 3)
    out = []
    for m in range(len(MATERIALS)):
        sel = corner_mat == m
        if not sel.any():
            continue
        keys = np.column_stack([corner_vertex[sel], nq[sel]])
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        rank = np.empty(len(first), np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))  # first-use order
        index = rank[inverse.reshape(-1)]
        src = np.empty(len(first), np.int64)
        src[index] = np.flatnonzero(sel)  # any corner of each new vertex
        pos = to_gltf_axes(verts[corner_vertex[src]]).astype(np.float32)
        nrm = to_gltf_axes(nq[src] * NORMAL_GRID).astype(np.float32)
        out.append((pos, nrm, index.astype(np.uint32), m))
    return out


def glb_bytes(prims: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]], name: str) -> bytes:
    """A minimal glTF 2.0 binary: one node, one mesh with a primitive per material."""
    blob = bytearray()
    views: list[dict] = []
    accessors: list[dict] = []

    def add_view(data: bytes, target: int) -> int:
        while len(blob) % 4:
            blob.append(0)
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data), "target": target})
        blob.extend(data)
        return len(views) - 1

    gl_prims = []
    for pos, nrm, idx, mat in prims:
        small = int(idx.max()) < 65535
        idx_data = idx.astype(np.uint16 if small else np.uint32)
        p_acc = len(accessors)
        accessors.append(
            {
                "bufferView": add_view(pos.astype("<f4").tobytes(), 34962),
                "componentType": 5126,
                "count": len(pos),
                "type": "VEC3",
                "min": [float(v) for v in pos.min(axis=0)],
                "max": [float(v) for v in pos.max(axis=0)],
            }
        )
        accessors.append(
            {
                "bufferView": add_view(nrm.astype("<f4").tobytes(), 34962),
                "componentType": 5126,
                "count": len(nrm),
                "type": "VEC3",
            }
        )
        accessors.append(
            {
                "bufferView": add_view(idx_data.astype("<u2" if small else "<u4").tobytes(), 34963),
                "componentType": 5123 if small else 5125,
                "count": len(idx_data),
                "type": "SCALAR",
            }
        )
        gl_prims.append(
            {
                "attributes": {"POSITION": p_acc, "NORMAL": p_acc + 1},
                "indices": p_acc + 2,
                "material": mat,
                "mode": 4,
            }
        )
    while len(blob) % 4:
        blob.append(0)
    doc = {
        "asset": {"version": "2.0", "generator": "dst3d tools/make_sample_model.py"},
        "scene": 0,
        "scenes": [{"name": "Scene", "nodes": [0]}],
        "nodes": [{"name": name, "mesh": 0}],
        "meshes": [{"name": name, "primitives": gl_prims}],
        "materials": [
            {
                "name": mname,
                "pbrMetallicRoughness": {
                    "baseColorFactor": list(rgba),
                    "metallicFactor": 0.0,
                    "roughnessFactor": rough,
                },
            }
            for mname, rgba, rough in MATERIALS
        ],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
    }
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(text), b"JSON"),
            text,
            struct.pack("<I4s", len(blob), b"BIN\x00"),
            bytes(blob),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Build the airliner and write it; print a one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output .glb (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    verts, faces, mats = build()
    data = glb_bytes(primitives(verts, faces, mats), "Airliner")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    print(
        f"{args.out}: {len(faces)} triangles, {len(data)} bytes, object-frame bounds "
        f"x {lo[0]:.2f}..{hi[0]:.2f}, y {lo[1]:.2f}..{hi[1]:.2f}, z {lo[2]:.2f}..{hi[2]:.2f} m"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
