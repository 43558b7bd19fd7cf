"""Errors argparse finds (option types, choices, groups): exit 2 and exactly one stderr line.

Nothing here gets past parsing, so no dataset, worker or model is touched. The expected lines are
the text the batch script prints today, including its quirks (an option name printed twice by the
number, --resolution, --shard and --sampling checks).
"""

from __future__ import annotations

import pytest

import dst3d_addon
from dst3d_addon import cli
from tests.cli.cli_helpers import SCRIPT, invalid_choice, usage

STAGES = ("render", "generate", "run", "kcf", "filter", "report")
#: The one option every stage requires; parsing fails before anything looks at the folder.
OUT = ("--out", "o")

# ----------------------------------------------------------------------------------------- numbers

POSITIVE_INT = [
    ("x", "expected a whole number"),
    ("2.5", "expected a whole number"),
    ("nan", "expected a whole number"),
    ("0", "must be positive"),
    ("-3", "must be positive"),
]
POSITIVE_FLOAT = [
    ("x", "expected a number"),
    ("nan", "must be finite"),
    ("inf", "must be finite"),
    ("0", "must be positive"),
    ("-0.5", "must be positive"),
]
FINITE_FLOAT = [
    ("x", "expected a number"),
    ("nan", "must be finite"),
    ("inf", "must be finite"),
]

RENDER_NUMBERS = {
    "--views": POSITIVE_INT,
    "--samples": POSITIVE_INT,
    "--workers": POSITIVE_INT,
    "--distance": POSITIVE_FLOAT,
    "--random-distance": POSITIVE_FLOAT,
    "--fit": POSITIVE_FLOAT,
    "--azimuth-offset": FINITE_FLOAT,
    "--elevation-offset": FINITE_FLOAT,
    "--theta-std": FINITE_FLOAT,
}
GENERATE_NUMBERS = {
    "--steps": POSITIVE_INT,
    "--width": POSITIVE_INT,
    "--height": POSITIVE_INT,
    "--images-per-view": POSITIVE_INT,
    "--batch-size": POSITIVE_INT,
    "--guidance": FINITE_FLOAT,
    "--control-scale": FINITE_FLOAT,
    "--eta": FINITE_FLOAT,
}
NUMBERS = {
    "render": RENDER_NUMBERS,
    "generate": GENERATE_NUMBERS,
    "run": {**RENDER_NUMBERS, **GENERATE_NUMBERS},
    "kcf": {
        "--folds": POSITIVE_INT,
        "--epochs": POSITIVE_INT,
        "--batch-size": POSITIVE_INT,
        "--image-size": POSITIVE_INT,
        "--threads": POSITIVE_INT,
        "--lr": POSITIVE_FLOAT,
        "--momentum": FINITE_FLOAT,
        "--weight-decay": FINITE_FLOAT,
        "--label-sigma": FINITE_FLOAT,
        "--skip-worst": FINITE_FLOAT,
    },
    "filter": {"--keep-fraction": POSITIVE_FLOAT, "--max-score": FINITE_FLOAT},
    "report": {"--count": POSITIVE_INT, "--tile": POSITIVE_INT},
}
NUMBER_CASES = [
    pytest.param(stage, option, value, problem, id=f"{stage}{option}={value}")
    for stage, options in NUMBERS.items()
    for option, bad in options.items()
    for value, problem in bad
]


def _one_error(run_cli, stage: str, *args: str) -> list[str]:
    code, lines = run_cli(stage, *OUT, *args)
    assert code == 2
    return lines


@pytest.mark.parametrize(("stage", "option", "value", "problem"), NUMBER_CASES)
def test_a_bad_number_names_the_option_and_the_problem(run_cli, stage, option, value, problem):
    lines = _one_error(run_cli, stage, option, value)
    assert lines == [usage(stage, f"argument {option}: {option} {value!r}: {problem}")]


@pytest.mark.parametrize("stage", ["render", "generate", "run", "kcf"])
def test_a_seed_must_be_a_whole_number(run_cli, stage):
    # --seed is a plain int: argparse's own wording, not the other numbers'.
    assert _one_error(run_cli, stage, "--seed", "1.5") == [
        usage(stage, "argument --seed: invalid int value: '1.5'")
    ]


