"""The eval worker process: `python -m dst3d_addon.eval.worker JOB.json` (torch, transformers, safetensors).

The eval stage's run (`eval/run.py`, which must not import torch) writes the job file and starts
this in the worker Python. It trains KCF's pose estimator (`kcf/estimator.py`) on the train side's
objects, saving the network and optimizer after every epoch (<to>/checkpoint.safetensors, the
resume unit), then the trained network (<to>/model.safetensors), then predicts the test side's
poses (<to>/predictions.json). Every file is written atomically and carries the eval's
fingerprint; a rerun resumes after the last finished epoch, with the same batches and augmentation
as a run that was not stopped (each epoch's order derives from the seed and the epoch alone).
It reports over the worker pipe (`core/worker_pipe.py`; anything else printed goes to the log):

    {"type": "missing", "module": "torch", "error": "..."}    a package is not installed
    {"type": "warning", "message": "one line"}
    {"type": "started", "device": "cuda:0", "amp": "bfloat16", "train": n, "test": m, "epoch": e,
     "initialisation": "random" | "pretrained:<id>" | "init:<path>" | "resumed"}
    {"type": "batch", "n": B}                                 B more images trained or scored
    {"type": "epoch", "epoch": e, "epochs": E, "loss": x, "images_per_s": r}
    {"type": "tested", "seconds": s, "images_per_s": r}
    {"type": "fatal", "error": "one line"}
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

from ..core.errors import Dst3dError, setting
from ..core.worker_pipe import Channel, serve_job
from ..generation.worker_env import WORKER_MODULES


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def optimizer_tensors(opt) -> tuple[dict, str]:
    """An optimizer's state as named tensors (`optimizer.<param>.<name>`) and its param groups as JSON."""
    import torch

    state = opt.state_dict()
    tensors = {
        f"optimizer.{index}.{name}": value.detach().cpu().contiguous()
        for index, values in state["state"].items()
        for name, value in values.items()
        if torch.is_tensor(value)
    }
    return tensors, json.dumps(state["param_groups"])


