"""alignment.py: axis matrices, 3D-DST offsets, normalisation and their composition."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dst3d_addon.core.alignment import (
    AXES,
    alignment_rotation,
    axis_matrix,
    compose_to_object,
    normalisation,
    offset_rotation,
    parse_axis,
    transform_points,
)
from dst3d_addon.core.camera import camera_centre, rotation_no_roll
from dst3d_addon.core.errors import Dst3dError

PERPENDICULAR = [(f, u) for f, u in itertools.product(AXES, AXES) if f.lstrip("-") != u.lstrip("-")]


def test_parse_axis_spellings():
    assert parse_axis("x").tolist() == [1, 0, 0]
    assert parse_axis("+Y").tolist() == [0, 1, 0]
    assert parse_axis(" -z ").tolist() == [0, 0, -1]
    assert parse_axis("NEGATIVE_X").tolist() == [-1, 0, 0]
    with pytest.raises(Dst3dError, match="forward 'W'"):
        parse_axis("W", "forward")


def test_default_axes_are_the_identity():
    assert np.array_equal(axis_matrix(), np.eye(3))
    assert np.array_equal(axis_matrix("-Y", "Z"), np.eye(3))


@pytest.mark.parametrize(("forward", "up"), PERPENDICULAR)
def test_axis_matrix_takes_front_to_minus_y_and_top_to_z(forward, up):
    R = axis_matrix(forward, up)
    assert np.allclose(R @ R.T, np.eye(3)) and math.isclose(np.linalg.det(R), 1.0)
    assert np.allclose(R @ parse_axis(forward), [0, -1, 0])
    assert np.allclose(R @ parse_axis(up), [0, 0, 1])


def test_axis_matrix_examples():
    # A model whose nose is at +X, top +Z: the nose ends at -Y, the model's left side (+Y) at +X.
    R = axis_matrix("X", "Z")
    assert np.allclose(R @ [1, 0, 0], [0, -1, 0])
    assert np.allclose(R @ [0, 1, 0], [1, 0, 0])
    # The Y-up to Z-up change of OBJ/glTF importers: file +Y -> +Z, file +Z -> -Y, X stays.
    C = axis_matrix("Z", "Y")
    assert np.allclose(C, [[1, 0, 0], [0, 0, -1], [0, 1, 0]])


@pytest.mark.parametrize(("forward", "up"), [("X", "X"), ("-Z", "Z"), ("Y", "-Y")])
def test_parallel_axes_are_refused(forward, up):
    with pytest.raises(Dst3dError, match="perpendicular"):
        axis_matrix(forward, up)


def test_offset_rotation_turns_the_offset_view_into_the_front_view():
    rng = np.random.default_rng(3)
    front = camera_centre(0.0, 0.0, 1.0)
    for az, el in rng.uniform([-math.pi, -1.4], [math.pi, 1.4], size=(50, 2)):
        Ro = offset_rotation(az, el)
        assert np.allclose(Ro @ Ro.T, np.eye(3)) and math.isclose(np.linalg.det(Ro), 1.0)
        assert np.allclose(Ro @ camera_centre(az, el, 1.0), front)


def test_azimuth_offset_shifts_every_pose_by_the_offset():
    # A camera at (a, e) around the aligned model is the camera at (a + offset, e) around the raw one.
    rng = np.random.default_rng(4)
    for az, a, e in rng.uniform([-3, -3, -1.5], [3, 3, 1.5], size=(50, 3)):
        Ro = offset_rotation(az, 0.0)
        assert np.allclose(Ro @ camera_centre(a + az, e, 2.0), camera_centre(a, e, 2.0))
        # ... and sees the same image: R_aligned · O == R_raw.
        assert np.allclose(rotation_no_roll(a, e) @ Ro, rotation_no_roll(a + az, e))


def test_offset_examples():
    # The model's front is seen from +X (a = 90 deg): its +X side must end at -Y.
    assert np.allclose(offset_rotation(math.pi / 2, 0) @ [1, 0, 0], [0, -1, 0])
    # ... which is what forward="X" does.
    assert np.allclose(offset_rotation(math.pi / 2, 0), axis_matrix("X", "Z"))
    # The front is seen from straight above (e = 90 deg): its top turns to face -Y.
    assert np.allclose(offset_rotation(0, math.pi / 2) @ [0, 0, 1], [0, -1, 0])
    assert np.allclose(offset_rotation(0, 0), np.eye(3))


def test_alignment_rotation_applies_axes_first_then_offsets():
    R = alignment_rotation("X", "Z", math.pi / 2, 0.0)
    # nose +X -> -Y by the axes, then the view from +X (the right side, +Y before) -> front.
    assert np.allclose(R, offset_rotation(math.pi / 2, 0) @ axis_matrix("X", "Z"))
    assert np.allclose(R @ [0, 1, 0], [0, -1, 0])


def test_normalisation():
    N = normalisation(np.array([1.0, -2.0, 0.0]), np.array([3.0, 2.0, 1.0]))
    corners = transform_points(N, np.array([[1.0, -2.0, 0.0], [3.0, 2.0, 1.0]]))
    assert np.allclose(corners, [[-0.25, -0.5, -0.125], [0.25, 0.5, 0.125]])
    assert math.isclose(np.max(corners[1] - corners[0]), 1.0)


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        ([0, 0, 0], [0, 0, 0]),
        ([1, 1, 1], [1, 1, 1]),
        ([0, 0, 0], [np.nan, 1, 1]),
        ([0, 0, 0], [np.inf, 1, 1]),
    ],
)
def test_normalisation_refuses_degenerate_boxes(lo, hi):
    with pytest.raises(ValueError):
        normalisation(np.array(lo, dtype=float), np.array(hi, dtype=float))


def test_compose_to_object_normalises_after_the_rotations():
    rng = np.random.default_rng(5)
    raw = rng.normal(size=(40, 3)) * [5.0, 1.0, 0.2] + [100.0, -3.0, 7.0]
    C = np.eye(4)
    C[:3, :3] = axis_matrix("Z", "Y") * 0.01  # a Y-up file in centimetres
    scene = transform_points(C, raw)
    M = compose_to_object(scene, C, forward="X", up="Z", azimuth_offset=0.3, elevation_offset=-0.2)
    out = transform_points(M, raw)
    lo, hi = out.min(axis=0), out.max(axis=0)
    assert math.isclose(float(np.max(hi - lo)), 1.0)
    assert np.allclose((lo + hi) / 2, 0.0, atol=1e-12)
    # The rotation part is the alignment times the axis change, up to the scale.
    R = alignment_rotation("X", "Z", 0.3, -0.2)
    scale = math.sqrt(M[0, :3] @ M[0, :3])
    assert np.allclose(M[:3, :3] / scale, R @ axis_matrix("Z", "Y"))


def test_compose_to_object_errors():
    with pytest.raises(ValueError):
        compose_to_object(np.zeros((0, 3)))
    with pytest.raises(ValueError):
        compose_to_object(np.ones((5, 3)))
    with pytest.raises(Dst3dError):
        compose_to_object(np.eye(3), forward="Z", up="Z")
