"""Call Blender's operators with only the keywords the running Blender's operator has.

Operators gain, lose and rename keywords between Blender versions (the glTF importer's
`import_scene_as_collection` exists from 4.2 on; Blender 3.4 has no `wm.ply_import` at all), and
an unknown keyword makes the call fail. Each call here names its keywords in two groups, and the
operator's own RNA properties decide which are passed:

- `required`: keywords whose value dst3d computes with (an importer's axes and scale). An operator
  without one of them cannot be used: `OperatorMismatch` says which keyword is missing, and the
  caller tries another operator or reports it. Such a keyword is never dropped silently.
- `if_present`: keywords that switch off something dst3d does not want (a collection per import,
  merged vertices, animation). An operator without one does not do that thing at all, so the
  keyword is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bpy


class OperatorMismatch(RuntimeError):
    """The running Blender's operator is missing, or lacks a keyword the call requires."""

    def __init__(self, idname: str, missing: tuple[str, ...] = ()) -> None:
        self.idname = idname
        self.missing = missing
        version = bpy.app.version_string
        if missing:
            text = f"Blender {version}'s {idname} has no option {', '.join(missing)}"
        else:
            text = f"Blender {version} has no operator {idname}"
        super().__init__(text)


def operator(idname: str) -> Any:
    """The `bpy.ops` function of `idname` ("wm.obj_import"); OperatorMismatch if Blender has none."""
    module, _, name = idname.partition(".")
    op = getattr(getattr(bpy.ops, module), name)
    try:
        op.get_rna_type()
    except KeyError as exc:
        raise OperatorMismatch(idname) from exc
    return op


def exists(idname: str) -> bool:
    """Whether the running Blender (with its enabled add-ons) has the operator `idname`."""
    try:
        operator(idname)
    except OperatorMismatch:
        return False
    return True


def keywords(idname: str) -> frozenset[str]:
    """The keywords (RNA property identifiers) the running Blender's operator `idname` takes."""
    properties = operator(idname).get_rna_type().properties
    return frozenset(p.identifier for p in properties if p.identifier != "rna_type")


def arguments(
    idname: str, required: Mapping[str, Any], if_present: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The keywords to pass to `idname`: all of `required` (OperatorMismatch names any the operator
    lacks) and those of `if_present` that it has."""
    have = keywords(idname)
    missing = tuple(name for name in required if name not in have)
    if missing:
        raise OperatorMismatch(idname, missing)
    return {**required, **{k: v for k, v in (if_present or {}).items() if k in have}}


def call(
    idname: str,
    required: Mapping[str, Any],
    if_present: Mapping[str, Any] | None = None,
    *args: Any,
) -> set[str]:
    """Run `idname` with `arguments(...)`; `args` are the execution context ("EXEC_DEFAULT", ...)."""
    return operator(idname)(*args, **arguments(idname, required, if_present))
