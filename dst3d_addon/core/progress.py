"""A dependency-free progress bar (Blender's Python has no tqdm): count, rate, ETA.

On a terminal it redraws one line; in a log (not a TTY) it prints a plain line every few seconds.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    """`1:02:03`, `2:03` or `--:--` when unknown."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return "--:--"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts finished items and shows `[#####.....] 120/500 views 3.4 views/s ETA 1:52`."""

    def __init__(
        self,
        total: int,
        unit: str = "views",
        stream: TextIO | None = None,
        enabled: bool = True,
        width: int = 28,
        clock=time.monotonic,
    ) -> None:
        self.total = max(0, int(total))
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.clock = clock
        self.done = 0
        self.failed = 0
        self.note = ""
        self.start = clock()
        self._last = -1e9
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._interval = 0.2 if self.tty else 10.0

    @property
    def rate(self) -> float:
        """Items per second so far."""
        elapsed = self.clock() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The current status line."""
        frac = self.done / self.total if self.total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        extra = f" {self.failed} failed" if self.failed else ""
        note = f" ({self.note})" if self.note else ""
        return (
            f"[{bar}] {self.done}/{self.total} {self.unit} {rate:.2f} {self.unit}/s "
            f"ETA {format_duration(eta)}{extra}{note}"
        )

    def update(self, n: int = 1, failed: int = 0) -> None:
        """Count n more finished (and `failed` failed) items; redraw when due."""
        if n == 0 and failed == 0:
            return
        self.done += n
        self.failed += failed
        now = self.clock()
        if self.enabled and (now - self._last >= self._interval or self.done >= self.total):
            self._last = now
            self._draw()

    def set_note(self, note: str) -> None:
        """Show `note` after the counts (e.g. the denoising step); redrawn on a terminal only."""
        self.note = note
        now = self.clock()
        if self.enabled and self.tty and now - self._last >= self._interval:
            self._last = now
            self._draw()

    def clear(self) -> None:
        """Wipe the bar's line on a terminal, so a message can be printed cleanly."""
        if self.enabled and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def say(self, text: str) -> None:
        """Print `text` as a line of its own: above the bar on a terminal (the bar redraws on the
        next update), plainly otherwise."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if not self.enabled:
            return
        if self.tty:
            self._draw()
            self.stream.write("\n")
        elif self.done != self.total or self._last < 0:
            self._draw()
        self.stream.flush()
