"""core.progress: a message printed while the bar runs gets a line of its own."""

from __future__ import annotations

import io

from dst3d_addon.core.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_say_wipes_the_bar_on_a_terminal_and_prints_a_whole_line():
    stream = _Terminal()
    progress = Progress(4, stream=stream, clock=lambda: 0.0)
    progress.update(1)
    progress.say("fold 0 done")
    assert stream.getvalue().endswith("\r\x1b[Kfold 0 done\n")


def test_say_is_a_plain_line_in_a_log():
    stream = io.StringIO()
    progress = Progress(4, stream=stream)
    progress.say("fold 0 done")
    assert stream.getvalue() == "fold 0 done\n"
