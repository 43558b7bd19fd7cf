"""The eval stage's bad input, in-process: exit 2 (1 for a worker Python that cannot start), one
stderr line naming the option or file, and nothing written: neither source changes, no eval
folder appears. The sources here are small PASCAL3D+-layout folders written by the test; the
refusals that need a rendered dst3d dataset are in tests/eval/test_eval_stage.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from dst3d_addon.core import pascal3d as p3
from dst3d_addon.core.dataset import IMAGE_KINDS
from tests.cli.cli_helpers import error, invalid_choice, usage
from tests.eval.eval_helpers import pascal3d
from tests.export.export_helpers import digest_tree

FAST = ("--backbone", "resnet-tiny", "--image-size", "32", "--epochs", "1")


@pytest.fixture
def sources(tmp_path) -> tuple[Path, Path]:
    """Two PASCAL3D+-layout folders, `tr` and `te`, in the test's folder."""
    return pascal3d(tmp_path / "tr", split="train"), pascal3d(tmp_path / "te", names=("c", "d"))


def refused(run_cli, tmp_path: Path, *argv: str, code: int = 2) -> str:
    before = digest_tree(tmp_path)
    names = sorted(os.listdir(tmp_path))
    got, lines = run_cli("eval", *argv)
    assert got == code, lines
    assert len(lines) == 1, lines
    assert sorted(os.listdir(tmp_path)) == names, "a refused eval wrote something"
    assert digest_tree(tmp_path) == before
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--train", "tr"], usage("eval", "the following arguments are required: --test"), id="no-test"
        ),
        pytest.param(
            ["--train", "tr", "--test", "te", "--test-images", "depth"],
            usage("eval", invalid_choice("--test-images", "depth", IMAGE_KINDS)),
            id="kind",
        ),
        pytest.param(
            ["--train", "tr", "--test", "te", "--epochs", "0"],
            usage("eval", "--epochs '0': must be positive"),
            id="epochs",
        ),
        pytest.param(
            ["--train", "tr", "--test", "te", "--folds", "3"],
            usage("eval", "unrecognized arguments: --folds 3"),
            id="unknown",
        ),
        pytest.param(
            ["--train", "nowhere", "--test", "te"], error("--train nowhere: no such folder"), id="no-train"
        ),
        pytest.param(
            ["--train", "tr", "--test", "."],
            error(
                "--test .: neither a dst3d dataset (no annotations.jsonl) nor a PASCAL3D+-layout folder "
                "(no Annotations/)"
            ),
            id="not-a-source",
        ),
        pytest.param(
            ["--train", "tr", "--train-images", "renders", "--test", "te"],
            error(
                "--train-images: only a dst3d dataset has kinds of image (--train tr is a PASCAL3D+-layout folder)"
            ),
            id="images-of-pascal3d",
        ),
        pytest.param(
            ["--train", "tr", "--test", "te", "--test-split", "a/b"],
            error("--test-split 'a/b': not a split name (letters, digits and . _ + -)"),
            id="split-unsafe",
        ),
        pytest.param(
            ["--train", "tr", "--test", "te", "--lr", "-1"],
            usage("eval", "--lr '-1': must be positive"),
            id="lr",
        ),
    ],
)
def test_option_errors_name_the_option(run_cli, tmp_path, sources, args, message):
    assert refused(run_cli, tmp_path, *args, *FAST) == message


def test_a_split_without_its_list_is_refused(run_cli, tmp_path, sources):
    line = refused(run_cli, tmp_path, "--train", "tr", "--test", "te", "--test-split", "test", *FAST)
    assert line == error(
        f"--test-split test: {tmp_path / 'te' / 'Image_sets'} has no list of it (<class>_<source>_test.txt)"
    )


def test_classes_that_a_source_lacks_are_refused(run_cli, tmp_path, sources):
    line = refused(run_cli, tmp_path, "--train", "tr", "--test", "te", "--test-classes", "bus", *FAST)
    assert line == error(f"--test-classes bus: no object of {tmp_path / 'te'} has these classes (it has car)")


