"""What differs between the Blenders dst3d runs in, in one place.

The extension (manifest) needs Blender 4.2+; loaded as a legacy add-on (the `bl_info` beside the
manifest) and in the batch script, dst3d runs from Blender 3.4 on. Blender 3.4 to 4.1 lack:
extensions and their user folders (4.2), the online-access setting (4.2) and progress bars in
layouts (4.0). Each function here gives the newer Blender's behaviour where it exists and the
nearest equivalent before.
"""

from __future__ import annotations

from pathlib import Path

import bpy


def user_folder(package: str, *, create: bool) -> Path:
    """The add-on's own user folder (never next to its code): the extension's user folder when
    `package` is an installed extension, else `<Blender's user data files>/<package>` (a legacy
    add-on, or registered by a test)."""
    extension_path_user = getattr(bpy.utils, "extension_path_user", None)
    if extension_path_user is not None:
        try:
            return Path(extension_path_user(package, create=create))
        except ValueError:  # not an extension
            pass
    folder = bpy.utils.user_resource("DATAFILES", path=package.rpartition(".")[2], create=create)
    return Path(folder)


def online_access() -> bool:
    """Whether Blender lets add-ons use the network (Blender before 4.2 has no such setting: yes)."""
    return bool(getattr(bpy.app, "online_access", True))


def progress_bar(layout: bpy.types.UILayout, factor: float, text: str) -> None:
    """A progress bar with `text` (Blender before 4.0 has none: the percentage and the text)."""
    if hasattr(layout, "progress"):
        layout.progress(factor=factor, text=text)
    else:
        layout.label(text=f"{round(100 * factor)} %  {text}", icon="TIME")
