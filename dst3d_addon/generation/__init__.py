"""The diffusion side. Torch-free here, so Blender and the batch script may import it: the client
that starts the worker and talks to it, the generate stage's run, errors, the protocol, the hub,
and where a worker's Python and packages come from (`worker_env`, `runtime_setup`). The torch
side runs only inside the worker process: `worker/`."""