def test_a_broken_mat_is_one_line_naming_it(run_cli, tmp_path, sources):
    broken = tmp_path / "te" / p3.ANNOTATIONS / "car_imagenet" / "d.mat"
    broken.write_bytes(broken.read_bytes()[:100])
    line = refused(run_cli, tmp_path, "--train", "tr", "--test", "te", *FAST)
    assert line.startswith(error(f"{broken}: not a readable .mat file ("))


def test_a_missing_image_is_one_line_naming_it(run_cli, tmp_path, sources):
    (tmp_path / "tr" / p3.IMAGES / "car_imagenet" / "b.png").unlink()
    line = refused(run_cli, tmp_path, "--train", "tr", "--test", "te", *FAST)
    assert line == error(
        f"{tmp_path / 'tr' / 'Images' / 'car_imagenet' / 'b.png'}: image not found (1 images of {tmp_path / 'tr'} are missing)"
    )


def test_the_same_images_on_both_sides_are_refused(run_cli, tmp_path, sources):
    line = refused(run_cli, tmp_path, "--train", "te", "--test", "te", *FAST)
    assert line == error(
        f"--test {tmp_path / 'te'}: 2 of its images are also in --train; test on other images (another split or dataset)"
    )


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("te/eval", "--to te/eval: inside the dataset {te}; choose a folder outside it"),
        (".", "--to .: holds the dataset {tr}; choose a folder outside it"),
        ("file", "--to file: is a file, not a folder"),
        ("other", "--to other: not empty and not a dst3d eval; choose a new or empty folder"),
    ],
)
def test_a_bad_eval_folder_is_refused(run_cli, tmp_path, sources, to, message):
    (tmp_path / "file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("x")
    line = refused(run_cli, tmp_path, "--train", "tr", "--test", "te", "--to", to, *FAST)
    assert line == error(message.format(te=tmp_path / "te", tr=tmp_path / "tr"))


def test_init_weights_that_cannot_fit_are_refused(run_cli, tmp_path, sources):
    (tmp_path / "w").mkdir()
    save_file({"other": np.zeros(3, np.float32)}, str(tmp_path / "w" / "nohead.safetensors"))
    save_file(
        {"head.weight": np.zeros((123, 2048), np.float32)},
        str(tmp_path / "w" / "r50.safetensors"),
        metadata={"backbone": "resnet-50"},
    )
    (tmp_path / "w" / "text.safetensors").write_text("not weights")
    cases = {
        "w/missing.safetensors": "--init w/missing.safetensors: not found",
        "w/text.safetensors": "--init w/text.safetensors: not a safetensors file (its header length is past "
        "the end of the file)",
        "w/nohead.safetensors": "--init w/nohead.safetensors: not a pose estimator's weights (no head.weight); "
        "give the model.safetensors of an eval, or a KCF fold's weights (kcf --save-weights)",
        "w/r50.safetensors": "--init w/r50.safetensors: weights of --backbone resnet-50, not resnet-tiny",
    }
    for init, message in cases.items():
        line = refused(run_cli, tmp_path, "--train", "tr", "--test", "te", "--init", init, *FAST)
        assert line == error(message), init
    # 123 = 3 x 41 bins, but resnet-tiny's features are 128 wide.
    save_file({"head.weight": np.zeros((3 * 41, 64), np.float32)}, str(tmp_path / "w" / "narrow.safetensors"))
    line = refused(
        run_cli, tmp_path, "--train", "tr", "--test", "te", "--init", "w/narrow.safetensors", *FAST
    )
    assert line == error(
        "--init w/narrow.safetensors: its head is [123, 64], but --backbone resnet-tiny with 41 bins needs "
        "[123, 128]; pick the matching --backbone"
    )


def test_a_worker_python_that_does_not_exist_is_refused(run_cli, tmp_path, sources):
    line = refused(run_cli, tmp_path, "--train", "tr", "--test", "te", "--python", "/no/python", *FAST)
    assert line == error("--python /no/python: no such interpreter")