@pytest.mark.parametrize("value", ["1.5", "1.0001"])
def test_keep_fraction_above_one_is_refused(run_cli, value):
    lines = _one_error(run_cli, "filter", "--keep-fraction", value)
    assert lines == [
        usage("filter", f"argument --keep-fraction: --keep-fraction {value!r}: must be in (0, 1]")
    ]


# ----------------------------------------------------------------------------------------- choices

AXES = ("X", "Y", "Z", "-X", "-Y", "-Z")
RENDER_CHOICES = {
    "--edges": ("sobel", ("canny", "freestyle", "canny-shaded")),
    "--forward": ("W", AXES),
    "--up": ("y", AXES),
}
GENERATE_CHOICES = {
    "--preset": ("slow", ("paper", "fast")),
    "--scheduler": ("pndm", ("ddim", "unipc", "dpm++", "euler", "euler-a", "lcm")),
    "--dtype": ("fp8", ("auto", "fp16", "bf16", "fp32")),
    "--batching": ("lazy", ("exact", "fused")),
}
CHOICES = {
    "render": RENDER_CHOICES,
    "generate": GENERATE_CHOICES,
    "run": {**RENDER_CHOICES, **GENERATE_CHOICES},
    "kcf": {
        "--images": ("photos", ("generated", "renders", "control")),
        "--group-by": ("class", ("image", "view", "model")),
        "--optimizer": ("adam", ("sgd", "adamw")),
        "--backbone": ("vit", ("resnet-50", "resnet-101", "resnet-34", "resnet-18", "resnet-tiny")),
    },
}
CHOICE_CASES = [
    pytest.param(stage, option, value, names, id=f"{stage}{option}={value}")
    for stage, options in CHOICES.items()
    for option, (value, names) in options.items()
]


@pytest.mark.parametrize(("stage", "option", "value", "names"), CHOICE_CASES)
def test_a_bad_choice_lists_the_choices(run_cli, stage, option, value, names):
    assert _one_error(run_cli, stage, option, value) == [usage(stage, invalid_choice(option, value, names))]


@pytest.mark.parametrize("stage", ["render", "run"])
@pytest.mark.parametrize("option", ["--forward", "--up"])
def test_a_negative_axis_needs_the_equals_form(run_cli, stage, option):
    # "-Y" (the --forward default) looks like an option to argparse: only --forward=-Y passes.
    lines = _one_error(run_cli, stage, option, "-Y")
    assert lines == [usage(stage, f"argument {option}: expected one argument")]


@pytest.mark.parametrize("stage", ["generate", "run", "kcf"])
@pytest.mark.parametrize("value", ["cuda:x", "gpu", "cuda:", "CUDA", "cuda:0,1", "cpu:0"])
def test_a_bad_device_names_the_accepted_forms(run_cli, stage, value):
    lines = _one_error(run_cli, stage, "--device", value)
    assert lines == [
        usage(stage, f"argument --device: --device {value!r}: use auto, cpu, cuda, cuda:N or mps")
    ]


# ----------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("stage", ["render", "run"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0x5", "width and height must be positive"),
        ("-5", "width and height must be positive"),
        ("abc", "expected W or WxH, such as 512x384"),
        ("x480", "expected W or WxH, such as 512x384"),
        ("20000", "at most 16384 pixels a side"),
        ("16385x16", "at most 16384 pixels a side"),
        # Three numbers are refused, though the message speaks of positive sizes (see the report).
        ("640x480x3", "width and height must be positive"),
    ],
)
def test_a_bad_resolution(run_cli, stage, value, problem):
    lines = _one_error(run_cli, stage, "--resolution", value)
    assert lines == [usage(stage, f"argument --resolution: --resolution {value!r}: {problem}")]


