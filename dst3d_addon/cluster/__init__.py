"""The stages on a Ray cluster (`--ray`): imported only when that option is given, never in
Blender's process. Pure logic (what `--ray` names, how work splits) is in `core/cluster.py`.

The design keeps one copy of every stage: a Ray actor hosts the same worker process the local run
starts (a render worker, the generation worker, the KCF worker) on some node, and the driver talks
to it through `RemoteProcess`, which has `core.worker_pipe.WorkerProcess`'s interface. So the
render pool, the generate run and the kcf run are the local ones, given a remote process factory;
the driver alone writes records, the workers write their files atomically into the shared `--out`.
"""
