"""The prompts side: prompt writers, their filters and figures, and the `prompts` stage's run.

Torch-free except `worker/`, which runs the LLM prompt writer inside the worker Python (as the
generation worker runs diffusion): `python -m dst3d_addon.generation.worker.llm JOB.json`.
"""
