"""The pascal3d export: a dataset in PASCAL3D+'s own layout (pascal3d.py holds the layout and units).

    Images/<class>_<source>/<name>.png            source: --source, default dst3d
    Annotations/<class>_<source>/<name>.mat       record.objects: class, bbox, viewpoint, cad_index, ...
    Image_sets/<class>_<source>_<split>.txt       split: train, and val with a holdout
    CAD/<class>.mat, CAD/<class>/<NN>.off         the class's CAD models in the object frame

cad_index numbers a class's CAD models (sorted by model id) from 1. The CAD files are read with
trimesh (imported when used) and mapped with each record's `cad.to_object`; a model whose file
cannot be read, or trimesh itself missing, leaves CAD/ without it and says so in one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .camera import Intrinsics, Pose
from .export_plan import ExportPlan
from .export_target import Target
from .packages import MissingPackage, require
from .pascal3d import (
    CAD,
    Pascal3dObject,
    annotation_bytes,
    cad_mat_bytes,
    cad_off_name,
    image_set_name,
    off_bytes,
    subset,
    viewpoint_from_pose,
)
from .samples import Sample


def pascal3d_object(sample: Sample, class_name: str, cad_index: int) -> Pascal3dObject:
    """The PASCAL3D+ object of a sample: its view's pose and camera in PASCAL3D+'s units."""
    ann = sample.annotation
    cam = ann["camera"]
    intrinsics = Intrinsics(cam["width"], cam["height"], cam["viewport"], tuple(cam["principal"]))
    return Pascal3dObject(
        class_name=class_name,
        bbox=tuple(float(x) for x in ann["bbox"]),  # type: ignore[arg-type]
        viewpoint=viewpoint_from_pose(Pose(**ann["pose"]), intrinsics),
        cad_index=cad_index,
        truncated=bool(ann["truncated"]),
    )


def object_mesh(annotation: dict) -> tuple[np.ndarray, np.ndarray]:
    """(vertices in the object frame, faces) of a record's CAD file, read with trimesh. A relative
    `cad.path` is relative to the folder the render ran in (this process's current folder)."""
    trimesh = require("trimesh", purpose="the pascal3d format's CAD/ folder")
    path = annotation["cad"]["path"]
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: not found (a relative cad.path is relative to the folder the render ran in)"
        )
    mesh = trimesh.load(path, force="mesh")
    if not hasattr(mesh, "faces") or len(mesh.faces) == 0:
        raise ValueError(f"{path}: trimesh read no triangles")
    T = np.asarray(annotation["cad"]["to_object"], dtype=np.float64)
    return np.asarray(mesh.vertices) @ T[:3, :3].T + T[:3, 3], np.asarray(mesh.faces)


def write_pascal3d(
    plan: ExportPlan, target: Target, progress: Callable[[int], None], note: Callable[[str], None]
) -> list[str]:
    """Write the pascal3d export; returns the notes of CAD models it could not write."""
    source = plan.settings.pascal3d_source
    models: dict[str, list[str]] = {}
    first_view: dict[tuple[str, str], Sample] = {}
    for s in plan.samples:
        models.setdefault(s.class_key, [])
        if s.model_id not in models[s.class_key]:
            models[s.class_key].append(s.model_id)
        first_view.setdefault((s.class_key, s.model_id), s)
    cad_index = {(c, m): i for c, names in models.items() for i, m in enumerate(sorted(names), start=1)}

    names: dict[tuple[str, str], list[str]] = {}
    for sample in plan.samples:
        cls = plan.folder(sample)
        sub = subset(cls, source)
        ext = os.path.splitext(sample.file)[1]
        target.image(sample, f"Images/{sub}/{sample.name}{ext}")
        cam = sample.annotation["camera"]
        data = annotation_bytes(
            filename=f"{sample.name}{ext}",
            subset_name=sub,
            width=cam["width"],
            height=cam["height"],
            objects=[pascal3d_object(sample, cls, cad_index[(sample.class_key, sample.model_id)])],
            database=source,
            dst3d={"id": sample.id, "k": sample.k, "model_id": sample.model_id, "file": sample.file},
        )
        target.file(f"Annotations/{sub}/{sample.name}.mat", data)
        names.setdefault((sub, plan.split_of[sample.file]), []).append(sample.name)
        progress(1)
    for (sub, split), listed in sorted(names.items()):
        target.file(image_set_name(sub, split), "".join(f"{n}\n" for n in listed).encode("ascii"))

    notes: list[str] = []
    for class_key, model_ids in sorted(models.items()):
        cls = plan.folders[class_key]
        meshes = []
        for index, model in enumerate(sorted(model_ids), start=1):
            try:
                mesh = object_mesh(dict(first_view[(class_key, model)].annotation))
            except MissingPackage as err:
                notes.append(f"{CAD}/ not written: {err.text}")
                note(notes[-1])
                return notes
            except Exception as err:  # trimesh raises many kinds on files it cannot read
                notes.append(f"{cad_off_name(cls, index)} not written: {err}")
                note(notes[-1])
                meshes = []
                break
            target.file(cad_off_name(cls, index), off_bytes(*mesh))
            meshes.append(mesh)
        if meshes:
            target.file(f"{CAD}/{cls}.mat", cad_mat_bytes(cls, meshes))
    return notes
