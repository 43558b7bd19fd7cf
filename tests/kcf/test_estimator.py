"""The worker-side estimator (torch): initialisation, pretrained fallbacks, eval-mode scoring."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from transformers import ResNetConfig, ResNetModel

from dst3d_addon.cli.options import cli_text
from dst3d_addon.kcf.estimator import PretrainedError, Trainer, build_backbone, dress_renders
from dst3d_addon.kcf.settings import BACKBONES, KcfSettings

torch.set_num_threads(1)


def test_a_hub_id_offline_falls_back_to_random_quickly_with_one_warning(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    start = time.monotonic()
    model, init, warning = build_backbone("resnet-18", "no-such-org/resnet-18-nowhere")
    assert time.monotonic() - start < 20
    assert init == "random" and isinstance(model, ResNetModel)
    assert warning is not None and "\n" not in warning and "--pretrained no-such-org" in cli_text(warning)
    assert model.config.depths == [2, 2, 2, 2] and model.config.layer_type == "basic"


def test_a_bad_local_path_is_an_error(tmp_path):
    with pytest.raises(PretrainedError, match="no such file"):
        build_backbone("resnet-tiny", str(tmp_path / "missing"))
    (tmp_path / "junk").mkdir()
    with pytest.raises(PretrainedError, match="cannot load"):
        build_backbone("resnet-tiny", str(tmp_path / "junk"))


def test_a_local_folder_loads_and_must_match_the_backbone(tmp_path):
    torch.manual_seed(0)
    saved = ResNetModel(ResNetConfig(**BACKBONES["resnet-tiny"].config_kwargs()))
    saved.save_pretrained(tmp_path / "tiny")
    model, init, warning = build_backbone("resnet-tiny", str(tmp_path / "tiny"))
    assert init.startswith("pretrained:") and warning is None
    assert torch.equal(model.embedder.embedder.convolution.weight, saved.embedder.embedder.convolution.weight)
    with pytest.raises(PretrainedError, match="is not backbone resnet-18; pick the matching backbone"):
        build_backbone("resnet-18", str(tmp_path / "tiny"))


def test_scores_are_eval_mode_losses_independent_of_the_batch():
    settings = KcfSettings(backbone="resnet-tiny", pretrained=None, image_size=32, batch_size=4)
    trainer = Trainer(settings, torch.device("cpu"))
    torch.manual_seed(1)
    net = trainer.build(ResNetModel(ResNetConfig(**BACKBONES["resnet-tiny"].config_kwargs())))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    targets = torch.from_numpy(rng.integers(0, 41, (6, 3)))
    opt, _ = trainer.optimizer(net)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    net.train()
    trainer.train_step(net, opt, scaler, trainer.pixels(images, rng), targets)
    net.eval()
    together, bins = trainer.score(net, trainer.pixels(images), targets)
    alone, _ = trainer.score(net, trainer.pixels(images[:1]), targets[:1])
    # In train mode (3D-DST's scoring) batch norm would mix the batch into each image's score.
    assert alone[0] == pytest.approx(together[0], rel=1e-4)
    assert together.shape == (6,) and bins.shape == (6, 3) and np.all(together >= -1e-5)


def test_a_step_leaves_out_skippable_images_above_the_threshold_and_renders_are_dressed():
    settings = KcfSettings(
        backbone="resnet-tiny",
        pretrained=None,
        image_size=32,
        batch_size=4,
        optimizer="sgd",
        weight_decay=0.0,
    )
    trainer = Trainer(settings, torch.device("cpu"))
    torch.manual_seed(1)
    net = trainer.build(ResNetModel(ResNetConfig(**BACKBONES["resnet-tiny"].config_kwargs())))
    rng = np.random.default_rng(0)
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    images[:, 8:24, 8:24] = 128  # grey objects on black, as renders are
    targets = torch.from_numpy(rng.integers(0, 41, (4, 3)))
    opt, _ = trainer.optimizer(net)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    before = [p.detach().clone() for p in net.parameters()]
    net.train()
    all_skippable = torch.ones(4, dtype=torch.bool)
    _, each = trainer.train_step(net, opt, scaler, trainer.pixels(images), targets, all_skippable, -1.0)
    assert each.shape == (4,) and all(
        torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True)
    )
    trainer.train_step(net, opt, scaler, trainer.pixels(images), targets, all_skippable, float("inf"))
    assert not all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    # A render's black background gets a smooth colour field with noise; its object a flat tint.
    dressed = dress_renders(torch.from_numpy(images).permute(0, 3, 1, 2).float(), np.random.default_rng(3))
    assert dressed[:, :, :8, :8].std() > 5
    assert float(dressed[:, :, 8:24, 8:24].std(dim=(2, 3)).max()) < 1e-3
    # Images that are not renders are not dressed: the same as without the marks.
    plain = trainer.pixels(images, np.random.default_rng(4))
    assert torch.equal(plain, trainer.pixels(images, np.random.default_rng(4), np.zeros(4, dtype=bool)))
