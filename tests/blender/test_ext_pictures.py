"""The export section's Dataset Pictures button (bpy module, in this process): greyed out until the
Dataset Folder holds rendered views; then it writes the sheet stage's two PNGs and shows the sheet."""

from __future__ import annotations

from pathlib import Path

import bpy
import pytest

from dst3d_addon.blender import registration
from dst3d_addon.blender.operators_pictures import SHEET_IMAGE_NAME
from dst3d_addon.core.sheet import SHEET, VIEWPOINTS
from tests.batch_script import SAMPLE, run_batch


@pytest.fixture(scope="module", autouse=True)
def registered():
    registration.register()
    yield
    registration.unregister()


@pytest.mark.slow
def test_dataset_pictures_writes_the_sheet_stages_pngs(tmp_path: Path) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    s = bpy.context.scene.dst3d
    assert not bpy.ops.dst3d.dataset_pictures.poll()  # no Dataset Folder
    s.export_dir = str(tmp_path / "ds")
    assert not bpy.ops.dst3d.dataset_pictures.poll()  # no rendered views in it
    proc = run_batch(
        "render", "--cad", SAMPLE, "--views", 3, "--resolution", 48, "--out", tmp_path / "ds", "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    assert bpy.ops.dst3d.dataset_pictures.poll()
    assert bpy.ops.dst3d.dataset_pictures() == {"FINISHED"}
    assert (tmp_path / "ds" / SHEET).is_file() and (tmp_path / "ds" / VIEWPOINTS).is_file()
    image = bpy.data.images[SHEET_IMAGE_NAME]
    assert tuple(image.size) == (3 * (2 * 128 + 2), 54 + 128 + 36)  # three cells in one row
