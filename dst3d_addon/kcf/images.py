"""Images as the pose estimator sees them: RGB, padded to a square (keeping the aspect), resized (pure)."""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..core.drawing import square
from ..core.errors import DatasetError

#: ImageNet's channel statistics (RGB), which the pretrained ResNets expect.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

#: A crop around an object's box is this much wider than the box's longer side (a tenth each side).
CROP_MARGIN = 0.2


def crop_square(
    image: np.ndarray, box: tuple[float, float, float, float], margin: float = CROP_MARGIN
) -> np.ndarray:
    """The square around `box` ([u0, v0, u1, v1] in pixels), its side the box's longer side times
    1 + margin, centred on the box; what lies outside the image is black."""
    u0, v0, u1, v1 = (float(x) for x in box)
    side = max(1, round(max(u1 - u0, v1 - v0) * (1.0 + margin)))
    x0 = round((u0 + u1) / 2 - side / 2)
    y0 = round((v0 + v1) / 2 - side / 2)
    h, w = image.shape[:2]
    out = np.zeros((side, side, *image.shape[2:]), dtype=image.dtype)
    ys, xs = slice(max(0, y0), min(h, y0 + side)), slice(max(0, x0), min(w, x0 + side))
    if ys.stop > ys.start and xs.stop > xs.start:
        out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = image[ys, xs]
    return out


def load_image(
    path: str | os.PathLike, size: int, box: tuple[float, float, float, float] | None = None
) -> np.ndarray:
    """The image at `path` as size x size x 3 RGB uint8, padded to a square (or, with `box`, the
    square crop around it: `crop_square`); DatasetError naming the file if unreadable."""
    data = np.fromfile(os.fspath(path), dtype=np.uint8) if os.path.isfile(path) else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise DatasetError(f"{path}: cannot read the image")
    image = square(image) if box is None else crop_square(image, box)
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    image = cv2.resize(image, (size, size), interpolation=interp)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
