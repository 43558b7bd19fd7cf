"""`python -m dst3d_addon.generation.worker`: the generation worker process (see ../protocol.py)."""

import sys

from .loop import main

if __name__ == "__main__":
    sys.exit(main())
