"""dst3d Blender extension entry point: register() and unregister() only."""

from .dst3d_addon.blender import registration


def register() -> None:
    """Register the extension's classes with Blender."""
    registration.register()


def unregister() -> None:
    """Unregister the extension's classes."""
    registration.unregister()
