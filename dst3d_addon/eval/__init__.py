"""The eval stage: does a dataset help? Train KCF's pose estimator on one source and test it on another.

A source is a dst3d dataset folder (any kind of image, the filter's keep set respected) or a
PASCAL3D+-layout folder (PASCAL3D+, ObjectNet3D, or a dst3d `export --format pascal3d`), read by
core/pascal3d.py. The modules here without torch (settings, sources, results, picture, run) are
what the batch script imports; `worker` imports torch and transformers and runs only in the worker
process (`python -m dst3d_addon.eval.worker`), started by `run.EvalRun`. Training and scoring are
KCF's (`kcf/estimator.py`), so a network trained here is a KCF network and the other way round.
"""
