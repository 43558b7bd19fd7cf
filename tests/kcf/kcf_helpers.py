"""Helpers of the KCF tests: render the sample airliner; planting errors is tools/kcf_bench_data.py's
(shared with the benchmark): `turn_azimuths` turns labels, `wrong_quarter` picks the errors."""

from __future__ import annotations

from pathlib import Path

from tests.batch_script import SAMPLE, run_batch
from tools.kcf_bench_data import turn_labels as turn_azimuths
from tools.kcf_bench_data import wrong_quarter

__all__ = ["render", "turn_azimuths", "wrong_quarter"]


def render(out: Path, views: int, size: int, sampling: str = "1") -> Path:
    result = run_batch(
        "render",
        "--cad",
        str(SAMPLE),
        "--class-name",
        "airliner",
        "--synset",
        "n02690373",
        "--views",
        str(views),
        "--resolution",
        str(size),
        "--sampling",
        sampling,
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    return out
