"""dst3d Blender extension entry point: register() and unregister() only.

Blender 4.2+ reads the extension's manifest (blender_manifest.toml) and ignores `bl_info`. Blender
3.4 to 4.1 load this folder as a legacy add-on (copied into scripts/addons/dst3d), which needs
`bl_info`; tests/install checks that it agrees with the manifest.
"""

bl_info = {
    "name": "DST3D",
    "author": "dst3d developers",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "View3D > Sidebar > DST3D",
    "description": "Training images with exact 3D pose labels from aligned CAD",
    "category": "Render",
}

from .dst3d_addon.blender import registration  # noqa: E402  (after bl_info, which Blender reads first)


def register() -> None:
    """Register the extension's classes with Blender."""
    registration.register()


def unregister() -> None:
    """Unregister the extension's classes."""
    registration.unregister()
