"""The sheet stage's option errors, in-process: exit 2, one stderr line naming the option, and
nothing written (the test's folder stays as it was)."""

from __future__ import annotations

import os

import pytest

from dst3d_addon.core.sheet import PICTURE_KINDS
from tests.cli.cli_helpers import error, invalid_choice, usage


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--images", "depth"],
            usage("sheet", invalid_choice("--images", "depth", PICTURE_KINDS)),
            id="kind",
        ),
        pytest.param(["--count", "0"], usage("sheet", "--count '0': must be positive"), id="count-zero"),
        pytest.param(["--count", "5000"], usage("sheet", "--count '5000': at most 1,024"), id="count-large"),
        pytest.param(["--tile", "x"], usage("sheet", "--tile 'x': expected a whole number"), id="tile-text"),
        pytest.param(["--tile", "16"], error("--tile 16: at least 32"), id="tile-small"),
        pytest.param(
            ["--columns", "0"], usage("sheet", "--columns '0': must be positive"), id="columns-zero"
        ),
        pytest.param(["--size", "9"], usage("sheet", "unrecognized arguments: --size 9"), id="unknown"),
        pytest.param([], error("--out ds: no such dataset folder"), id="no-dataset"),
    ],
)
def test_option_errors_name_the_option(run_cli, tmp_path, args, message):
    code, lines = run_cli("sheet", "--out", "ds", *args)
    assert (code, lines) == (2, [message])
    assert os.listdir(tmp_path) == []


def test_out_is_required(run_cli, tmp_path):
    assert run_cli("sheet") == (2, [usage("sheet", "the following arguments are required: --out")])
