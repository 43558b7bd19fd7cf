"""The generation worker's loop: `python -m dst3d_addon.generation.worker` (see ../protocol.py).

One long-lived process per GPU. It keeps one pipeline loaded and reloads only when a job asks for
another; a stdin reader thread sees `cancel` while a job runs, so a cancel takes effect at the next
denoising step. Ending the process is what frees GPU memory for good.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, BinaryIO

from ...core.worker_pipe import Channel, decode
from ..errors import BadInput, GenerationError, MissingRuntime, MissingWeights
from ..protocol import PROTOCOL_VERSION
from ..worker_env import PIP_PACKAGES, WORKER_MODULES


class _Inbox:
    """Reads client messages on a thread: cancels are flagged at once, the rest queued in order."""

    def __init__(self, stream: BinaryIO) -> None:
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: BinaryIO) -> None:
        for raw in stream:
            line = raw.strip()
            if not line:
                continue
            message = decode(line)
            if message.get("type") == "cancel":
                with self._lock:
                    self._cancelled.add(message.get("id"))
                continue
            self.messages.put(message)
        self.messages.put(None)  # the client closed our stdin: finish

    def is_cancelled(self, job_id: Any) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def forget(self, job_id: Any) -> None:
        with self._lock:
            self._cancelled.discard(job_id)


def _without_scheduler(request: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (request or {}).items() if k != "scheduler"}


class Worker:
    """Serves jobs; holds the loaded pipeline between them."""

    def __init__(self, channel: Channel, inbox: _Inbox) -> None:
        self.channel = channel
        self.inbox = inbox
        self.loaded: Any = None  # pipelines.LoadedPipeline
        self.loaded_request: dict[str, Any] | None = None
        # request (JSON) -> (the request used instead, settings overrides): LoRAs found missing
        self.fallbacks: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    # -------------------------------------------------------------------------------- pipeline
    def ensure_pipeline(self, job_id: Any, request: dict[str, Any]) -> Any:
        """The pipeline for `request`, loading it if it is not the one held."""
        from .pipelines import PipelineRequest, load_pipeline, set_scheduler

        if self.loaded is not None and _without_scheduler(self.loaded_request) == _without_scheduler(request):
            if request.get("scheduler") and request["scheduler"] != self.loaded.description.get("scheduler"):
                set_scheduler(self.loaded, request["scheduler"])  # a scheduler swap needs no reload
                self.loaded_request = dict(request)
            return self.loaded
        try:
            parsed = PipelineRequest.from_dict(request)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"pipeline request {request!r}: {exc}") from None
        if self.loaded is not None:
            self.unload()

        def progress(message: str) -> None:
            self.channel.send({"type": "status", "id": job_id, "message": message})

        self.loaded = load_pipeline(parsed, progress=progress)
        self.loaded_request = dict(request)
        if self.loaded.is_tiny:
            progress("pipeline 'tiny' has random weights: its images are noise (tests and smoke runs only)")
        return self.loaded

    def unload(self) -> None:
        import gc

        import torch

        self.loaded = None
        self.loaded_request = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -------------------------------------------------------------------------------- jobs
    def resolve(
        self, job_id: Any, request: dict[str, Any], fallback: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        """The pipeline for `request` and the settings to override: a request whose LoRA cannot be
        loaded (its weights missing, or peft) runs (with a status message, once) on its fallback
        settings without the LoRA."""
        key = json.dumps(request, sort_keys=True)
        if key in self.fallbacks:
            fallback_request, overrides = self.fallbacks[key]
            return self.ensure_pipeline(job_id, fallback_request), overrides
        try:
            return self.ensure_pipeline(job_id, request), {}
        except (MissingWeights, MissingRuntime) as exc:  # the LoRA's weights, or peft to load them
            if not fallback or not request.get("lora"):
                raise
            self.channel.send(
                {"type": "status", "id": job_id, "message": f"{exc}; using the fallback settings {fallback}"}
            )
            fallback_request = {
                **request,
                "lora": None,
                "scheduler": fallback.get("scheduler", request.get("scheduler")),
            }
            overrides = {k: v for k, v in fallback.items() if k != "scheduler"}
            loaded = self.ensure_pipeline(job_id, fallback_request)
            self.fallbacks[key] = (fallback_request, overrides)
            return loaded, overrides

    def handle_load(self, message: dict[str, Any]) -> None:
        loaded, overrides = self.resolve(
            message.get("id"), message.get("pipeline") or {}, message.get("fallback")
        )
        self.channel.send(
            {"type": "loaded", "id": message.get("id"), "model": loaded.description, "overrides": overrides}
        )

    def handle_generate(self, message: dict[str, Any]) -> None:
        from .pipelines import set_scheduler
        from .runner import ImageItem, JobSettings, encode_png, run_job

        job_id = message.get("id")
        request = dict(message.get("pipeline") or {})
        settings = dict(message.get("settings") or {})
        loaded, overrides = self.resolve(job_id, request, message.get("fallback"))
        settings.update(overrides)
        scheduler = self.loaded_request.get("scheduler") if self.loaded_request else None
        if scheduler and loaded.description.get("scheduler") != scheduler:
            set_scheduler(loaded, scheduler)
        items = [ImageItem.from_dict(item) for item in message.get("items") or []]
        job_settings = JobSettings.from_dict(settings)
        preview_every = int(message.get("preview_every") or 0)
        preview_dir = message.get("preview_dir")
        preview_path = Path(preview_dir) / f"preview_{job_id}.png" if preview_dir else None

        def on_step(step: int, steps: int) -> None:
            self.channel.send({"type": "progress", "id": job_id, "step": step, "steps": steps})

        def on_preview(step: int, rgb: Any) -> None:
            if preview_path is None:
                return
            from ...core.files import write_bytes_atomic

            preview_path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(preview_path, encode_png(rgb), durable=False)
            self.channel.send({"type": "preview", "id": job_id, "step": step, "file": str(preview_path)})

        files, seconds = run_job(
            loaded,
            items,
            job_settings,
            on_step=on_step,
            should_cancel=lambda: self.inbox.is_cancelled(job_id),
            on_preview=on_preview,
            preview_every=preview_every if preview_path is not None else 0,
            batching=str(message.get("batching") or "exact"),
        )
        used = {**job_settings.__dict__, "scheduler": loaded.description.get("scheduler")}
        self.channel.send(
            {
                "type": "result",
                "id": job_id,
                "files": files,
                "model": loaded.description,
                "settings": used,
                "seconds": round(seconds, 4),
            }
        )

    def serve(self) -> int:
        handlers = {"generate": self.handle_generate, "load": self.handle_load}
        while True:
            message = self.inbox.messages.get()
            if message is None or message.get("type") == "exit":
                return 0
            kind = message.get("type")
            job_id = message.get("id")
            handler = handlers.get(kind)
            try:
                if handler is None:
                    raise BadInput(f"unknown message type {kind!r}")
                handler(message)
            except GenerationError as exc:
                self.channel.send({"type": "error", "id": job_id, "kind": exc.kind, "message": exc.text})
            except Exception as exc:  # anything else: report one line, keep the traceback in the log
                traceback.print_exc(file=sys.stderr)
                text = " ".join(str(exc).split()) or type(exc).__name__
                self.channel.send(
                    {
                        "type": "error",
                        "id": job_id,
                        "kind": "internal",
                        "message": f"{type(exc).__name__}: {text}",
                    }
                )
            finally:
                self.inbox.forget(job_id)


def _hello() -> dict[str, Any]:
    import diffusers
    import torch

    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "python": sys.executable,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cuda": cuda,
        "devices": devices,
        "mps": mps,
    }


def _check_runtime() -> None:
    import importlib.util

    missing = [name for name in WORKER_MODULES["generation"] if importlib.util.find_spec(name) is None]
    if missing:
        packages = " ".join(
            PIP_PACKAGES[m]
            for m in ("torch", "diffusers", "transformers", "accelerate", "safetensors", "peft")
        )
        raise MissingRuntime(
            f"the worker Python {sys.executable} lacks {', '.join(missing)}; install them into it "
            f"(pip install {packages}) or point dst3d at another "
            "Python (--python PATH or $DST3D_WORKER_PYTHON; in Blender, the add-on's preferences)"
        )


def main() -> int:
    """Run the worker on this process's stdin/stdout."""
    # The protocol keeps the real stdout; everything printed from here on goes to stderr (the log).
    channel = Channel.take_stdout()
    try:
        _check_runtime()
        hello = _hello()
    except GenerationError as exc:
        channel.send({"type": "fatal", "kind": exc.kind, "message": exc.text})
        return 3
    except Exception as exc:  # a broken torch install, a CUDA driver problem, ...
        traceback.print_exc(file=sys.stderr)
        channel.send(
            {
                "type": "fatal",
                "kind": "missing_runtime",
                "message": f"the worker Python {sys.executable} cannot start torch: {type(exc).__name__}: {exc}",
            }
        )
        return 3
    channel.send(hello)
    inbox = _Inbox(sys.stdin.buffer)
    worker = Worker(channel, inbox)
    try:
        return worker.serve()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
