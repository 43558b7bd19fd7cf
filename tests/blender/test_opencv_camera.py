"""No mirror trap: the record's OpenCV extrinsics, given to OpenCV's own projection, land on the mask.

`camera.R` looks down -z (pose-convention.md); OpenCV's camera looks down +z. A user who calls
`cv2.projectPoints` with `camera.R_cv`, `camera.t_cv` and `camera.K` gets the rendered silhouette;
one who passes `camera.R` and `-R C` instead gets its horizontal mirror, still inside the image,
which is why the records carry both forms and the README says which is which.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dst3d_addon.core.records import load_annotations
from tests.batch_script import SAMPLE, run_batch
from tests.geometry import cad_mesh, iou, silhouette


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """Six views over the whole sphere, rolled in the image, on a non-square image (a swapped axis shows)."""
    out = tmp_path_factory.mktemp("opencv") / "ds"
    proc = run_batch(
        "render", "--cad", SAMPLE, "--views", 6, "--resolution", "96x72", "--sampling", "sphere",
        "--theta-std", 30, "--seed", 5, "--out", out, "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def opencv_pixels(vertices: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray) -> np.ndarray:
    """cv2.projectPoints as a user calls it, moved to dst3d's pixels (OpenCV puts centres on integers)."""
    rvec, _ = cv2.Rodrigues(R)
    uv, _ = cv2.projectPoints(vertices, rvec, np.asarray(t, dtype=np.float64), K, None)
    return uv.reshape(-1, 2) + 0.5


def test_cv2_project_points_with_r_cv_and_t_cv_lands_on_the_mask(rendered):
    records = load_annotations(rendered)
    assert len(records) == 6 and max(abs(r["pose"]["theta"]) for r in records) > 0.2
    for record in records:
        cam = record["camera"]
        vertices, faces = cad_mesh(record)
        mask = cv2.imread(str(rendered / record["files"]["mask"]), cv2.IMREAD_GRAYSCALE) > 0
        uv = opencv_pixels(vertices, cam["R_cv"], cam["t_cv"], cam["K"])
        assert iou(mask, silhouette(uv, faces, cam["width"], cam["height"])) >= 0.97, record["id"]

        # The trap: camera.md's R with t = -R C, given to OpenCV as they are, mirrors u about the
        # principal point and keeps v, so the projection still lands in the image.
        mirrored = opencv_pixels(vertices, cam["R"], -cam["R"] @ cam["C"], cam["K"])
        px = cam["principal"][0]
        np.testing.assert_allclose(mirrored[:, 0], 2 * px - uv[:, 0], atol=1e-6)
        np.testing.assert_allclose(mirrored[:, 1], uv[:, 1], atol=1e-6)
