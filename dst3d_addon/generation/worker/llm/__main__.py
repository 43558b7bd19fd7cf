"""`python -m dst3d_addon.generation.worker.llm JOB.json`: the LLM prompt writer's worker process (loop.py)."""

import sys

from .loop import main

if __name__ == "__main__":
    sys.exit(main())
