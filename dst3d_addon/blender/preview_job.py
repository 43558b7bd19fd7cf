"""A preview image for the current camera, generated in the worker.

`make_preview_job` gathers everything on Blender's main thread (the control image of the camera
and the model, the settings, the prompt, the seed) and submits one image to the worker.
`PreviewJob.poll()` only reads the worker's messages (no bpy); `apply_to_blender()` then puts the
latest step preview, and at the end the image, into the Image "DST3D Preview" and makes it the
camera's background image. A job that fails or is cancelled puts the previous image back.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import bpy
import cv2
import numpy as np

from ..core.errors import Dst3dError
from ..core.files import write_png
from ..core.generation_settings import TINY
from ..core.prompts import PromptSource
from ..generation.client import Job, WorkerClient
from ..generation.errors import Cancelled, GenerationError
from ..generation.run import RunOptions, pipeline_request
from .control_preview import image_array, render_control, show_image
from .generate_session import WorkerSession, worker_config
from .model import target_object
from .preferences import get_preferences, model_choice
from .prompts_job import object_prompts
from .properties import generation_settings

PREVIEW_IMAGE_NAME = "DST3D Preview"
#: The camera background's opacity: the model stays faintly visible to judge the alignment.
BACKGROUND_ALPHA = 0.9
_NUMBERS = itertools.count(1)


class PreviewError(Dst3dError):
    """The preview cannot start (no model, no camera, a size the model cannot take, ...)."""


def put_image(name: str, rgb: np.ndarray, *, pack: bool = False) -> bpy.types.Image:
    """Write a uint8 RGB image (top row first) into the Image `name`, keeping the datablock (resized
    if needed) so that whatever shows it keeps showing it. `pack` stores it in the .blend."""
    height, width = rgb.shape[:2]
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True)
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    rgba = np.ones((height, width, 4), np.float32)
    rgba[:, :, :3] = rgb[:, :, :3] / 255.0
    image.pixels.foreach_set(rgba[::-1].reshape(-1))  # Blender's rows go bottom-up
    image.update()
    if pack:
        image.pack()
    return image


def set_camera_background(camera: bpy.types.Object, image: bpy.types.Image) -> None:
    """Show `image` as the camera's background image (in front, slightly see-through)."""
    data = camera.data
    background = next((b for b in data.background_images if b.image == image), None)
    if background is None:
        background = data.background_images.new()
        background.image = image
    background.source = "IMAGE"
    background.display_depth = "FRONT"
    background.alpha = BACKGROUND_ALPHA
    background.show_background_image = True
    data.show_background_images = True


def remove_camera_background(camera: bpy.types.Object, image: bpy.types.Image) -> None:
    """Remove the camera background entries that show `image`."""
    data = camera.data
    for background in [b for b in data.background_images if b.image == image]:
        data.background_images.remove(background)


