"""The settings of the render stage: what dataset.json records and every worker receives, and the
choices and defaults that the batch script and the panel both offer."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .camera import DEFAULT_LENS_MM, DEFAULT_SENSOR_MM, Intrinsics
from .errors import SettingError, setting
from .sampling import Distance, SamplingSpec, parse_strategy

EDGE_MODES = ("canny", "freestyle", "canny-shaded")
#: The axes a model's front and up may be given as.
AXES = ("X", "Y", "Z", "-X", "-Y", "-Z")
#: Views per model when neither the user nor a grid says.
DEFAULT_VIEWS = 24
#: The share of the shorter image side the object fills (`Distance("fit", ...)`) by default.
DEFAULT_FIT = 0.8
#: Width and height of the control images by default (3D-DST's 512x512).
DEFAULT_RESOLUTION = (512, 512)
#: The largest image side in pixels.
MAX_RESOLUTION = 16384


@dataclass(frozen=True)
class RenderSettings:
    """Everything that decides a view's files, apart from the model and the view index."""

    width: int
    height: int
    sampling: SamplingSpec
    edges: str = "canny"
    seed: int = 0
    keep_renders: bool = True
    shaded_samples: int = 32
    lens_mm: float = DEFAULT_LENS_MM
    sensor_mm: float = DEFAULT_SENSOR_MM

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise SettingError(
                f"{setting('resolution')} {self.width}x{self.height}: width and height must be positive"
            )
        if self.edges not in EDGE_MODES:
            raise SettingError(f"{setting('edges')} {self.edges!r}: use one of {', '.join(EDGE_MODES)}")
        if self.shaded_samples < 1:
            raise SettingError(f"{setting('samples')} {self.shaded_samples}: must be at least 1")

    @property
    def intrinsics(self) -> Intrinsics:
        """The camera's intrinsics (3D-DST's 35 mm lens on a 32 mm sensor by default)."""
        return Intrinsics.from_lens(self.width, self.height, self.lens_mm, self.sensor_mm)

    def sampling_for(self, strategy: str | None) -> SamplingSpec:
        """The sampling spec with a per-model strategy override (or the run's)."""
        if strategy is None:
            return self.sampling
        return replace(self.sampling, strategy=parse_strategy(strategy))

    def as_dict(self) -> dict:
        """For dataset.json (the keys a resumed run must match) and the workers."""
        return {
            "resolution": [self.width, self.height],
            "sampling": self.sampling.as_dict(),
            "edges": self.edges,
            "seed": self.seed,
            "keep_renders": self.keep_renders,
            "shaded_samples": self.shaded_samples,
            "camera": {"lens_mm": self.lens_mm, "sensor_mm": self.sensor_mm},
        }

    @classmethod
    def from_dict(cls, data: dict) -> RenderSettings:
        """The inverse of `as_dict`."""
        s = data["sampling"]
        spec = SamplingSpec(
            parse_strategy(s["strategy"]),
            Distance(s["distance"]["mode"], float(s["distance"]["value"])),
            math.radians(float(s["theta_std_deg"])),
        )
        w, h = data["resolution"]
        return cls(
            width=int(w),
            height=int(h),
            sampling=spec,
            edges=data["edges"],
            seed=int(data["seed"]),
            keep_renders=bool(data["keep_renders"]),
            shaded_samples=int(data["shaded_samples"]),
            lens_mm=float(data["camera"]["lens_mm"]),
            sensor_mm=float(data["camera"]["sensor_mm"]),
        )
