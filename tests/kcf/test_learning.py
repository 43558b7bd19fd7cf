"""KCF knows when it knows nothing: chance, the verdict, the filter's refusal, and the recipe chosen
by the data (no torch, no worker: every case here runs in this process in well under a second)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from dst3d_addon import cli
from dst3d_addon.core.dataset import Dataset
from dst3d_addon.kcf import recipes
from dst3d_addon.kcf.learning import chance_accuracy, judge, judge_images, margin
from dst3d_addon.kcf.run import choose_settings, plan_kcf
from dst3d_addon.kcf.settings import KcfSettings
from tests.batch_script import SCRIPT

DEG = math.pi / 180


def _ring(n: int, elevation: float = 0.5) -> np.ndarray:
    """n poses evenly around the object at one elevation."""
    return np.array([[2 * math.pi * i / n, elevation, 0.0] for i in range(n)])


# ------------------------------------------------------------------------------------------ chance


def test_chance_is_one_when_every_label_is_the_same():
    same = np.tile([[1.0, 0.3, 0.0]], (20, 1))
    assert chance_accuracy(same, same) == 1.0


def test_chance_of_views_all_around_is_the_share_one_guess_covers():
    # A guess is right within pi/6 of the label: 60 of 360 degrees of azimuth.
    labels = _ring(720)
    assert chance_accuracy(labels[1::2], labels[::2]) == pytest.approx(1 / 6, abs=0.01)


def test_chance_is_the_best_guess_for_the_training_labels_scored_on_the_held_out_ones():
    # Training labels all at the front, held-out ones all at the back: the best guess for the
    # training labels is right for none of them, although one guess would fit all held-out labels.
    front = np.tile([[0.0, 0.2, 0.0]], (10, 1))
    back = np.tile([[math.pi, 0.2, 0.0]], (10, 1))
    assert chance_accuracy(back, front) == 0.0
    assert chance_accuracy(back, back) == 1.0


def test_the_best_guess_may_lie_between_labels():
    # Two views 50 degrees apart: no label is within pi/6 of the other, a guess between them is of both.
    labels = np.array([[-25 * DEG, 0.0, 0.0], [25 * DEG, 0.0, 0.0]])
    assert chance_accuracy(labels, labels) == 1.0


def test_the_margin_is_a_floor_or_two_standard_deviations():
    assert margin(0.5, 10) == pytest.approx(2 * math.sqrt(0.25 / 10))
    assert margin(0.05, 10_000) == 0.1


# ----------------------------------------------------------------------------------------- verdict


def _folds(n: int, k: int) -> np.ndarray:
    return np.arange(n) % k


def test_an_estimator_that_predicts_the_pose_learned():
    labels = _ring(200)
    verdict = judge(_folds(200, 5), np.full(200, 0.1), labels)
    assert verdict.learned and verdict.overall.accuracy == 1.0
    assert verdict.overall.chance == pytest.approx(1 / 6, abs=0.03)
    assert sorted(verdict.folds) == [0, 1, 2, 3, 4]


def test_a_blind_estimator_did_not_learn():
    # It predicts the most common training pose whatever the image: exactly chance.
    labels = _ring(200)
    guess = np.array([0.0, 0.5, 0.0])
    from dst3d_addon.kcf.bins import pose_errors

    errors = pose_errors(np.tile(guess, (200, 1)), labels)
    verdict = judge(_folds(200, 5), errors, labels)
    assert not verdict.learned
    assert "held-out accuracy" in verdict.describe() and "chance" in verdict.describe()


def test_one_fold_no_better_than_chance_spoils_the_run():
    labels = _ring(200)
    folds = _folds(200, 5)
    errors = np.where(folds == 3, 2.5, 0.1)
    verdict = judge(folds, errors, labels)
    assert verdict.overall.beats_chance and verdict.weak_folds == [3] and not verdict.learned
    assert "fold 3 0%" in verdict.describe()


def test_images_without_errors_cannot_be_judged():
    assert judge_images([{"fold": 0, "pose": [0, 0, 0]}]) is None
    assert judge_images([{"fold": 0, "pose": [0, "x", 0], "error": 0.1}]) is None
    assert judge_images([]) is None


# ---------------------------------------------------------------------------------- filter refuses


def _hand_made(tmp_path, *, error: float | None) -> str:
    """A dataset folder with a hand-made kcf.json of 60 views around the object, 3 folds."""
    out = tmp_path / "d"
    Dataset.open(out, "kcf", {"images": "renders"}, tool_version="test")
    images = []
    for i, pose in enumerate(_ring(60)):
        entry = {
            "file": f"renders/c/m/{i:06d}.png",
            "id": f"c/m/{i:06d}",
            "k": None,
            "class": "c",
            "fold": i % 3,
            "score": float(i),
            "pose": pose.tolist(),
            "pred": [0.0, 0.0, 0.0],
        }
        if error is not None:
            entry["error"] = error
        images.append(entry)
    kcf = {"format": 1, "settings": {"images": "renders"}, "folds": [], "images": images}
    (out / "kcf.json").write_text(json.dumps(kcf))
    return str(out)


def _filter(capsys, out: str, *extra: str) -> tuple[int, list[str]]:
    code = cli.main(["filter", "--out", out, "--keep-fraction", "0.5", *extra], SCRIPT)
    return code, capsys.readouterr().err.splitlines()


def test_filter_refuses_to_cut_on_scores_of_estimators_that_did_not_learn(tmp_path, capsys):
    out = _hand_made(tmp_path, error=2.5)
    code, lines = _filter(capsys, out)
    assert code == 2 and len(lines) == 1, lines
    assert "did not learn" in lines[0] and "chance" in lines[0] and "--force" in lines[0]
    assert not (tmp_path / "d" / "keep.jsonl").exists()
    code, lines = _filter(capsys, out, "--force")
    assert code == 0 and "kept 30 of 60" in lines[-1]


def test_filter_cuts_on_scores_of_estimators_that_learned(tmp_path, capsys):
    code, lines = _filter(capsys, _hand_made(tmp_path, error=0.05))
    assert code == 0 and "kept 30 of 60" in lines[-1]


def test_filter_refuses_a_kcf_json_it_cannot_check(tmp_path, capsys):
    out = _hand_made(tmp_path, error=None)
    code, lines = _filter(capsys, out)
    assert code == 2 and len(lines) == 1 and "cannot be checked" in lines[0] and "--force" in lines[0]
    assert _filter(capsys, out, "--force")[0] == 0


# ------------------------------------------------------------------------------------------ recipe


def test_the_scratch_recipe_trains_small_data_longer():
    small, large = recipes.scratch(90), recipes.scratch(5000)
    assert small["backbone"] == large["backbone"] == "resnet-tiny"
    assert small["epochs"] > large["epochs"] >= recipes.SCRATCH_MIN_EPOCHS
    assert recipes.scratch(1)["epochs"] == recipes.SCRATCH_MAX_EPOCHS


AUTO = frozenset({*recipes.RECIPE_FIELDS, "pretrained"})


def _items(n: int) -> list:
    from dst3d_addon.kcf.items import Item

    return [Item(f"f{i}", f"c/m/{i:06d}", None, "c", "m", 0.0, 0.0, 0.0) for i in range(n)]


def test_without_weights_the_recipe_is_the_scratch_one_sized_by_the_data(monkeypatch):
    monkeypatch.setattr("dst3d_addon.kcf.run.model_unavailable", lambda name: "offline")
    settings, notes = choose_settings(KcfSettings(epochs=7), AUTO - {"epochs"}, _items(100), renders=100)
    expected = recipes.scratch(180)  # 4 of 5 folds of 100 images, plus 100 renders
    assert settings.pretrained is None and settings.epochs == 7
    assert (settings.backbone, settings.image_size, settings.lr) == (
        expected["backbone"],
        expected["image_size"],
        expected["lr"],
    )
    assert len(notes) == 1 and "no ImageNet weights" in notes[0] and "offline" in notes[0]


def test_with_weights_the_recipe_is_3d_dsts(monkeypatch):
    monkeypatch.setattr("dst3d_addon.kcf.run.model_unavailable", lambda name: None)
    settings, notes = choose_settings(KcfSettings(), AUTO, _items(100))
    assert settings.pretrained == "microsoft/resnet-50"
    assert {f: getattr(settings, f) for f in recipes.RECIPE_FIELDS} == recipes.PRETRAINED
    assert "3D-DST" in notes[0]


def test_given_settings_are_not_touched_and_nothing_is_probed(monkeypatch):
    def probe(name):
        raise AssertionError("probed")

    monkeypatch.setattr("dst3d_addon.kcf.run.model_unavailable", probe)
    settings = KcfSettings(backbone="resnet-18", pretrained="microsoft/resnet-18")
    assert choose_settings(settings, frozenset(), _items(10)) == (settings, [])


def test_train_renders_is_chosen_when_the_judged_images_are_not_the_renders(small_copy):
    auto = frozenset({"train_renders"})
    plan = plan_kcf(
        small_copy, KcfSettings(images="control", pretrained=None, backbone="resnet-tiny"), auto=auto
    )
    assert plan.settings.train_renders and len(plan.renders) == len(plan.items) == 24
    assert any("24 renders" in note for note in plan.notes)
    plan = plan_kcf(
        small_copy,
        KcfSettings(images="renders", pretrained=None, backbone="resnet-tiny"),
        auto=auto,
        allow_mixed=True,
    )
    assert not plan.settings.train_renders and plan.renders == []
    # Without renders (rendered with --no-renders) it goes on without them, and says so.
    shutil.rmtree(small_copy / "renders")
    settings = KcfSettings(images="control", pretrained=None, backbone="resnet-tiny")
    plan = plan_kcf(small_copy, settings, auto=auto, allow_mixed=True)
    assert not plan.settings.train_renders and any("without the renders" in note for note in plan.notes)
