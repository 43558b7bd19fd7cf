"""Errors argparse finds (option types, choices, groups): exit 2 and exactly one stderr line.

Nothing here gets past parsing, so no dataset, worker or model is touched. The expected lines are
the text the batch script prints today, including its quirks (an option name printed twice by the
number, --resolution, --shard and --sampling checks).
"""

from __future__ import annotations

import pytest

import dst3d_addon
from dst3d_addon import cli
from tests.cli.cli_helpers import SCRIPT, error, invalid_choice, usage

STAGES = ("render", "generate", "run", "kcf", "filter", "report", "prompts", "export", "sheet", "eval")
#: The one option every stage but eval requires; parsing fails before anything looks at the folder.
OUT = ("--out", "o")
#: What eval requires instead: its two sources.
SOURCES = ("--train", "t", "--test", "u")
#: The other options a stage requires.
REQUIRED = {"filter": ["--keep-fraction", "0.5"], "export": ["--format", "coco", "--to", "t"]}

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
    assert lines == [usage(stage, f"{option} {value!r}: {problem}")]


@pytest.mark.parametrize("stage", ["render", "generate", "run", "kcf"])
def test_a_seed_must_be_a_whole_number_below_2_to_the_53(run_cli, stage):
    assert _one_error(run_cli, stage, "--seed", "1.5") == [
        usage(stage, "--seed '1.5': expected a whole number")
    ]
    assert _one_error(run_cli, stage, "--seed", "-1") == [usage(stage, "--seed '-1': must be in [0, 2**53)")]
    assert _one_error(run_cli, stage, "--seed", str(2**53)) == [
        usage(stage, f"--seed '{2**53}': must be in [0, 2**53)")
    ]


@pytest.mark.parametrize("value", ["1.5", "1.0001"])
def test_keep_fraction_above_one_is_refused(run_cli, value):
    lines = _one_error(run_cli, "filter", "--keep-fraction", value)
    assert lines == [usage("filter", f"--keep-fraction {value!r}: must be in (0, 1]")]


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
def test_a_negative_axis_is_a_value_not_an_option(run_cli, stage, option):
    # "-Y" (the --forward default) looks like an option to argparse; the batch script reads it as the axis.
    args = cli.build_parser().parse_args([stage, "--out", "o", option, "-X"])
    assert getattr(args, option[2:]) == "-X"
    other = "--up" if option == "--forward" else "--forward"
    values = {option: "-X", other: "X"}
    lines = run_cli(stage, "--out", "o", "--cad", "a.obj", option, "-X", other, "X")[1]
    assert lines == [
        error(f"--up {values['--up']}: parallel to --forward {values['--forward']}; ")
        + "the up axis must be perpendicular to the front"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--class-name", ""], "--class-name '': must not be empty"),
        (["--synset", " "], "--synset ' ': must not be empty"),
        (
            ["--class-name", "pickup truck"],
            "--class-name 'pickup truck': it names the dataset's folders, so use letters, digits and . _ + - "
            "(not starting with '.'); or give --synset, which then names them",
        ),
        (
            ["--synset", "../n1"],
            "--synset '../n1': it names the dataset's folders, so use letters, digits and . _ + - "
            "(not starting with '.')",
        ),
    ],
)
def test_class_and_synset_that_cannot_name_a_folder_are_refused_before_any_work(
    run_cli, tmp_path, args, message
):
    out = tmp_path / "o"
    assert run_cli("render", "--out", str(out), "--cad", "a.obj", *args) == (2, [error(message)])
    assert not out.exists()


@pytest.mark.parametrize("stage", ["generate", "run", "kcf"])
@pytest.mark.parametrize("value", ["cuda:x", "gpu", "cuda:", "CUDA", "cuda:0,1", "cpu:0"])
def test_a_bad_device_names_the_accepted_forms(run_cli, stage, value):
    lines = _one_error(run_cli, stage, "--device", value)
    assert lines == [usage(stage, f"--device {value!r}: use auto, cpu, cuda, cuda:N or mps")]


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
        ("640x480x3", "expected W or WxH, such as 512x384"),
    ],
)
def test_a_bad_resolution(run_cli, stage, value, problem):
    lines = _one_error(run_cli, stage, "--resolution", value)
    assert lines == [usage(stage, f"--resolution {value!r}: {problem}")]


@pytest.mark.parametrize("stage", ["render", "generate", "run"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("3/2", "I must be in 0..N-1 (shards are 0/2 to 1/2)"),
        ("2/2", "I must be in 0..N-1 (shards are 0/2 to 1/2)"),
        ("1/0", "N must be at least 1"),
        ("a/b", "expected I/N, such as 0/4"),
        ("1", "expected I/N, such as 0/4"),
    ],
)
def test_a_bad_shard(run_cli, stage, value, problem):
    lines = _one_error(run_cli, stage, "--shard", value)
    assert lines == [usage(stage, f"--shard {value!r}: {problem}")]


@pytest.mark.parametrize("stage", ["render", "run"])
@pytest.mark.parametrize("value", ["7", "0x3", "8x", "AxE", "random", ""])
def test_a_bad_sampling_strategy_lists_the_strategies(run_cli, stage, value):
    lines = _one_error(run_cli, stage, "--sampling", value)
    assert lines == [
        usage(
            stage,
            f"--sampling {value!r}: unknown strategy; use 1, 2, 3, 4, 5, sphere, or a grid AxE such as 8x3",
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
    assert lines == [usage(stage, f"{second}: not allowed with argument {first}")]


def test_filter_takes_keep_fraction_or_max_score_not_both(run_cli):
    lines = _one_error(run_cli, "filter", "--keep-fraction", "0.5", "--max-score", "2")
    assert lines == [usage("filter", "--max-score: not allowed with argument --keep-fraction")]


def test_filter_needs_a_rule(run_cli):
    lines = _one_error(run_cli, "filter")
    assert lines == [usage("filter", "one of the arguments --keep-fraction --max-score is required")]


# ----------------------------------------------------------------------------------------- stages


@pytest.mark.parametrize(
    "argv",
    [pytest.param([stage], id=stage) for stage in STAGES if stage not in REQUIRED and stage != "eval"]
    + [pytest.param([stage, *REQUIRED[stage]], id=f"{stage}-with-the-rest") for stage in REQUIRED],
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
    code, lines = run_cli(stage, *(SOURCES if stage == "eval" else OUT), *REQUIRED.get(stage, []), *extra)
    assert code == 2
    assert lines == [usage(stage, f"unrecognized arguments: {' '.join(extra)}")]


def test_a_generate_only_option_is_unknown_to_render(run_cli):
    code, lines = run_cli("render", "--out", "o", "--steps", "4")
    assert (code, lines) == (2, [usage("render", "unrecognized arguments: --steps 4")])


def test_options_are_never_abbreviated(run_cli):
    assert run_cli("render", "--out", "o", "--view", "3") == (
        2,
        [usage("render", "unrecognized arguments: --view 3")],
    )


def test_version_prints_and_exits_zero(capsys):
    assert cli.main(["--version"], SCRIPT) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"dst3d {dst3d_addon.__version__}\n", "")
