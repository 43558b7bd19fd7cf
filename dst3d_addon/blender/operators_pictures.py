"""The export section's Dataset Pictures button: the sheet stage's two PNGs of the Dataset Folder
(core/sheet.py draws them; this only finds the folder, calls it and shows the sheet)."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..core.dataset import ANNOTATIONS, KIND_WORDS
from ..core.errors import Dst3dError
from ..core.sheet import write_pictures
from .control_preview import show_image
from .wording import panel_text

#: The Blender image the contact sheet is loaded into.
SHEET_IMAGE_NAME = "DST3D Sheet"


def dataset_folder(context: bpy.types.Context) -> Path | None:
    """The panel's Dataset Folder as a path, or None when it is not set."""
    text = context.scene.dst3d.export_dir.strip()
    return Path(bpy.path.abspath(text)).expanduser() if text else None


class DST3D_OT_dataset_pictures(bpy.types.Operator):
    """Draw the dataset's contact sheet and viewpoint distribution (sheet.png, viewpoints.png in the
    Dataset Folder) and show the sheet"""

    bl_idname = "dst3d.dataset_pictures"
    bl_label = "Dataset Pictures"
    bl_options = frozenset({"REGISTER"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        folder = dataset_folder(context)
        if folder is None:
            cls.poll_message_set("Choose a Dataset Folder")
            return False
        if not (folder / ANNOTATIONS).is_file():
            cls.poll_message_set("The Dataset Folder holds no rendered views yet: press Export first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            pictures = write_pictures(dataset_folder(context))
        except (Dst3dError, ValueError, OSError) as exc:
            self.report({"ERROR"}, panel_text(exc))
            return {"CANCELLED"}
        image = bpy.data.images.get(SHEET_IMAGE_NAME)
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.load(str(pictures.sheet), check_existing=False)
        image.name = SHEET_IMAGE_NAME
        show_image(context, image)
        self.report(
            {"INFO"},
            f"{pictures.shown} of {pictures.total} {KIND_WORDS[pictures.images]} on {pictures.sheet.name}; "
            f"viewpoints in {pictures.viewpoints.name}",
        )
        return {"FINISHED"}


classes = (DST3D_OT_dataset_pictures,)
