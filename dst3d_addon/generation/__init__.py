"""The diffusion side: a ControlNet pipeline that runs only inside the worker process (torch), and
the client (no torch) that Blender and the batch script use to drive it."""
