"""Helpers of the in-process command-line tests: the script path and the expected error lines.

Only `cli.main`, `cli.build_parser` and `cli.views_per_model` are used, so these tests hold while
the cli module's insides move.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "dst3d_batch.py"
PROG = "dst3d_batch.py"


def usage(stage: str | None, message: str) -> str:
    """The line of an argparse error: the parser's prog (with the stage), the message, a --help hint."""
    prog = PROG if stage is None else f"{PROG} {stage}"
    return f"dst3d: error: {prog}: {message} (see --help)"


def error(message: str) -> str:
    """The line of an error found after parsing (a UsageError or a settings check)."""
    return f"dst3d: error: {message}"


def invalid_choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    """argparse's message for a value outside `choices` (Python 3.11's wording: reprs, comma-joined)."""
    return f"{option}: invalid choice: {value!r} (choose from {', '.join(map(repr, choices))})"
