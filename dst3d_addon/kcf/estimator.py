"""3D-DST's pose estimator for KCF: a ResNet with three 41-way heads (azimuth, elevation, theta).

Imports torch and transformers: only the KCF worker process (and the benchmark) imports this.
The ResNet is transformers' (`ResNetModel`), so the same code runs with the CPU or CUDA torch
wheels; ImageNet weights come from the Hugging Face hub (microsoft/resnet-*) or a local folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.functional import log_softmax
from transformers import ResNetConfig, ResNetModel

from ..core.errors import Dst3dError, setting
from ..generation.errors import BadInput
from ..generation.hub import hub_unavailable
from .bins import soft_targets
from .images import MEAN, STD, load_image
from .settings import BACKBONES, KcfSettings

PRETRAINED = setting("pretrained")
BACKBONE = setting("backbone")
#: Decoded images are kept in memory up to this many bytes; beyond it they are decoded per batch.
CACHE_BYTES = 4 << 30


class PretrainedError(Dst3dError):
    """--pretrained names a local file or folder that cannot be loaded as the backbone."""


class PoseNet(nn.Module):
    """ResNet features, global average pooling, one linear layer giving (B, 3, num_bins) logits."""

    def __init__(self, backbone: ResNetModel, num_bins: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_bins = num_bins
        self.head = nn.Linear(backbone.config.hidden_sizes[-1], 3 * num_bins)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.backbone(pixel_values=pixels).pooler_output.flatten(1)
        return self.head(features).view(-1, 3, self.num_bins)


def _looks_like_path(text: str) -> bool:
    """A local path (not a hub id such as microsoft/resnet-50, which has at most one slash)."""
    return (
        text.startswith(("/", "./", "../", "~", "."))
        or "\\" in text
        or text.count("/") > 1
        or Path(text).expanduser().exists()
    )


def _hub_may_have(repo_id: str) -> bool:
    """Whether fetching `repo_id` is worth trying: the hub may be used, answers, and knows it."""
    try:
        return hub_unavailable(repo_id) is None
    except BadInput:  # no such model on the hub
        return False


def _check_shape(model: ResNetModel, name: str, source: str) -> None:
    want = BACKBONES[name]
    cfg = model.config
    got = (cfg.layer_type, tuple(cfg.depths), tuple(cfg.hidden_sizes))
    if got != (want.layer_type, want.depths, want.hidden_sizes):
        raise PretrainedError(
            f"{PRETRAINED} {source}: its ResNet ({cfg.layer_type}, depths {list(cfg.depths)}) is not "
            f"{BACKBONE} {name}; pick the matching {BACKBONE}"
        )


def build_backbone(name: str, pretrained: str | None) -> tuple[ResNetModel, str, str | None]:
    """(backbone, how it was initialised, a warning or None).

    A local --pretrained path that cannot be loaded raises PretrainedError; a hub id that cannot
    be fetched (offline, unknown) falls back to random initialisation with a one-line warning,
    after at most a few seconds (the hub is probed before transformers' own retries start).
    """
    spec = BACKBONES[name]
    if pretrained:
        if _looks_like_path(pretrained):
            path = Path(pretrained).expanduser()
            if not path.exists():
                raise PretrainedError(f"{PRETRAINED} {pretrained}: no such file or folder")
            try:
                model = ResNetModel.from_pretrained(str(path))
            except Exception as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise PretrainedError(
                    f"{PRETRAINED} {pretrained}: cannot load a ResNet from it ({first})"
                ) from None
            _check_shape(model, name, pretrained)
            return model, f"pretrained:{pretrained}", None
        model = None
        try:
            model = ResNetModel.from_pretrained(pretrained, local_files_only=True)
        except Exception:
            if _hub_may_have(pretrained):
                try:
                    model = ResNetModel.from_pretrained(pretrained)
                except Exception:
                    model = None
        if model is not None:
            _check_shape(model, name, pretrained)
            return model, f"pretrained:{pretrained}", None
        warning = (
            f"{PRETRAINED} {pretrained}: not in the local cache and the hub cannot be reached; "
            f"training from random initialisation (pass a local folder, or {PRETRAINED} none to silence this)"
        )
    else:
        warning = None
    return ResNetModel(ResNetConfig(**spec.config_kwargs())), "random", warning


class ImageBank:
    """The run's images, decoded once (in threads) and cached while they fit in CACHE_BYTES.

    With `boxes` (one [u0, v0, u1, v1] per file, or None), each image is the square crop around its
    box (`images.load_image`), as the eval stage takes objects out of PASCAL3D+'s photographs.
    """

    def __init__(
        self,
        root: Path,
        files: list[str],
        size: int,
        threads: int = 4,
        boxes: list[tuple[float, float, float, float] | None] | None = None,
    ) -> None:
        self.root = root
        self.files = files
        self.boxes = boxes
        self.size = size
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads))
        self.cache: np.ndarray | None = None
        if len(files) * size * size * 3 <= CACHE_BYTES:
            self.cache = self._decode(range(len(files)))

    def _decode(self, indices) -> np.ndarray:
        idx = list(indices)
        out = np.empty((len(idx), self.size, self.size, 3), dtype=np.uint8)

        def one(j: int) -> None:
            box = self.boxes[idx[j]] if self.boxes is not None else None
            out[j] = load_image(self.root / self.files[idx[j]], self.size, box)

        list(self.pool.map(one, range(len(idx))))
        return out

    def get(self, indices: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 RGB images."""
        if self.cache is not None:
            return self.cache[indices]
        return self._decode(indices)


def dress_renders(t: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Renders (float (B, 3, S, S), grey object on black) dressed as photographs for training: the
    black background replaced by a random smooth colour field with noise, the object tinted per
    channel. A render and a generated image of the same view then differ in what does not carry the
    pose, so an estimator trained on both learns the shape, not which kind of image it sees."""
    b, _, size, _ = t.shape
    mask = (t.amax(dim=1, keepdim=True) > 4.0).float()
    coarse = torch.from_numpy(rng.uniform(0.0, 255.0, (b, 3, 4, 4))).to(t)
    background = torch.nn.functional.interpolate(
        coarse, size=(size, size), mode="bicubic", align_corners=False
    )
    noise = torch.from_numpy(rng.normal(0.0, 1.0, (b, 1, size, size))).to(t)
    background = background + noise * torch.from_numpy(rng.uniform(0.0, 20.0, (b, 1, 1, 1))).to(t)
    tint = torch.from_numpy(rng.uniform(0.5, 1.3, (b, 3, 1, 1))).to(t)
    offset = torch.from_numpy(rng.uniform(-30.0, 30.0, (b, 3, 1, 1))).to(t)
    return (mask * (t * tint + offset) + (1.0 - mask) * background).clamp_(0.0, 255.0)


@dataclass
class FoldRun:
    """What training and scoring one fold gives."""

    scores: np.ndarray
    pred_bins: np.ndarray
    train_loss: list[float] = field(default_factory=list)
    timing: dict = field(default_factory=dict)


class Trainer:
    """Trains and scores the pose estimator on one device, with mixed precision on CUDA."""

    def __init__(self, settings: KcfSettings, device: torch.device, amp: bool = True) -> None:
        self.settings = settings
        self.device = device
        self.cuda = device.type == "cuda"
        self.amp_dtype = None
        if amp and self.cuda:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        soft = soft_targets(settings.num_bins, settings.label_sigma)
        self.soft = torch.from_numpy(soft).float().to(device)
        # Cross entropy minus the targets' own entropy (the same for every bin): the KL divergence,
        # 0 for a perfect prediction whatever the label spread.
        self.target_entropy = float(-(soft[0][soft[0] > 0] * np.log(soft[0][soft[0] > 0])).sum())
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255.0

    @classmethod
    def for_job(cls, training: dict, job: dict) -> Trainer:
        """The trainer a worker's job asks for (KCF's and eval's alike): the training settings,
        torch's threads (`job["threads"]`), the device (`job["device"]`, auto by default) and
        mixed precision (`job["amp"]`)."""
        import transformers

        from ..generation.worker.devices import resolve_device

        transformers.logging.set_verbosity_error()
        settings = KcfSettings(**{**training, "classes": tuple(training.get("classes", ()))})
        if job.get("threads"):
            torch.set_num_threads(int(job["threads"]))
        return cls(settings, resolve_device(job.get("device", "auto")), amp=bool(job.get("amp", True)))

    def build(self, pretrained_model: ResNetModel) -> PoseNet:
        """The network on this device (channels-last on CUDA, which its convolutions prefer)."""
        net = PoseNet(pretrained_model, self.settings.num_bins).to(self.device)
        if self.cuda:
            net = net.to(memory_format=torch.channels_last)
        return net

    def pixels(
        self, batch: np.ndarray, rng: np.random.Generator | None = None, renders: np.ndarray | None = None
    ) -> torch.Tensor:
        """uint8 (B, S, S, 3) to normalised float (B, 3, S, S) on the device.

        With `rng` (training), each image is shifted by up to 1/8 of its size (black fill) and its
        brightness scaled by 0.8-1.2: a network that cannot memorise pixels learns what most labels
        say, which is what the held-out loss must measure. The images that `renders` (B booleans)
        marks are shaded renders on black: they are first dressed as photographs (`dress_renders`).
        """
        t = torch.from_numpy(batch).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        if rng is not None and renders is not None and renders.any():
            idx = torch.from_numpy(np.flatnonzero(renders)).to(self.device)
            t[idx] = dress_renders(t[idx], rng)
        if rng is not None:
            size = t.shape[-1]
            pad = max(1, size // 8)
            padded = torch.nn.functional.pad(t, (pad, pad, pad, pad))
            shifts = rng.integers(0, 2 * pad + 1, size=(len(t), 2))
            gains = torch.from_numpy(rng.uniform(0.8, 1.2, size=len(t))).to(t).view(-1, 1, 1, 1)
            t = torch.stack([padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(shifts)])
            t = (t * gains).clamp_(0.0, 255.0)
        t = (t - self.mean) / self.std
        return t.contiguous(memory_format=torch.channels_last) if self.cuda else t

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def optimizer(self, net: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        s = self.settings
        if s.optimizer == "sgd":
            opt = torch.optim.SGD(net.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        else:
            opt = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        # One step down by 10x after two thirds of the epochs (3D-DST: StepLR, gamma 0.1).
        milestones = [max(1, (2 * s.epochs) // 3)] if s.epochs >= 3 else []
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)

    def train_step(
        self,
        net: nn.Module,
        opt: torch.optim.Optimizer,
        scaler,
        pixels: torch.Tensor,
        targets: torch.Tensor,
        skippable: torch.Tensor | None = None,
        skip_above: float = float("inf"),
    ) -> tuple[float, np.ndarray]:
        """One SGD step on a batch; returns the batch's loss (mean over images of the three heads' mean)
        and each image's loss. Images that `skippable` marks and whose loss is above `skip_above` do
        not count in the step."""
        with self._autocast():
            logits = net(pixels)
        each = self.head_losses(logits, targets).mean(dim=1)
        weights = torch.ones_like(each)
        if skippable is not None:
            weights = (~(skippable & (each.detach() > skip_above))).float()
        loss = (each * weights).sum() / weights.sum().clamp(min=1.0)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return float(each.detach().mean()), each.detach().float().cpu().numpy()

    @torch.no_grad()
    def score(
        self, net: nn.Module, pixels: torch.Tensor, targets: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """(per-image loss: the sum of the three heads' cross entropies, predicted bins), in eval mode."""
        with self._autocast():
            logits = net(pixels)
        logits = logits.float()
        ce = self.head_losses(logits, targets)
        return ce.sum(dim=1).cpu().numpy(), logits.argmax(dim=2).cpu().numpy()

    def head_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, 3) losses of the three heads: KL divergence from their (soft) target bins to the prediction."""
        logp = log_softmax(logits.float(), dim=2)
        return -(self.soft[targets] * logp).sum(dim=2) - self.target_entropy

    def scaler(self) -> torch.amp.GradScaler:
        """The loss scaler: active only for float16 mixed precision (bfloat16 and float32 need none)."""
        return torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def train_epoch(
        self,
        net: nn.Module,
        opt: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        bank: ImageBank,
        targets: torch.Tensor,
        train_idx: np.ndarray,
        rng: np.random.Generator,
        on_batch: Callable[[int], None] = lambda n: None,
        renders: np.ndarray | None = None,
        skip_above: float = float("inf"),
    ) -> tuple[float, int, float, list[float]]:
        """One pass over `train_idx` in an order drawn from `rng` (which also draws the augmentation);
        returns (mean loss, images trained, seconds, the judged images' losses). `targets` holds every
        image's bins (CPU); `renders` marks (per bank index) the shaded renders, which are never
        skipped; judged images whose loss is above `skip_above` do not count in their step."""
        s = self.settings
        net.train()
        order = rng.permutation(train_idx)
        batches = [order[i : i + s.batch_size] for i in range(0, len(order), s.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < 2:  # batch norm needs two images
            batches[-2] = np.concatenate([batches[-2], batches.pop()])
        start = time.perf_counter()
        total, count = 0.0, 0
        judged_losses: list[float] = []
        for b in batches:
            pixels = self.pixels(
                bank.get(b), rng if s.augment else None, None if renders is None else renders[b]
            )
            judged = np.ones(len(b), dtype=bool) if renders is None else ~renders[b]
            loss, each = self.train_step(
                net, opt, scaler, pixels, targets[b].to(self.device), torch.from_numpy(judged).to(self.device),
                skip_above,
            )  # fmt: skip
            judged_losses.extend(each[judged].tolist())
            total += loss * len(b)
            count += len(b)
            on_batch(len(b))
        if self.cuda:
            torch.cuda.synchronize()
        return total / max(1, count), count, time.perf_counter() - start, judged_losses

    def predict(
        self,
        net: nn.Module,
        bank: ImageBank,
        targets: torch.Tensor,
        idx: np.ndarray,
        on_batch: Callable[[int], None] = lambda n: None,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Score and classify `idx` in eval mode: (per-image loss, predicted bins (N, 3), seconds)."""
        net.eval()
        start = time.perf_counter()
        scores, bins = [], []
        for i in range(0, len(idx), self.settings.batch_size):
            b = idx[i : i + self.settings.batch_size]
            sc, pb = self.score(net, self.pixels(bank.get(b)), targets[b].to(self.device))
            scores.append(sc)
            bins.append(pb)
            on_batch(len(b))
        return (
            np.concatenate(scores) if scores else np.zeros(0),
            np.concatenate(bins) if bins else np.zeros((0, 3), dtype=np.int64),
            time.perf_counter() - start,
        )

    def run_fold(
        self,
        net: PoseNet,
        bank: ImageBank,
        targets: np.ndarray,
        train_idx: np.ndarray,
        test_idx: np.ndarray,
        seed: int,
        on_batch: Callable[[int], None] = lambda n: None,
        on_epoch: Callable[[int, float, float], None] = lambda e, loss, rate: None,
        renders: np.ndarray | None = None,
    ) -> FoldRun:
        """Train a fresh `net` on train_idx, then score test_idx with it in eval mode.

        `renders` marks (per bank index) the shaded renders among the training images (see `pixels`).
        """
        s = self.settings
        opt, sched = self.optimizer(net)
        scaler = self.scaler()
        order_gen = np.random.Generator(np.random.PCG64(seed))
        all_targets = torch.from_numpy(targets.astype(np.int64))
        losses: list[float] = []
        train_seconds = 0.0
        trained = 0
        # The small-loss trick (co-teaching): from a third of the epochs on, each step leaves out the
        # judged images whose loss is above the `skip_worst` quantile of the judged images' losses in
        # the epoch before. Those are most likely the wrong ones, which a network learns last and
        # would otherwise memorise; the renders, whose labels are exact, are never left out.
        judged_losses: list[float] = []
        threshold = float("inf")
        for epoch in range(s.epochs):
            if s.skip_worst > 0 and epoch >= s.epochs // 3 and judged_losses:
                threshold = float(np.quantile(judged_losses, 1.0 - s.skip_worst))
            loss, count, seconds, judged_losses = self.train_epoch(
                net, opt, scaler, bank, all_targets, train_idx, order_gen, on_batch, renders, threshold
            )
            train_seconds += seconds
            trained += count
            sched.step()
            losses.append(loss)
            on_epoch(epoch, loss, count / seconds if seconds > 0 else 0.0)
        scores, bins, score_seconds = self.predict(net, bank, all_targets, test_idx, on_batch)
        return FoldRun(
            scores=scores,
            pred_bins=bins,
            train_loss=losses,
            timing={
                "train_seconds": train_seconds,
                "train_images_per_s": trained / train_seconds if train_seconds > 0 else 0.0,
                "score_seconds": score_seconds,
                "score_images_per_s": len(test_idx) / score_seconds if score_seconds > 0 else 0.0,
            },
        )
