"""The LLM prompt writer's torch side, run only inside the worker Python
(`python -m dst3d_addon.generation.worker.llm JOB.json`): the model, its seeded sampling, the tiny model."""
