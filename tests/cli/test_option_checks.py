"""Errors found after parsing but before any work: exit 2, one stderr line, nothing written.

Each case is refused before a dataset is opened or a worker (Blender, the generation or the kcf
worker) is started. The paths are relative to the test's empty folder; the ones the cases need
to be missing are, so a check that stopped refusing would fail on the next check (no annotations,
no dataset) rather than start work.

Not here: a --cad file that does not exist. The render stage opens the dataset (writes
dataset.json) before it checks the files and reports a missing one as a failed model, exit 1, after
its summary lines; and the `run` stage checks its generation options (--captions, --pipeline, ...)
only after rendering.
"""

from __future__ import annotations

import os

import pytest

from tests.cli.cli_helpers import error


def _refused(run_cli, tmp_path, *argv: str) -> list[str]:
    code, lines = run_cli(*argv)
    assert code == 2
    assert sorted(os.listdir(tmp_path)) == [], "a refused command wrote something"
    return lines


# ----------------------------------------------------------------------------------------- models

NO_MODELS = "no models: give --cad PATH or --cad-csv CSV --cad-root DIR"
CATALOGUE_ONLY = "--cad-root and --synsets go with --cad-csv"


@pytest.mark.parametrize("stage", ["render", "run"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], NO_MODELS, id="no-models"),
        pytest.param(
            ["--class-name", "car", "--synset", "n02958343"], NO_MODELS, id="no-models-with-a-class"
        ),
        pytest.param(["--cad-root", "models"], CATALOGUE_ONLY, id="cad-root-without-cad-csv"),
        pytest.param(
            ["--cad", "a.glb", "--synsets", "n02690373"], CATALOGUE_ONLY, id="synsets-without-cad-csv"
        ),
        pytest.param(
            ["--cad-csv", "models.csv"],
            "--cad-csv needs --cad-root DIR (where its models are)",
            id="no-cad-root",
        ),
        pytest.param(
            ["--cad-csv", "models.csv", "--cad-root", "models"],
            "model catalogue not found: models.csv",
            id="missing-catalogue",
        ),
        pytest.param(
            ["--cad", "a/x.glb", "--cad", "b/x.glb"],
            "--cad: a/x.glb and b/x.glb both get the model id 'x' in class 'object'; rename one of the files",
            id="same-model-id",
        ),
        pytest.param(
            ["--random-distance", "0.4"], "--random-distance 0.4: the mean must exceed 0.5", id="near-mean"
        ),
    ],
)
def test_render_refuses_before_opening_the_dataset(run_cli, tmp_path, stage, args, message):
    assert _refused(run_cli, tmp_path, stage, "--out", "out", *args) == [error(message)]


# ----------------------------------------------------------------------------------------- generate

