"""operator_call: keywords passed by the running Blender's RNA properties, required ones never dropped."""

import bpy
import pytest

from dst3d_addon.blender import operator_call
from dst3d_addon.blender.operator_call import OperatorMismatch


def test_keywords_are_the_operators_rna_properties():
    have = operator_call.keywords("wm.obj_import")
    assert {"filepath", "forward_axis", "up_axis", "global_scale"} <= have
    assert "rna_type" not in have


def test_if_present_keywords_the_operator_lacks_are_left_out():
    args = operator_call.arguments(
        "wm.obj_import", {"forward_axis": "Y"}, {"global_scale": 2.0, "no_such_option": True}
    )
    assert args == {"forward_axis": "Y", "global_scale": 2.0}


def test_a_missing_required_keyword_is_named():
    with pytest.raises(OperatorMismatch) as info:
        operator_call.arguments("wm.obj_import", {"forward_axis": "Y", "no_such_axis": "Z"})
    assert info.value.missing == ("no_such_axis",)
    assert str(info.value) == f"Blender {bpy.app.version_string}'s wm.obj_import has no option no_such_axis"


def test_a_missing_operator_is_named():
    assert operator_call.exists("wm.obj_import")
    assert not operator_call.exists("wm.no_such_import")
    with pytest.raises(OperatorMismatch, match=r"has no operator wm\.no_such_import"):
        operator_call.call("wm.no_such_import", {})


def test_call_runs_the_operator():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert operator_call.call("mesh.primitive_cube_add", {"size": 2.0}, {"no_such_option": 1}) == {"FINISHED"}
    assert [o.type for o in bpy.context.scene.objects] == ["MESH"]