@pytest.mark.parametrize("stage", ["render", "generate", "run"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("3/2", "I must be in 0..N-1 (shards are 0/2 to 1/2)"),
        ("2/2", "I must be in 0..N-1 (shards are 0/2 to 1/2)"),
        # N = 0 gets the same wording, with an impossible range (see the report).
        ("1/0", "I must be in 0..N-1 (shards are 0/0 to -1/0)"),
        ("a/b", "expected I/N, such as 0/4"),
        ("1", "expected I/N, such as 0/4"),
    ],
)
def test_a_bad_shard(run_cli, stage, value, problem):
    lines = _one_error(run_cli, stage, "--shard", value)
    assert lines == [usage(stage, f"argument --shard: --shard {value!r}: {problem}")]


@pytest.mark.parametrize("stage", ["render", "run"])
@pytest.mark.parametrize("value", ["7", "0x3", "8x", "AxE", "random", ""])
def test_a_bad_sampling_strategy_lists_the_strategies(run_cli, stage, value):
    lines = _one_error(run_cli, stage, "--sampling", value)
    assert lines == [
        usage(
            stage,
            f"argument --sampling: --sampling: unknown sampling strategy {value!r}: "
            "use 1, 2, 3, 4, 5, sphere, or a grid AxE such as 8x3",
        )
    ]


# ----------------------------------------------------------------------------------------- groups


@pytest.mark.parametrize("stage", ["render", "run"])
@pytest.mark.parametrize(
    ("first", "second"),
    [("--distance", "--fit"), ("--fit", "--random-distance"), ("--random-distance", "--distance")],
)
def test_one_camera_distance_rule_at_a_time(run_cli, stage, first, second):
    lines = _one_error(run_cli, stage, first, "2", second, "0.5")
    assert lines == [usage(stage, f"argument {second}: not allowed with argument {first}")]


def test_filter_takes_keep_fraction_or_max_score_not_both(run_cli):
    lines = _one_error(run_cli, "filter", "--keep-fraction", "0.5", "--max-score", "2")
    assert lines == [usage("filter", "argument --max-score: not allowed with argument --keep-fraction")]


def test_filter_needs_a_rule(run_cli):
    lines = _one_error(run_cli, "filter")
    assert lines == [usage("filter", "one of the arguments --keep-fraction --max-score is required")]


# ----------------------------------------------------------------------------------------- stages


@pytest.mark.parametrize(
    "argv",
    [pytest.param([stage], id=stage) for stage in STAGES]
    + [pytest.param(["filter", "--keep-fraction", "0.5"], id="filter-with-a-rule")],
)
def test_every_stage_needs_out(run_cli, argv):
    code, lines = run_cli(*argv)
    assert code == 2
    assert lines == [usage(argv[0], "the following arguments are required: --out")]


def test_a_stage_is_required(run_cli):
    assert run_cli() == (2, [usage(None, "the following arguments are required: STAGE")])


@pytest.mark.parametrize(
    ("argv", "taken"),
    [
        (["bogus"], "bogus"),
        (["Render", "--out", "o"], "Render"),
        # Without a stage, --out is unknown and its value is taken for the stage.
        (["--out", "o"], "o"),
    ],
)
def test_an_unknown_stage_lists_the_stages(run_cli, argv, taken):
    assert run_cli(*argv) == (2, [usage(None, invalid_choice("STAGE", taken, STAGES))])


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("extra", [["--bogus"], ["--bogus", "1"], ["stray"]])
def test_an_unknown_option_is_named(run_cli, stage, extra):
    rule = ["--keep-fraction", "0.5"] if stage == "filter" else []
    code, lines = run_cli(stage, *OUT, *rule, *extra)
    assert code == 2
    # Reported by the top-level parser, so without the stage's name.
    assert lines == [usage(None, f"unrecognized arguments: {' '.join(extra)}")]


def test_a_generate_only_option_is_unknown_to_render(run_cli):
    code, lines = run_cli("render", "--out", "o", "--steps", "4")
    assert (code, lines) == (2, [usage(None, "unrecognized arguments: --steps 4")])


def test_version_prints_and_exits_zero(capsys):
    # argparse's version action exits: cli.main raises SystemExit(0) instead of returning.
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"], SCRIPT)
    assert stop.value.code == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"dst3d {dst3d_addon.__version__}\n", "")