NOT_A_PRESET = (
    "--controlnet: required with --pipeline 'org/model', which is not a preset "
    "(sd15-canny, sdxl-canny, tiny); name the ControlNet (hub id, folder or .safetensors)"
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--captions", "captions.csv"], "--captions captions.csv: no such file", id="captions"),
        pytest.param(
            ["--pipeline", "./model"], "--pipeline ./model: no such file or folder", id="pipeline-dir"
        ),
        pytest.param(
            ["--pipeline", "model.safetensors"],
            "--pipeline model.safetensors: no such file or folder",
            id="pipeline-file",
        ),
        pytest.param(
            ["--pipeline", "/no/such/model"],
            "--pipeline /no/such/model: no such file or folder",
            id="pipeline-abs",
        ),
        pytest.param(
            ["--pipeline", "C:\\models\\sd"],
            "--pipeline C:\\models\\sd: no such file or folder",
            id="pipeline-drive",
        ),
        pytest.param(
            ["--controlnet", "/no/such/controlnet"],
            "--controlnet /no/such/controlnet: no such file or folder",
            id="controlnet",
        ),
        pytest.param(["--pipeline", "org/model"], NOT_A_PRESET, id="hub-pipeline-without-controlnet"),
        pytest.param(["--steps", "1001"], "--steps 1001: must be at most 1000", id="steps"),
        pytest.param(["--eta", "1.5"], "--eta 1.5: must be between 0 and 1", id="eta"),
        pytest.param(["--guidance", "-1"], "--guidance -1.0: must be a finite number >= 0", id="guidance"),
        pytest.param(
            ["--control-scale", "-2"], "--control-scale -2.0: must be a finite number >= 0", id="scale"
        ),
        pytest.param(
            ["--width", "100"],
            "--width 100: must be a positive multiple of 8 (or unset for the control image's size)",
            id="width",
        ),
        pytest.param(["--height", "8200"], "--height 8200: must be at most 8192", id="height"),
        pytest.param(
            ["--lora", "latent-consistency/lcm-lora-sdxl"],
            "--lora 'latent-consistency/lcm-lora-sdxl': is for sdxl but --pipeline sd15-canny is sd15; use --lora lcm",
            id="lora-family",
        ),
        pytest.param(
            ["--prompt", "a {klass}"],
            # The doubled braces are printed as they are written in the code (see the report).
            "--prompt 'a {klass}': unknown placeholder {klass}; use {class} or {synset} "
            "({{ and }} for literal braces)",
            id="prompt-placeholder",
        ),
        pytest.param(
            ["--negative-prompt", "{"],
            "--negative-prompt '{': unmatched '{' at character 1; write {{ for a literal brace",
            id="negative-prompt-brace",
        ),
        pytest.param(
            [], "--out out: no annotations.jsonl there; run the render stage first", id="no-dataset"
        ),
    ],
)
def test_generate_refuses_before_starting_its_worker(run_cli, tmp_path, args, message):
    assert _refused(run_cli, tmp_path, "generate", "--out", "out", *args) == [error(message)]


# ----------------------------------------------------------------------------------------- kcf, filter, report


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--folds", "1"], "--folds 1: needs at least 2 folds", id="folds"),
        pytest.param(["--image-size", "16"], "--image-size 16: at least 32 pixels", id="image-size"),
        pytest.param(["--momentum", "-1"], "--momentum -1.0: must not be negative", id="momentum"),
        pytest.param(
            ["--weight-decay", "-1"], "--weight-decay -1.0: must not be negative", id="weight-decay"
        ),
        pytest.param(["--label-sigma", "-1"], "--label-sigma -1.0: must not be negative", id="label-sigma"),
        pytest.param(["--skip-worst", "1"], "--skip-worst 1.0: must be in [0, 1)", id="skip-worst"),
        pytest.param(
            ["--images", "renders", "--train-renders"],
            "--train-renders: the judged images are the renders themselves; train on renders only when "
            "judging --images generated or control",
            id="train-renders",
        ),
        pytest.param(
            ["--pretrained", "./weights"], "--pretrained ./weights: no such file or folder", id="pretrained"
        ),
        pytest.param(
            ["--python", "/no/such/python"], "--python /no/such/python: no such interpreter", id="python"
        ),
        pytest.param(
            ["--python", "no-such-python"], "--python no-such-python: no such interpreter", id="python-name"
        ),
        pytest.param([], "--out out: no such dataset folder", id="no-dataset"),
    ],
)
def test_kcf_refuses_before_starting_its_worker(run_cli, tmp_path, args, message):
    assert _refused(run_cli, tmp_path, "kcf", "--out", "out", *args) == [error(message)]


@pytest.mark.parametrize(
    "argv",
    [["filter", "--keep-fraction", "0.5"], ["filter", "--max-score", "1"], ["report"]],
    ids=["filter-fraction", "filter-score", "report"],
)
def test_filter_and_report_need_a_dataset(run_cli, tmp_path, argv):
    assert _refused(run_cli, tmp_path, *argv[:1], "--out", "out", *argv[1:]) == [
        error("--out out: no such dataset folder")
    ]


@pytest.mark.parametrize("argv", [["filter", "--keep-fraction", "0.5"], ["report"]], ids=["filter", "report"])
def test_filter_and_report_need_kcf_results(run_cli, tmp_path, argv):
    (tmp_path / "out").mkdir()
    code, lines = run_cli(*argv[:1], "--out", "out", *argv[1:])
    assert code == 2
    assert lines == [error(f"{os.path.join('out', 'kcf.json')}: not found; run the kcf stage first")]
    assert os.listdir(tmp_path / "out") == []
