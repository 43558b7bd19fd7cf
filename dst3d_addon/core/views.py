"""One view, from its index to its files and annotation record (no bpy: Blender's renders come in
through a callback, only for the edge modes that need Blender's renderer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import control, raster, records
from .camera import Pose, extrinsics
from .files import write_depth_npz, write_png
from .render_plan import ModelJob
from .render_settings import RenderSettings
from .sampling import sample_pose
from .seeds import view_seed

#: Renders an image of the current model from a pose with Blender (freestyle lines or a shaded render).
BlenderRender = Callable[[Pose], np.ndarray]


@dataclass(frozen=True)
class Mesh:
    """A triangulated model in the object frame, and the matrix from its file's coordinates."""

    vertices: np.ndarray  # (N, 3) float64
    faces: np.ndarray  # (M, 3) int64
    to_object: np.ndarray  # (4, 4)


def view_pose(settings: RenderSettings, job: ModelJob, view: int, mesh: Mesh) -> tuple[int, Pose]:
    """The seed and pose of a view: a pure function of (run seed, class, model, view, settings)."""
    seed = view_seed(settings.seed, job.class_key, job.model_id, view)
    pose = sample_pose(
        settings.sampling_for(job.strategy),
        seed,
        view,
        points=mesh.vertices,
        intrinsics=settings.intrinsics,
        distance_scale=job.distance_scale,
    )
    return seed, pose


def file_paths(annotation_id: str, keep_render: bool) -> dict[str, str]:
    """The record's `files`, relative to the dataset folder (dataset-format.md)."""
    files = {
        "control": f"control/{annotation_id}.png",
        "mask": f"masks/{annotation_id}.png",
        "depth": f"depth/{annotation_id}.npz",
    }
    if keep_render:
        files["render"] = f"renders/{annotation_id}.png"
    return files


def render_view(
    out: Path,
    settings: RenderSettings,
    job: ModelJob,
    view: int,
    mesh: Mesh,
    blender_render: BlenderRender | None = None,
) -> dict:
    """Compute one view, write its files atomically, and return its annotation record.

    The record is returned only after every file it names is complete; the caller appends it.
    """
    seed, pose = view_pose(settings, job, view, mesh)
    intr = settings.intrinsics
    R, C = extrinsics(pose)
    ras = raster.rasterize(mesh.vertices, mesh.faces, R, C, intr)

    if settings.edges == "canny":
        edges = control.geometry_edges(ras)
        render = control.shaded_image(ras)
    else:
        if blender_render is None:
            raise ValueError(f"edge mode {settings.edges!r} needs Blender's renderer")
        image = blender_render(pose)
        if settings.edges == "freestyle":
            edges = image if image.ndim == 2 else image[..., :3].max(axis=2)
            render = control.shaded_image(ras)
        else:  # canny-shaded: 3D-DST's recipe, Canny 100/200 on the shaded Cycles render
            render = image
            edges = control.canny(image)

    annotation_id = job.annotation_id(view)
    files = file_paths(annotation_id, settings.keep_renders)
    write_png(out / files["control"], edges)
    write_png(out / files["mask"], control.mask_image(ras.mask))
    write_depth_npz(out / files["depth"], ras.depth)
    if settings.keep_renders:
        write_png(out / files["render"], render)

    return records.annotation_record(
        annotation_id=annotation_id,
        class_name=job.class_name,
        synset=job.synset,
        cad_path=job.cad_path,
        model_id=job.model_id,
        to_object=mesh.to_object,
        pose=pose,
        intrinsics=intr,
        bbox=raster.mask_bbox(ras.mask),
        truncated=raster.is_truncated(ras.mask),
        seed=seed,
        files=files,
    )
