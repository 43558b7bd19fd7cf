"""K-fold consistency filter (KCF): score every image by the loss of a pose estimator that never saw it.

The modules without torch (settings, bins, folds, items, results, metrics, images, report, run)
are pure Python + numpy (+ OpenCV) and are what the batch script's process imports. `estimator`
and `worker` import torch and transformers and run only in the worker process
(`python -m dst3d_addon.kcf.worker`), started by `run.KcfRun`.
"""
