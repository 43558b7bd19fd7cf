"""Class registration for the extension: one `classes` tuple, registered in order, and the
PropertyGroups attached to Scene and Object."""

import bpy

from . import (
    operators_generate,
    operators_model,
    operators_pictures,
    operators_prompts,
    operators_runtime,
    operators_view,
    panels,
    preferences,
    properties,
)

classes: tuple[type, ...] = (
    preferences.DST3D_AddonPreferences,
    *properties.classes,
    *operators_model.classes,
    *operators_view.classes,
    *operators_runtime.classes,
    *operators_generate.classes,
    *operators_pictures.classes,
    *operators_prompts.classes,
    *panels.classes,
)

_register, _unregister = bpy.utils.register_classes_factory(classes)


def register() -> None:
    """Register every class of the extension and attach the settings."""
    _register()
    properties.register()


def unregister() -> None:
    """Detach the settings, cancel a runtime job in progress, end the generation worker, unregister
    every class."""
    job = operators_runtime.ACTIVE.job
    if job is not None:
        job.cancel()
        operators_runtime.ACTIVE.job = None
    operators_generate.shutdown()
    properties.unregister()
    _unregister()
