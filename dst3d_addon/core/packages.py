"""Packages that only some features need (scipy for PASCAL3D+'s .mat files, webdataset for tar
shards, trimesh for CAD meshes), imported when used.

The batch script, Blender and the loaders run without them; a feature that needs a missing one
stops with one line that names the package and how to install it, rather than a traceback.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .errors import Dst3dError


class MissingPackage(Dst3dError):
    """A Python package a feature needs is not installed (the message names it and the install line)."""

    def __init__(self, message: str, package: str) -> None:
        super().__init__(message)
        self.package = package


def require(module: str, *, package: str | None = None, purpose: str) -> ModuleType:
    """Import `module` for `purpose` (such as "the pascal3d format"); MissingPackage if it cannot be.

    `package` is the name pip installs it under, when that differs from the module's.
    """
    package = package or module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingPackage(
            f"{purpose} needs the Python package {package}, which this Python ({sys.executable}) cannot "
            f"import ({err}); install it with: {sys.executable} -m pip install {package}",
            package,
        ) from None
