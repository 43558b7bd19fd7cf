"""dst3d: aligned CAD models to annotated training images (3D-DST)."""

__version__ = "0.1.0"
