"""Images per second of KCF's pose estimator: training and scoring, on CPU and on CUDA when available.

Run from the repository root:  python -m tools.bench_kcf [--backbone resnet-50] [--image-size 256]
    [--batch-size 32] [--batches 5] [--devices cpu cuda]

Synthetic images (random pixels and labels) go through the same Trainer the kcf stage uses: one
SGD step per batch (forward, backward, update) and eval-mode scoring; on CUDA with mixed precision
(bfloat16 where supported, else float16) and channels-last. The first batch of each is a warm-up
and is not timed.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from transformers import ResNetConfig, ResNetModel

from dst3d_addon.kcf.estimator import Trainer
from dst3d_addon.kcf.settings import BACKBONES, KcfSettings


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(device: torch.device, args: argparse.Namespace) -> dict:
    """{'train': images/s, 'score': images/s, 'amp': dtype or None} for one device."""
    settings = KcfSettings(
        backbone=args.backbone, pretrained=None, image_size=args.image_size, batch_size=args.batch_size
    )
    torch.manual_seed(0)
    trainer = Trainer(settings, device, amp=not args.no_amp)
    net = trainer.build(ResNetModel(ResNetConfig(**BACKBONES[args.backbone].config_kwargs())))
    opt, _ = trainer.optimizer(net)
    scaler = torch.amp.GradScaler("cuda", enabled=trainer.amp_dtype == torch.float16)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size, args.image_size, args.image_size, 3), dtype=np.uint8)
    targets = torch.from_numpy(rng.integers(0, 41, (args.batch_size, 3))).to(device)
    result = {"amp": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else None}
    net.train()
    for i in range(args.batches + 1):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        trainer.train_step(net, opt, scaler, trainer.pixels(images, rng), targets)
    _sync(device)
    result["train"] = args.batches * args.batch_size / (time.perf_counter() - start)
    net.eval()
    for i in range(args.batches + 1):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        trainer.score(net, trainer.pixels(images), targets)
    _sync(device)
    result["score"] = args.batches * args.batch_size / (time.perf_counter() - start)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=list(BACKBONES), default="resnet-50")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=5, help="timed batches (after one warm-up)")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="cuda is skipped when absent")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-amp", action="store_true", help="full precision on CUDA too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"KCF estimator {args.backbone}, {args.image_size}x{args.image_size}, batch {args.batch_size}, "
        f"{args.batches} timed batches; torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{os.cpu_count()} CPUs"
    )
    for name in args.devices:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            print(f"{name}: no CUDA device available, skipped")
            continue
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        r = bench(device, args)
        amp = f", mixed precision {r['amp']}" if r["amp"] else ", float32"
        print(f"{name} ({label}{amp}): train {r['train']:.1f} images/s, score {r['score']:.1f} images/s")


if __name__ == "__main__":
    main()
