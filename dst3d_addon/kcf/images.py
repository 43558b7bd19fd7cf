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


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """The image at `path` as size x size x 3 RGB uint8; DatasetError naming the file if unreadable."""
    data = np.fromfile(os.fspath(path), dtype=np.uint8) if os.path.isfile(path) else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise DatasetError(f"{path}: cannot read the image")
    image = square(image)
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    image = cv2.resize(image, (size, size), interpolation=interp)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
