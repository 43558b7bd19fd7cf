"""Test-wide set-up: Blender must never touch the real user folder."""

import os
import tempfile

# Before any test module imports bpy: Blender reads this when it starts.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="dst3d-blender-user-"))
