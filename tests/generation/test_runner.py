"""The runner's per-image execution: exact batch invariance by construction, and modules left as found."""

from __future__ import annotations

import torch

from dst3d_addon.generation.worker.runner import _PerImage


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(
        self, sample: torch.Tensor, scale: float, extra: dict
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.calls.append(sample.shape[0])
        return sample * scale + extra["bias"], [sample.sum(dim=(1, 2, 3))]


class _Pipe:
    def __init__(self) -> None:
        self.unet = _Net()


def test_each_image_runs_alone_with_its_guidance_pair_and_rows_come_back_in_order():
    pipe = _Pipe()
    sample = torch.arange(6 * 2 * 2 * 2, dtype=torch.float32).reshape(6, 2, 2, 2)  # 3 images x (uncond, cond)
    bias = torch.arange(6, dtype=torch.float32).reshape(6, 1, 1, 1)
    expected = pipe.unet(sample, 2.0, {"bias": bias})
    pipe.unet.calls.clear()
    with _PerImage(pipe, images=3):
        got = pipe.unet(sample, 2.0, {"bias": bias})
    assert pipe.unet.calls == [2, 2, 2]  # rows (i, 3 + i) together, like a batch of one with guidance
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1][0], expected[1][0])
    pipe.unet(sample, 2.0, {"bias": bias})
    assert pipe.unet.calls[-1] == 6  # unwrapped again after the block


def test_an_instance_forward_is_put_back():
    """torch.compile keeps the compiled forward on the instance: it must survive the block."""
    pipe = _Pipe()
    marker = pipe.unet.forward
    pipe.unet.forward = marker  # an instance attribute, as an OptimizedModule has
    with _PerImage(pipe, images=2):
        assert pipe.unet.forward is not marker
    assert pipe.unet.forward is marker
    with _PerImage(pipe, images=1):  # a batch of one is left alone
        assert pipe.unet.forward is marker
