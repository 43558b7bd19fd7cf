"""The errors a user can act on, and the settings they name, worded by each door.

Core says what is wrong and with which setting; it does not know what a door calls that setting.
A message names a setting with `setting("out")`, a mark in its text. `str(error)` words the marks
as the Python API's names (`out`, `allow_mixed=True`); a door words them its own way with
`error.worded(words)`: the batch script says `--out`, the panel `Dataset Folder`. The marked text
(`error.text`) is what crosses a worker's pipe, so the door at the far end still words it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

#: How a door names settings: a table (unknown names stay as they are) or a function.
Words = Mapping[str, str] | Callable[[str], str]

_OPEN, _CLOSE = "\u27e6", "\u27e7"
_MARKED = re.compile(f"{_OPEN}([a-z][a-z0-9_]*){_CLOSE}")
#: The Python API's words where a parameter's name alone would not say what to do.
PYTHON_WORDS: dict[str, str] = {"allow_mixed": "allow_mixed=True"}


def setting(name: str) -> str:
    """A setting named in a message (a parameter or field name such as `out` or `allow_mixed`)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"setting name {name!r} must be a lower-case identifier")
    return f"{_OPEN}{name}{_CLOSE}"


def word(text: str, words: Words | None = None) -> str:
    """`text` with every setting mark replaced by the door's word for it (default: the Python API's)."""
    if words is None:
        words = PYTHON_WORDS

    def one(match: re.Match) -> str:
        name = match.group(1)
        return words(name) if callable(words) else words.get(name, name)

    return _MARKED.sub(one, text)


class Dst3dError(Exception):
    """Base of dst3d's user-facing errors: one line naming the file or setting and the problem."""

    @property
    def text(self) -> str:
        """The message with its setting marks (for a door to word, here or across a pipe)."""
        return str(self.args[0]) if self.args else ""

    def worded(self, words: Words | None = None) -> str:
        """The message in a door's words."""
        return word(self.text, words)

    def __str__(self) -> str:
        return word(self.text)


class SettingError(Dst3dError, ValueError):
    """A bad setting value; the message names the setting."""


class DatasetError(Dst3dError):
    """A dataset folder or file that cannot be used; the message is one line naming it."""


class CadError(Dst3dError):
    """A CAD file that cannot be used; the message names the file and what is wrong with it."""
