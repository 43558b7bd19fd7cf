"""The render workers' message protocol: one JSON object per line.

Parent to worker (the worker's stdin):
    {"type": "init", "settings": {...RenderSettings}, "out": DIR}
    {"type": "task", "model": {...ModelJob}, "views": [0, 3, 6]}
    {"type": "exit"}
Worker to parent (a dedicated pipe, so Blender's own prints on stdout never mix in):
    {"type": "ready"}
    {"type": "view", "record": {...annotation record, its files already written}}
    {"type": "model_error", "model_id": ID, "error": "one line"}
    {"type": "task_done"}
    {"type": "fatal", "error": "one line"}           the worker cannot go on
"""

from __future__ import annotations

import json
from typing import Any


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line of UTF-8 JSON."""
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


class LineReader:
    """Splits a byte stream into complete JSON messages (a partial line waits for more bytes)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return the messages completed by them."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]
