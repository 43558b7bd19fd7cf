"""Pure Python + numpy (+ OpenCV) logic: no bpy, no torch."""
