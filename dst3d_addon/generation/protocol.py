"""The generation worker's protocol: one JSON object per line over the worker's stdin and stdout.

The worker moves its own stdout aside at start (library prints go to its log), so the pipe carries
nothing but these messages. Images never travel in the messages: the client names the files, the
worker writes them (atomically) and answers with their paths.

Client -> worker (stdin):
    {"type": "generate", "id": N,
     "pipeline": {...PipelineRequest},          loaded (or kept, if unchanged) before the job
     "settings": {"steps", "guidance", "control_scale", "eta", "width", "height"},
     "fallback": {"scheduler", "steps", "guidance", ...} | null,
                                                 used if the request's LoRA weights are missing
     "items": [{"control": PATH, "prompt", "negative_prompt", "seed", "output": PATH}, ...],
     "preview_every": K, "preview_dir": DIR | null,
     "batching": "exact" | "fused"}             exact: each image computed with a batch of one's shapes
    {"type": "load", "id": N, "pipeline": {...}, "fallback": {...} | null}
                                                 load without generating (warm up)
    {"type": "cancel", "id": N}                  stop job N within one denoising step
    {"type": "exit"}                             end the worker (frees GPU memory)

Worker -> client (stdout):
    {"type": "hello", "protocol": 1, "pid", "python", "torch", "diffusers", "cuda": bool,
     "devices": [names], "mps": bool}            once, when the worker is ready
    {"type": "status", "id": N, "message": "..."}               loading, fallbacks, warnings
    {"type": "progress", "id": N, "step": i, "steps": n}
    {"type": "preview", "id": N, "step": i, "file": PATH}       a small RGB PNG, overwritten
    {"type": "loaded", "id": N, "model": {...description}, "overrides": {...}}
                                                 overrides: the settings the fallback replaced
    {"type": "result", "id": N, "files": [PATH, ...], "model": {...}, "settings": {...used},
     "seconds": t}
    {"type": "error", "id": N | null, "kind": KIND, "message": "one line"}
    {"type": "fatal", "kind": KIND, "message": "one line"}     the worker cannot start or go on

KIND is one of `generation.errors.ERROR_KINDS`: missing_weights, missing_runtime, out_of_memory,
bad_input, cancelled, internal.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
WORKER_MODULE = "dst3d_addon.generation.worker"
