"""Pictures of a dataset (the sheet stage): the contact sheet and the viewpoints per class, the keep
set respected, the pose axes where OpenCV projects them with K, R_cv and t_cv, the mask outline on
the mask's edge, and bad input as one line with nothing written."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from dst3d_addon import cli
from dst3d_addon.core.drawing import AXIS_COLOURS, AXIS_LENGTH, OUTLINE, Tile, draw_axes, draw_outline
from dst3d_addon.core.records import load_annotations
from dst3d_addon.core.samples import collect_samples
from dst3d_addon.core.sheet import SHEET, VIEWPOINTS, SheetSettings, spread, write_pictures
from tests.batch_script import SCRIPT, run_batch
from tests.export.conftest import CLASSES, VIEWS
from tests.export.export_helpers import digest_tree, keep_only

N_IMAGES = VIEWS * sum(len(models) for _, models in CLASSES.values())


def test_the_stage_draws_both_pictures(rendered, rendered_digest, tmp_path, capsys):
    to = tmp_path / "pics"
    code = cli.main(
        ["sheet", "--out", str(rendered), "--to", str(to), "--count", "6", "--tile", "64", "--columns", "3"],
        SCRIPT,
    )
    assert code == 0
    line = capsys.readouterr().err.strip()
    assert line == (
        f"dst3d sheet: 6 of {N_IMAGES} renders on the sheet (airliner 12, jet 8) -> {to / SHEET}, {to / VIEWPOINTS}"
    )
    sheet = cv2.imread(str(to / SHEET))
    # Two rows of three cells (control | render, 64 px each, a 36 px caption, 2 px apart) under 54 px of titles.
    assert sheet.shape == (54 + 2 * (64 + 36), 3 * (2 * 64 + 2), 3)
    views = cv2.imread(str(to / VIEWPOINTS))
    assert views.shape[1] == 900 and views.shape[0] > 2 * 300  # a title and one panel per class
    assert digest_tree(rendered) == rendered_digest  # --to elsewhere: the dataset is not written to


def test_the_sheet_spreads_over_classes_and_views(rendered):
    samples = collect_samples(rendered, "renders")
    chosen = spread(samples, 5)
    assert [s.class_key for s in chosen].count("jet") == 3  # classes in key order take the rest
    assert [s.class_key for s in chosen].count("n02690373") == 2
    airliners = [s for s in samples if s.class_key == "n02690373"]
    assert [s.file for s in chosen if s.class_key == "n02690373"] == [airliners[0].file, airliners[-1].file]
    assert len(spread(samples, 1000)) == N_IMAGES


def test_the_keep_set_is_respected_unless_all(dataset, tmp_path):
    ids = sorted(r["id"] for r in load_annotations(dataset))
    keep_only(dataset, ids[::4])
    kept = write_pictures(dataset, tmp_path / "kept", SheetSettings(count=2))
    assert (kept.total, kept.shown, kept.images) == (len(ids[::4]), 2, "renders")
    every = write_pictures(dataset, tmp_path / "all", SheetSettings(count=2, respect_keep=False))
    assert every.total == N_IMAGES
    assert sum(every.per_class.values()) == N_IMAGES


def test_by_default_the_pictures_go_into_the_dataset_and_auto_takes_the_renders(dataset):
    pictures = write_pictures(dataset)
    assert (pictures.sheet, pictures.viewpoints) == (dataset / SHEET, dataset / VIEWPOINTS)
    assert pictures.images == "renders" and pictures.shown == min(24, N_IMAGES)


def test_axes_start_where_opencv_projects_the_origin_and_the_outline_follows_the_mask(rendered):
    record = load_annotations(rendered, as_numpy=False)[5]
    cam = record["camera"]
    w, h = cam["width"], cam["height"]
    tile = Tile(np.zeros((h, w, 3), np.uint8), w, h)  # a tile at the image's own size
    draw_axes(tile, record)
    points = np.vstack([np.zeros(3), np.eye(3) * AXIS_LENGTH])
    uv, _ = cv2.projectPoints(
        points, np.asarray(cam["R_cv"]), np.asarray(cam["t_cv"]), np.asarray(cam["K"]), None
    )
    uv = uv.reshape(-1, 2) + 0.5  # dst3d's pixel coordinates
    for i, colour in enumerate(AXIS_COLOURS):
        # Each arrow's tip carries its colour (the origin may be under another arrow).
        x, y = (int(v) for v in np.clip(np.rint(uv[i + 1]), 0, [w - 1, h - 1]))
        patch = tile.image[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].reshape(-1, 3)
        assert any(np.abs(p.astype(int) - colour).max() < 60 for p in patch), (i, uv[i + 1])
    mask = cv2.imread(str(rendered / record["files"]["mask"]), cv2.IMREAD_GRAYSCALE)
    plain = Tile(np.zeros((h, w, 3), np.uint8), w, h)
    draw_outline(plain, mask)
    strong = np.abs(plain.image.astype(int) - OUTLINE).max(axis=2) < 100  # anti-aliased: nearly its colour
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    assert strong.sum() > 20
    assert edge[strong].all()  # the outline lies on the mask's edge (within a pixel)
    assert strong[edge].mean() > 0.3


def test_the_tile_maps_pixels_of_a_wide_image():
    tile = Tile.of(np.zeros((50, 100, 3), np.uint8), 40)
    assert tile.image.shape == (40, 40, 3)
    # The 100 x 50 image is centred in a 100 x 100 square: its top-left corner moves down 25 px.
    assert tile.to_tile(np.array([[0.0, 0.0], [100.0, 50.0]])) == pytest.approx(np.array([[0, 10], [40, 30]]))
    assert math.isclose(tile.to_tile(np.array([[50.0, 25.0]]))[0, 0], 20)


# ----------------------------------------------------------------------------------------- bad input


def one_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0].removeprefix("dst3d: error: ")


def test_bad_input_is_one_line_and_writes_nothing(rendered, rendered_digest, tmp_path):
    to = tmp_path / "pics"
    (tmp_path / "file").write_text("x")
    cases = [
        (
            ["--images", "generated", "--to", to],
            f"--images generated: {rendered} has no generated images (no generations.jsonl); run the generate "
            "stage first, or choose --images renders or control",
        ),
        (["--to", tmp_path / "file"], f"--to {tmp_path / 'file'}: is a file, not a folder"),
        (["--classes", "car", "--to", to], f"--classes car: no view of {rendered} has these classes"),
        (["--tile", "8", "--to", to], "--tile 8: at least 32"),
        (["--colour", "red"], "dst3d_batch.py sheet: unrecognized arguments: --colour red (see --help)"),
    ]
    for args, message in cases:
        assert one_error(run_batch("sheet", "--out", rendered, *args)) == message
    assert not to.exists()
    assert digest_tree(rendered) == rendered_digest
