"""A render worker: one Blender process that imports models and renders their views on request.

The parent (`cli/render_pool.py`, which lists the messages) starts it, sends tasks over stdin and
reads results from the worker pipe (`core/worker_pipe.py`). A model is imported once and reused while tasks for it keep coming; the
scene is built once per model and only the camera moves. A bad model is reported and skipped; a
crash of this process loses at most the views whose records were not sent yet.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import BinaryIO

import bpy

from ..core.errors import Dst3dError
from ..core.mesh_checks import check_renderable, dropped_faces
from ..core.render_plan import ModelJob
from ..core.render_settings import RenderSettings
from ..core.views import Mesh, render_view
from ..core.worker_pipe import Channel
from .cad_import import import_cad

#: Fault injection for tests: the import of the model with this id never ends (a FIFO-like hang).
FAULT_HANG_MODEL = "DST3D_FAULT_HANG_MODEL"


class _LoadedModel:
    """The model currently in the scene, and the Blender renderer built for it (if any)."""

    def __init__(self, job: ModelJob, settings: RenderSettings, threads: int | None) -> None:
        if os.environ.get(FAULT_HANG_MODEL) == job.model_id:
            time.sleep(3600)
        imported = import_cad(
            job.cad_path,
            forward=job.forward,
            up=job.up,
            azimuth_offset=job.azimuth_offset,
            elevation_offset=job.elevation_offset,
        )
        check_renderable(job.cad_path, imported.vertices, imported.faces)
        self.key = _model_key(job)
        self.mesh = Mesh(imported.vertices, imported.faces, imported.to_object)
        self.warning = dropped_faces(job.cad_path, imported.format, len(imported.object.data.polygons))
        self.render = None
        if settings.edges != "canny":
            from .scene_render import SceneRenderer

            mode = "freestyle" if settings.edges == "freestyle" else "shaded"
            renderer = SceneRenderer(
                bpy.context.scene,
                [imported.object],
                settings.intrinsics,
                mode,
                samples=settings.shaded_samples,
                threads=threads,
            )
            self.render = renderer.render


def _model_key(job: ModelJob) -> tuple:
    return (job.cad_path, job.forward, job.up, job.azimuth_offset, job.elevation_offset)


def serve(stdin: BinaryIO, channel: Channel) -> int:
    """Run tasks until told to exit or stdin closes; returns the process exit code."""
    # The worker's log says which Blender and numpy rendered (a binary or the bpy module).
    import numpy

    kind = "bpy module" if bpy.app.binary_path in ("", sys.executable) else bpy.app.binary_path
    print(
        f"dst3d render worker: Blender {bpy.app.version_string} ({kind}), numpy {numpy.__version__}",
        file=sys.stderr,
        flush=True,
    )
    settings: RenderSettings | None = None
    out = Path(".")
    threads: int | None = None
    loaded: _LoadedModel | None = None
    for line in stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        kind = message.get("type")
        if kind == "exit":
            break
        if kind == "init":
            # Blender starts with its default scene (cube, light, camera): render nothing but ours.
            bpy.ops.wm.read_factory_settings(use_empty=True)
            settings = RenderSettings.from_dict(message["settings"])
            out = Path(message["out"])
            threads = message.get("threads")
            if threads:
                _limit_threads(int(threads))
            channel.send({"type": "ready"})
            continue
        if kind != "task" or settings is None:
            channel.send({"type": "fatal", "error": f"unexpected message {kind!r}"})
            return 2
        job = ModelJob.from_dict(message["model"])
        try:
            if loaded is None or loaded.key != _model_key(job):
                loaded = None
                loaded = _LoadedModel(job, settings, threads)
                if loaded.warning:
                    channel.send(
                        {"type": "model_warning", "model_id": job.model_id, "warning": loaded.warning}
                    )
            for view in message["views"]:
                record = render_view(out, settings, job, int(view), loaded.mesh, loaded.render)
                channel.send({"type": "view", "record": record})
        except Dst3dError as exc:
            error = str(exc) if job.cad_path in str(exc) else f"{job.cad_path}: {exc}"
            channel.send({"type": "model_error", "model_id": job.model_id, "error": error})
        except Exception as exc:  # report, log the traceback, and go on with the next task
            traceback.print_exc(file=sys.stderr)
            error = f"{job.cad_path}: rendering failed: {type(exc).__name__}: {exc}".splitlines()[0]
            channel.send({"type": "model_error", "model_id": job.model_id, "error": error})
            loaded = None
        channel.send({"type": "task_done"})
    return 0


def _limit_threads(threads: int) -> None:
    """Share the cores between parallel workers."""
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass
    scene = bpy.context.scene
    scene.render.threads_mode = "FIXED"
    scene.render.threads = threads
