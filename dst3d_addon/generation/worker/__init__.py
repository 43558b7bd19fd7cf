"""The generation worker's torch side: run only inside the worker process, never in Blender's.

`python -m dst3d_addon.generation.worker` runs `loop.main`: it loads pipelines (`pipelines.py`,
with `sources.py` saying what a model spec names), runs jobs (`runner.py`) and builds the tiny
random-weight pipeline the tests use (`tiny.py`). Everything here may import torch and diffusers.
"""
