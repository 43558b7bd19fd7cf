"""Good command lines: the values and defaults the stages get from `cli.build_parser()`."""

from __future__ import annotations

import re

import pytest

from dst3d_addon import cli
from dst3d_addon.cli.render import views_per_model


def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


RENDER_DEFAULTS = {
    "cad": [],
    "cad_csv": None,
    "cad_root": [],
    "synsets": None,
    "class_name": None,
    "synset": None,
    "forward": "-Y",
    "up": "Z",
    "azimuth_offset": 0.0,
    "elevation_offset": 0.0,
    "views": None,
    "seed": 0,
    "resolution": (512, 512),
    "sampling": "1",
    "theta_std": 0.0,
    "distance": None,
    "random_distance": None,
    "fit": None,  # the render stage then fits at 0.8 of the shorter side (see the --help test)
    "edges": "canny",
    "samples": 32,
    "no_renders": False,
    "allow_mixed": False,
    "workers": 1,
    "quiet": False,
}
# The generation preset's own values (steps, guidance, ...) stay None here: --preset fills them in.
GENERATE_DEFAULTS = {
    "pipeline": "sd15-canny",
    "controlnet": None,
    "lora": None,
    "base_config": None,
    "allow_pickle": False,
    "preset": "paper",
    "scheduler": None,
    "steps": None,
    "guidance": None,
    "control_scale": None,
    "eta": None,
    "width": None,
    "height": None,
    "prompt": None,
    "negative_prompt": None,
    "captions": None,
    "images_per_view": 1,
    "batch_size": 4,
    "batching": "exact",
    "device": "auto",
    "dtype": "auto",
    "python": None,
}
DEFAULTS = {
    "render": RENDER_DEFAULTS,
    "generate": {**GENERATE_DEFAULTS, "seed": 0, "allow_mixed": False, "quiet": False},
    "run": {**RENDER_DEFAULTS, **GENERATE_DEFAULTS},
    "kcf": {
        "folds": 5,
        "images": "generated",
        "classes": [],
        "group_by": "view",
        "epochs": None,
        "batch_size": None,
        "image_size": None,
        "lr": None,
        "optimizer": None,
        "momentum": 0.9,
        "weight_decay": None,
        "backbone": None,
        "pretrained": "auto",
        "augment": True,
        "label_sigma": 3.0,
        "train_renders": None,
        "skip_worst": 0.25,
        "seed": 0,
        "device": "auto",
        "amp": True,
        "threads": None,
        "python": None,
        "save_weights": False,
        "allow_mixed": False,
        "quiet": False,
    },
    "filter": {"keep_fraction": None, "max_score": 1.5, "per_class": True, "force": False},
    "report": {"output": None, "count": 8, "tile": 160},
}


@pytest.mark.parametrize("stage", list(DEFAULTS))
def test_defaults(stage):
    rule = ["--max-score", "1.5"] if stage == "filter" else []
    args = parse(stage, "--out", "data", *rule)
    assert args.stage == stage
    assert args.out == "data"
    assert {name: getattr(args, name) for name in DEFAULTS[stage]} == DEFAULTS[stage]


@pytest.mark.parametrize("stage", ["render", "generate", "run"])
def test_shard_default_and_value(stage):
    default = parse(stage, "--out", "d").shard
    shard = parse(stage, "--out", "d", "--shard", " 2 / 4 ").shard
    assert [(default.index, default.count), (shard.index, shard.count)] == [(0, 1), (2, 4)]


@pytest.mark.parametrize(
    ("argv", "views"),
    [
        ([], 24),
        (["--sampling", "3"], 24),
        (["--sampling", "4x2"], 8),
        (["--sampling", "4X2"], 8),
        (["--sampling", "4x2", "--views", "5"], 5),
        (["--views", "7"], 7),
    ],
)
def test_views_per_model(argv, views):
    args = parse("render", "--out", "d", *argv)
    assert views_per_model(args) == views


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("512", (512, 512)), ("640x480", (640, 480)), ("640X480", (640, 480)), ("16384", (16384, 16384))],
)
def test_resolution_forms(value, parsed):
    assert parse("render", "--out", "d", "--resolution", value).resolution == parsed


@pytest.mark.parametrize(
    ("value", "name"), [("1", "1"), (" 5 ", "5"), ("sphere", "sphere"), ("8X3", "8x3"), ("1x1", "1x1")]
)
def test_sampling_forms(value, name):
    assert parse("render", "--out", "d", "--sampling", value).sampling == name


@pytest.mark.parametrize("stage", ["generate", "run", "kcf"])
@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_forms(stage, device):
    assert parse(stage, "--out", "d", "--device", device).device == device


def test_render_values():
    args = parse(
        "render",
        "--out", "d",
        "--cad", "a.glb",
        "--cad", "b.obj",
        "--views", "3",
        "--fit", "0.5",
        "--theta-std", "-2.5",
        "--azimuth-offset", "-90",
        "--forward", "X",
        "--up=-Z",
        "--edges", "canny-shaded",
        "--seed", "7",
    )  # fmt: skip
    assert args.cad == ["a.glb", "b.obj"]
    assert (args.views, args.fit, args.theta_std, args.azimuth_offset) == (3, 0.5, -2.5, -90.0)
    assert (args.forward, args.up, args.edges, args.seed) == ("X", "-Z", "canny-shaded", 7)
    assert (parse("render", "--out", "d", "--distance", "2").distance, args.distance) == (2.0, None)


def test_generate_values():
    args = parse(
        "generate",
        "--out", "d",
        "--preset", "fast",
        "--scheduler", "euler-a",
        "--steps", "8",
        "--guidance", "0",
        "--eta", "0.5",
        "--width", "640",
        "--dtype", "bf16",
        "--batching", "fused",
        "--images-per-view", "3",
    )  # fmt: skip
    expected = {
        "preset": "fast",
        "scheduler": "euler-a",
        "steps": 8,
        "guidance": 0.0,
        "eta": 0.5,
        "width": 640,
        "height": None,
        "dtype": "bf16",
        "batching": "fused",
        "images_per_view": 3,
    }
    assert {name: getattr(args, name) for name in expected} == expected


def test_kcf_and_filter_values():
    args = parse("kcf", "--out", "d", "--no-augment", "--no-amp", "--classes", "car", "bus", "--lr", "1e-3")
    assert (args.augment, args.amp, args.classes, args.lr) == (False, False, ["car", "bus"], 0.001)
    args = parse("filter", "--out", "d", "--keep-fraction", "1", "--no-per-class")
    assert (args.keep_fraction, args.max_score, args.per_class) == (1.0, None, False)
    assert parse("filter", "--out", "d", "--max-score", "-3").max_score == -3.0


def test_render_help_gives_the_documented_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per option
    with pytest.raises(SystemExit) as stop:
        parse("render", "--help")
    assert stop.value.code == 0
    help_text = capsys.readouterr().out
    assert re.search(
        r"\n  --fit F +distance at which the object fills F of the shorter side \(default 0\.8\)\n", help_text
    )
    assert re.search(r"\n  --views N +views per model \(default 24, or the grid's size\)\n", help_text)
