"""The KCF worker process: `python -m dst3d_addon.kcf.worker JOB.json [FOLD ...]` (torch + transformers).

The kcf stage's run (`kcf/run.py`, which must not import torch) writes the job file and starts
this in the worker Python. It trains and scores the job's pending folds (or the FOLDs named after
the job file: a run on a cluster starts a worker per fold on one job file) one after another, writing each
finished fold's results atomically to <out>/kcf/fold_<i>.json, and reports over the worker pipe
(`core/worker_pipe.py`; anything else printed goes to stderr, the log):

    {"type": "missing", "module": "torch", "error": "..."}    torch or transformers is not installed
    {"type": "warning", "message": "one line"}
    {"type": "started", "device": "cuda:0", "amp": "bfloat16", "images": N}
    {"type": "fold_start", "fold": i, "train": n, "test": m, "initialisation": "random"}
    {"type": "batch", "n": B}                                 B more images trained or scored
    {"type": "epoch", "fold": i, "epoch": e, "epochs": E, "loss": x, "images_per_s": r}
    {"type": "fold_done", "fold": i, "accuracy_pi_6": a, "accuracy_pi_18": b, "chance_pi_6": c, "seconds": s}
                                                              held-out accuracy, chance (kcf/learning.py)
    {"type": "fatal", "error": "one line"}
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

from ..core.worker_pipe import Channel, serve_job
from ..generation.worker_env import WORKER_MODULES


def run(job: dict, channel: Channel) -> int:
    """Train and score every pending fold of `job`; returns the exit code."""
    import numpy as np
    import torch

    from ..core.files import write_bytes_atomic
    from ..core.seeds import derive_seed
    from .bins import angles_to_bins, bins_to_angles, pose_errors
    from .estimator import ImageBank, Trainer, build_backbone
    from .learning import fold_learning
    from .metrics import THRESHOLDS, accuracy_at
    from .results import FORMAT, fold_path, write_fold

    trainer = Trainer.for_job(job["settings"], job)
    settings, device = trainer.settings, trainer.device
    out = Path(job["out"])
    files = list(job["files"])
    poses = np.asarray(job["poses"], dtype=np.float64).reshape(-1, 3)
    folds = np.asarray(job["folds"], dtype=np.int64)
    # The renders every fold also trains on (train_renders) follow the judged images in the bank.
    render_files = list(job.get("render_files", []))
    render_poses = np.asarray(job.get("render_poses", []), dtype=np.float64).reshape(-1, 3)
    render_idx = np.arange(len(files), len(files) + len(render_files))
    targets = angles_to_bins(np.vstack([poses, render_poses]), settings.num_bins)
    is_render = np.zeros(len(files) + len(render_files), dtype=bool)
    is_render[render_idx] = True

    base, initialisation, warning = build_backbone(settings.backbone, settings.pretrained)
    if warning:
        channel.send(dict(type="warning", message=warning))
    threads = max(1, min(8, os.cpu_count() or 1))
    bank = ImageBank(out, files + render_files, settings.image_size, threads=threads)
    channel.send(
        dict(
            type="started",
            device=str(device),
            amp=str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else None,
            images=len(files),
        )
    )
    for fold in job["pending"]:
        start = time.perf_counter()
        train_idx = np.concatenate([np.flatnonzero(folds != fold), render_idx])
        test_idx = np.flatnonzero(folds == fold)
        channel.send(
            dict(
                type="fold_start",
                fold=fold,
                train=len(train_idx),
                test=len(test_idx),
                initialisation=initialisation,
            )
        )
        torch.manual_seed(derive_seed("kcf-init", settings.seed, fold))
        backbone = copy.deepcopy(base) if initialisation != "random" else type(base)(base.config)
        net = trainer.build(backbone)

        def on_epoch(epoch: int, loss: float, rate: float, fold: int = fold) -> None:
            channel.send(
                dict(
                    type="epoch",
                    fold=fold,
                    epoch=epoch + 1,
                    epochs=settings.epochs,
                    loss=loss,
                    images_per_s=rate,
                )
            )

        result = trainer.run_fold(
            net,
            bank,
            targets,
            train_idx,
            test_idx,
            seed=derive_seed("kcf-order", settings.seed, fold),
            on_batch=lambda n: channel.send(dict(type="batch", n=n)),
            on_epoch=on_epoch,
            renders=is_render,
        )
        pred = bins_to_angles(result.pred_bins, settings.num_bins)
        errors = pose_errors(pred, poses[test_idx])
        if job.get("save_weights"):
            from safetensors.torch import save

            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            write_bytes_atomic(fold_path(out, fold).with_suffix(".safetensors"), save(state))
        seconds = time.perf_counter() - start
        write_fold(
            out,
            {
                "format": FORMAT,
                "fingerprint": job["fingerprint"],
                "fold": int(fold),
                "folds": settings.folds,
                "train_images": len(train_idx),
                "train_renders": len(render_idx),
                "initialisation": initialisation,
                "train_loss": [float(x) for x in result.train_loss],
                "timing": {**result.timing, "seconds": seconds, "device": str(device)},
                "images": [
                    {"file": files[i], "score": float(sc), "pred": [float(x) for x in p]}
                    for i, sc, p in zip(test_idx, result.scores, pred, strict=True)
                ],
            },
        )
        learning = fold_learning(errors, poses[test_idx], poses[folds != fold])
        channel.send(
            dict(
                type="fold_done",
                fold=int(fold),
                seconds=seconds,
                **{f"accuracy_{k}": accuracy_at(errors, t) for k, t in THRESHOLDS.items()},
                chance_pi_6=learning.chance,
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: the job file, then the folds to train (default: the job's `pending`)."""
    argv = sys.argv[1:] if argv is None else argv

    def only_these(job: dict) -> None:
        if argv[1:]:
            job["pending"] = [int(fold) for fold in argv[1:]]

    return serve_job(WORKER_MODULES["kcf"], argv[0], run, only_these)


if __name__ == "__main__":
    sys.exit(main())