def load_optimizer(opt, tensors: dict, groups: str) -> None:
    """Restore what `optimizer_tensors` saved."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": json.loads(groups)})


def run(job: dict, channel: Channel) -> int:
    """Train (or resume), save the weights, predict the test side; returns the exit code."""
    import numpy as np
    import torch
    from safetensors.torch import load_file, save

    from ..core.files import write_bytes_atomic, write_json_atomic
    from ..core.seeds import derive_seed
    from ..kcf.bins import angles_to_bins, bins_to_angles
    from ..kcf.estimator import ImageBank, Trainer, build_backbone
    from .results import CHECKPOINT, MODEL, PREDICTIONS

    trainer = Trainer.for_job(job["training"], job)
    settings, device = trainer.settings, trainer.device
    to = Path(job["to"])
    fingerprint = job["fingerprint"]
    train, test = job["train"], job["test"]
    io_threads = max(1, min(8, os.cpu_count() or 1))

    def targets(side: dict) -> torch.Tensor:
        poses = np.asarray(side["poses"], dtype=np.float64).reshape(-1, 3)
        return torch.from_numpy(angles_to_bins(poses, settings.num_bins).astype(np.int64))

    def bank(side: dict) -> ImageBank:
        boxes = [tuple(b) for b in side["boxes"]]
        return ImageBank(Path("/"), list(side["files"]), settings.image_size, threads=io_threads, boxes=boxes)

    def on_batch(n: int) -> None:
        channel.send(dict(type="batch", n=n))

    def ours(path: Path) -> tuple[dict, dict] | None:
        """(tensors, metadata) of a checkpoint or model of this eval, else None."""
        if not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                if meta.get("fingerprint") != fingerprint:
                    return None
                return {k: handle.get_tensor(k) for k in handle.keys()}, meta  # noqa: SIM118
        except Exception:  # a torn or foreign file: train again
            return None

    def fresh_net(initialisation_wanted: bool) -> tuple[torch.nn.Module, str]:
        """The network to train: from --init, the ImageNet weights, or random (seeded)."""
        init = job.get("init")
        pretrained = settings.pretrained if initialisation_wanted and not init else None
        base, initialisation, warning = build_backbone(settings.backbone, pretrained)
        if warning:
            channel.send(dict(type="warning", message=warning))
        torch.manual_seed(derive_seed("eval-init", settings.seed))
        backbone = base if initialisation != "random" else type(base)(base.config)
        net = trainer.build(backbone)
        if init and initialisation_wanted:
            try:
                state = load_file(init)
                net.load_state_dict({k: v for k, v in state.items() if not k.startswith("optimizer.")})
            except Exception as err:
                raise Dst3dError(
                    f"{setting('init')} {init}: its weights do not fit {setting('backbone')} {settings.backbone} "
                    f"({_first_line(err)})"
                ) from None
            initialisation = f"init:{init}"
        return net, initialisation

    start = time.perf_counter()
    finished = ours(to / MODEL)

    def started(epoch: int, initialisation: str) -> None:
        channel.send(
            dict(
                type="started",
                device=str(device),
                amp=_amp(trainer),
                train=len(train["files"]),
                test=len(test["files"]),
                epoch=epoch,
                initialisation=initialisation,
            )
        )

    train_seconds = 0.0
    if finished is not None:
        tensors, meta = finished
        net, _ = fresh_net(False)
        net.load_state_dict({k: v for k, v in tensors.items()})
        losses = json.loads(meta.get("train_loss", "[]"))
        initialisation = meta.get("initialisation", "?")
        started(settings.epochs, initialisation)
    else:
        checkpoint = ours(to / CHECKPOINT)
        net, initialisation = fresh_net(checkpoint is None)
        opt, sched = trainer.optimizer(net)
        scaler = trainer.scaler()
        first, losses = 0, []
        if checkpoint is not None:
            tensors, meta = checkpoint
            first = int(meta["epoch"])
            losses = json.loads(meta["train_loss"])
            initialisation = meta.get("initialisation", initialisation)
            net.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optimizer.")})
            with warnings.catch_warnings():  # stepping the schedule without training steps
                warnings.simplefilter("ignore")
                for _ in range(first):
                    sched.step()
            load_optimizer(opt, tensors, meta["param_groups"])
            if meta.get("scaler"):
                scaler.load_state_dict(json.loads(meta["scaler"]))
        started(first, initialisation)
        images = bank(train)
        train_targets = targets(train)
        idx = np.arange(len(train["files"]))
        for epoch in range(first, settings.epochs):
            rng = np.random.Generator(np.random.PCG64(derive_seed("eval-order", settings.seed, epoch)))
            loss, count, seconds, _ = trainer.train_epoch(
                net, opt, scaler, images, train_targets, idx, rng, on_batch
            )
            train_seconds += seconds
            sched.step()
            losses.append(loss)
            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            opt_tensors, groups = optimizer_tensors(opt)
            meta = {
                "fingerprint": fingerprint,
                "epoch": str(epoch + 1),
                "train_loss": json.dumps(losses),
                "initialisation": initialisation,
                "param_groups": groups,
                "scaler": json.dumps(scaler.state_dict()) if scaler.is_enabled() else "",
            }
            write_bytes_atomic(to / CHECKPOINT, save({**state, **opt_tensors}, metadata=meta))
            channel.send(
                dict(
                    type="epoch",
                    epoch=epoch + 1,
                    epochs=settings.epochs,
                    loss=loss,
                    images_per_s=count / seconds if seconds > 0 else 0.0,
                )
            )
        del images
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        meta = {
            "dst3d": "posenet",
            "backbone": settings.backbone,
            "num_bins": str(settings.num_bins),
            "fingerprint": fingerprint,
            "epoch": str(settings.epochs),
            "train_loss": json.dumps(losses),
            "initialisation": initialisation,
        }
        write_bytes_atomic(to / MODEL, save(state, metadata=meta))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(to / CHECKPOINT)

    test_targets = targets(test)
    scores, bins, seconds = trainer.predict(
        net, bank(test), test_targets, np.arange(len(test["files"])), on_batch
    )
    pred = bins_to_angles(bins, settings.num_bins)
    write_json_atomic(
        to / PREDICTIONS,
        {
            "fingerprint": fingerprint,
            "pred": [[float(x) for x in p] for p in pred],
            "scores": [float(x) for x in scores],
            "train_loss": losses,
            "initialisation": initialisation,
            "timing": {
                "seconds": time.perf_counter() - start,
                "train_seconds": train_seconds,
                "test_seconds": seconds,
                "device": str(device),
            },
        },
    )
    channel.send(
        dict(type="tested", seconds=seconds, images_per_s=len(pred) / seconds if seconds > 0 else 0.0)
    )
    return 0


def _amp(trainer) -> str | None:
    return str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else None


def main(argv: list[str] | None = None) -> int:
    """Entry point: one argument, the job file."""
    argv = sys.argv[1:] if argv is None else argv
    return serve_job(WORKER_MODULES["eval"], argv[0], run)


if __name__ == "__main__":
    sys.exit(main())
