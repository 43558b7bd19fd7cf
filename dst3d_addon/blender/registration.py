"""Class registration for the extension (panels and operators arrive with the UI issue)."""

import bpy

classes: tuple[type, ...] = ()

_register, _unregister = bpy.utils.register_classes_factory(classes)


def register() -> None:
    """Register every class of the extension."""
    _register()


def unregister() -> None:
    """Unregister every class of the extension."""
    _unregister()