def read_rgb(path: str | Path) -> np.ndarray | None:
    """An RGB uint8 image from a PNG (None if it cannot be read)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else np.ascontiguousarray(bgr[:, :, ::-1])


class PreviewJob:
    """One preview image in the worker: progress, step previews, the result, or one-line error."""

    title = "Preview"
    image_name = PREVIEW_IMAGE_NAME

    def __init__(
        self,
        client: WorkerClient,
        request: dict[str, Any],
        job_settings: dict[str, Any],
        item: dict[str, Any],
        *,
        fallback: dict[str, Any] | None,
        preview_dir: Path,
        camera_name: str,
        previous: np.ndarray | None,
        need_gpu: bool,
    ) -> None:
        self.client = client
        self.width, self.height = int(job_settings["width"]), int(job_settings["height"])
        self.item = item
        self.camera_name = camera_name
        self.previous = previous
        self.need_gpu = need_gpu
        self.state = "running"
        self.status = "Starting the worker"
        self.message = ""
        self.error: GenerationError | None = None
        self.started = time.monotonic()
        self.steps_seen: list[int] = []
        self._applied_step = 0
        self._applied_end = False
        self._shown = False
        self.job: Job = client.generate(
            request,
            job_settings,
            [item],
            fallback=fallback,
            preview_every=1,
            preview_dir=preview_dir,
        )
        self.job.listeners.append(self._on_message)

    def _on_message(self, job: Job, message: dict[str, Any]) -> None:
        if message.get("type") == "progress":
            self.steps_seen.append(job.step)

    @property
    def done(self) -> bool:
        return self.state != "running"

    @property
    def step(self) -> int:
        return self.job.step

    @property
    def steps(self) -> int:
        return self.job.steps

    @property
    def progress(self) -> float:
        return self.job.step / self.job.steps if self.job.steps else 0.0

    def cancel(self) -> None:
        """Stop the image at its next denoising step."""
        self.job.cancel()

    def poll(self) -> bool:
        """Handle the worker's messages (never blocks, no bpy); True once the job has ended."""
        if self.done:
            return True
        self.job.poll()
        hello = self.client.hello
        if hello is not None and self.need_gpu and not hello.get("cuda") and not hello.get("mps"):
            self.job.cancel()
            self._end(
                "failed",
                f"the worker Python {hello.get('python')} sees no GPU; the model takes minutes per image "
                "on the CPU: set Preferences > DST3D > Device to CPU to run it anyway",
            )
            return True
        if not self.job.done:
            if hello is None:
                self.status = "Starting the worker (importing torch)"
            elif self.job.steps:
                self.status = f"Step {self.job.step}/{self.job.steps}"
            else:
                self.status = self.job.status or "Loading the model"
            return False
        error = self.job.error
        if error is None:
            seconds = (self.job.result or {}).get("seconds", time.monotonic() - self.started)
            self._end(
                "done",
                f"Preview {self.width}x{self.height}, {self.job.steps} steps, seed {self.item['seed']} "
                f"in {float(seconds):.1f} s",
            )
        elif isinstance(error, Cancelled):
            self._end("cancelled", f"Preview cancelled at step {self.job.step}/{self.job.steps or '?'}")
        else:
            self.error = error
            self._end("failed", str(error).splitlines()[0] if str(error) else type(error).__name__)
        return True

    def _end(self, state: str, message: str) -> None:
        self.state, self.message, self.status = state, message, message

    # ---------------------------------------------------------------------------------- Blender side
    def apply_to_blender(self, context: bpy.types.Context) -> bool:
        """On the main thread: show the newest step preview, the result, or put the old image back.
        True when the image changed (the viewports showing it need a redraw)."""
        camera = bpy.data.objects.get(self.camera_name)
        if self.state == "done":
            if self._applied_end:
                return False
            self._applied_end = True
            rgb = read_rgb(self.item["output"])
            if rgb is None:
                self._end("failed", f"{self.item['output']}: the worker's image cannot be read")
                self._restore(camera)
                return True
            image = put_image(PREVIEW_IMAGE_NAME, rgb, pack=True)
            if camera is not None and camera.type == "CAMERA":
                set_camera_background(camera, image)
            self._shown = show_image(context, image)
            return True
        if self.done:
            if not self._applied_end:
                self._applied_end = True
                self._restore(camera)
                return True
            return False
        path, step = self.job.preview, self.job.preview_step
        if path is None or step <= self._applied_step:
            return False
        rgb = read_rgb(path)
        if rgb is None:
            return False
        self._applied_step = step
        if rgb.shape[:2] != (self.height, self.width):  # latent previews are 1/8 of the size
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        image = put_image(PREVIEW_IMAGE_NAME, rgb)
        if camera is not None and camera.type == "CAMERA":
            set_camera_background(camera, image)
        return True

    def _restore(self, camera: bpy.types.Object | None) -> None:
        """After a failure or cancel: the image as it was before this job (or no image at all)."""
        image = bpy.data.images.get(PREVIEW_IMAGE_NAME)
        if image is None:
            return
        if self.previous is not None:
            put_image(PREVIEW_IMAGE_NAME, self.previous[:, :, :3], pack=True)
        elif self._applied_step:  # this job made the image: take it away again
            if camera is not None and camera.type == "CAMERA":
                remove_camera_background(camera, image)
            bpy.data.images.remove(image)


def make_preview_job(context: bpy.types.Context, session: WorkerSession) -> PreviewJob:
    """Render the control image of the scene camera and the panel's model and submit one image.

    Raises PreviewError / SettingsError / RuntimeSetupError / MissingRuntime with one line.
    """
    scene = context.scene
    obj = target_object(context)
    if obj is None:
        raise PreviewError("Select a mesh object (or import a model) first")
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise PreviewError("The scene has no camera: press Add Camera")
    prefs = get_preferences(context)
    pipeline, controlnet = model_choice(prefs)
    settings = generation_settings(scene, obj, pipeline, controlnet, prefs.precision)
    prompts = object_prompts(
        obj, PromptSource.load(settings.prompt, settings.negative_prompt, settings.captions)
    )
    edges = render_control(scene, obj, camera, scene.dst3d.edges)
    height, width = edges.shape[:2]
    width, height = settings.width or width, settings.height or height
    if width % 8 or height % 8:
        raise PreviewError(
            f"Control image {width}x{height}: the diffusion model needs multiples of 8; "
            "set the Control section's Width and Height to multiples of 8"
        )
    client = session.client(worker_config(context))
    scratch = session.scratch()
    number = next(_NUMBERS)
    control_path = scratch / f"control_{number}.png"
    write_png(control_path, edges)
    seed = int(settings.seed)
    prompt, negative = prompts.choose(
        seed, obj.dst3d.class_name.strip() or "object", obj.dst3d.synset or None
    )
    item = {
        "control": str(control_path),
        "prompt": prompt,
        "negative_prompt": negative,
        "seed": seed,
        "output": str(scratch / f"preview_{number}.png"),
    }
    job_settings = dict(settings.job_settings())
    job_settings["width"], job_settings["height"] = width, height
    request = pipeline_request(settings, RunOptions(device=prefs.device))
    previous = bpy.data.images.get(PREVIEW_IMAGE_NAME)
    return PreviewJob(
        client,
        request,
        job_settings,
        item,
        fallback=dict(settings.fallback) if settings.lora and settings.fallback else None,
        preview_dir=scratch / "steps",
        camera_name=camera.name,
        previous=image_array(previous) if previous is not None and previous.size[0] else None,
        need_gpu=prefs.device == "auto" and request["base"] != TINY,
    )
