"""The LLM prompt writer's worker process: `python -m dst3d_addon.generation.worker.llm JOB.json`.

The prompts stage's run (`prompting/run.py`, no torch) writes the job file and starts this in the
worker Python (GPU when there is one, CPU otherwise; never Blender's process). It loads the model
once, writes the groups one after another (llm_writer.py) and reports over the worker pipe
(`core/worker_pipe.py`; anything else printed goes to stderr, the log). The parent records each
group as it arrives, so a killed worker loses at most the group it was writing:

    {"type": "missing", "module": "torch", "error": "..."}     a module the worker needs is not installed
    {"type": "started", "model": "...", "device": "cpu", "seconds": s}
    {"type": "progress", "group": "<class>[/<model>]", "asked": k, "kept": m}
    {"type": "group", "target": {...}, "prompts": [...], "sources": [...], "dropped": {...},
     "asked": k, "seconds": s}
    {"type": "fatal", "kind": "missing_weights" | "bad_input" | "out_of_memory" | "internal", "error": "one line"}
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from ....core.errors import Dst3dError, SettingError
from ....core.worker_pipe import Channel
from ...errors import GenerationError

#: What the worker imports (checked first, so a missing one is one clear line).
MODULES = ("torch", "transformers", "safetensors")


def run(job: dict, channel: Channel) -> int:
    """Write every group of `job`; returns the exit code."""
    import torch

    from ....prompting.llm_template import LlmTemplate
    from ....prompting.llm_writer import LlmSettings, LlmWriter, write_all
    from ....prompting.targets import PromptTarget
    from ..devices import resolve_device
    from .model import load_llm, make_answer, quiet_transformers

    quiet_transformers()
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    start = time.perf_counter()
    device = resolve_device(job.get("device", "auto"))
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    settings = LlmSettings(**job["settings"])
    model, tokenizer, description = load_llm(
        job["llm"],
        device,
        dtype,
        job.get("cache_dir"),
        lambda line: channel.send({"type": "status", "message": line}),
    )
    channel.send(
        {
            "type": "started",
            "model": description,
            "device": str(device),
            "seconds": time.perf_counter() - start,
        }
    )
    answer = make_answer(
        model,
        tokenizer,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
    )
    writer = LlmWriter(LlmTemplate.from_dict(job["template"]), settings)

    def on_group(target: PromptTarget, written, seconds: float) -> None:
        channel.send(
            {
                "type": "group",
                "target": target.as_dict(),
                "prompts": written.prompts,
                "sources": written.sources,
                "dropped": written.dropped,
                "asked": written.asked,
                "seconds": seconds,
            }
        )

    def progress(target: PromptTarget, asked: int, kept: int) -> None:
        channel.send({"type": "progress", "group": target.key, "asked": asked, "kept": kept})

    targets = [PromptTarget.from_dict(t) for t in job["targets"]]
    write_all(writer, targets, int(job["n"]), answer, on_group, progress)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: one argument, the job file."""
    argv = sys.argv[1:] if argv is None else argv
    channel = Channel.take_stdout()
    for module in MODULES:
        try:
            importlib.import_module(module)
        except ImportError as err:
            channel.send({"type": "missing", "module": module, "error": str(err)})
            return 3
    try:
        job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        return run(job, channel)
    except KeyboardInterrupt:
        return 130
    except GenerationError as err:
        channel.send({"type": "fatal", "kind": err.kind, "error": err.text})
        return 1
    except (SettingError, Dst3dError) as err:
        channel.send({"type": "fatal", "kind": "bad_input", "error": err.text})
        return 1
    except Exception as err:
        traceback.print_exc()
        kind = "out_of_memory" if "out of memory" in str(err).lower() else "internal"
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        channel.send({"type": "fatal", "kind": kind, "error": f"{type(err).__name__}: {first}"})
        return 1


if __name__ == "__main__":
    sys.exit(main())
