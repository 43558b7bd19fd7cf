"""Everything that needs bpy. Never imports torch."""
