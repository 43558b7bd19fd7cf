"""The batch script's option types and its words: numbers, resolutions, shards and devices that
name the option in their errors, `UsageError`, and how the settings core names become options."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence

from ..core.errors import Dst3dError, SettingError, word
from ..core.render_plan import Shard
from ..core.render_settings import AXES, MAX_RESOLUTION
from ..core.sampling import parse_strategy
from ..generation.worker_env import check_device

PROG = "dst3d_batch.py"
#: Options whose values may start with a dash (the axes -X, -Y, -Z).
DASH_VALUE_OPTIONS = ("--forward", "--up")
#: Seeds stay below 2**53 so that every JSON reader gets them exactly (seeds.py).
MAX_SEED = 2**53

#: Settings whose option is not `--` + the name with dashes.
_OPTION_NAMES = {"fallback": "fallback"}


def option_name(name: str) -> str:
    """The batch script's word for a setting named in a core message (`allow_mixed` -> `--allow-mixed`)."""
    return _OPTION_NAMES.get(name, "--" + name.replace("_", "-"))


def cli_text(error: BaseException | str) -> str:
    """A message in the batch script's words (the settings it names as options)."""
    if isinstance(error, Dst3dError):
        return error.worded(option_name)
    return word(str(error), option_name)


def say(line: str) -> None:
    """Print one line of the batch script to stderr, in its words."""
    print(cli_text(line), file=sys.stderr)


def fail(error: BaseException | str) -> None:
    """Print `dst3d: error: ...` (one line) to stderr."""
    say(f"dst3d: error: {cli_text(error)}")


class UsageError(Dst3dError):
    """A bad option: the message names it."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option gives one line (and exit 2) that names the option once, not the
    whole usage; options are never abbreviated (`--view` is not `--views`)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse says "argument --views: ..."; our types already start with the option's name.
        match = re.match(r"argument (\S+): (.*)$", message, re.S)
        if match:
            option, rest = match.groups()
            message = rest if rest.startswith(option.split("/")[0]) else f"{option}: {rest}"
        raise UsageError(f"{self.prog}: {message} (see --help)")

    def parse_args(self, args: Sequence[str] | None = None, namespace: object = None) -> argparse.Namespace:  # type: ignore[override]
        return super().parse_args(None if args is None else join_dash_values(args), namespace)  # type: ignore[arg-type]


def join_dash_values(argv: Sequence[str]) -> list[str]:
    """`--forward -Y` as `--forward=-Y`: argparse would read a value that starts with a dash as an
    option of its own."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in DASH_VALUE_OPTIONS and token in AXES and token.startswith("-"):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def number(name: str, kind: type, positive: bool, most: float | None = None) -> Callable[[str], int | float]:
    """An argparse type: a finite int or float (positive if asked, at most `most` if given) whose
    errors name the option; the bound refuses what cannot be meant before any work."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: expected {what}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be finite")
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be positive")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: at most {most:,}")
        return value

    return parse


def positive_int(name: str, most: int | None = None) -> Callable[[str], int]:
    """An argparse type for a whole number > 0 (and <= `most`)."""
    return number(name, int, positive=True, most=most)  # type: ignore[return-value]


def positive_float(name: str) -> Callable[[str], float]:
    """An argparse type for a finite number > 0."""
    return number(name, float, positive=True)  # type: ignore[return-value]


def finite_float(name: str) -> Callable[[str], float]:
    """An argparse type for any finite number."""
    return number(name, float, positive=False)  # type: ignore[return-value]


def seed(name: str) -> Callable[[str], int]:
    """An argparse type for a run seed: a whole number in [0, 2**53)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: expected a whole number") from None
        if not 0 <= value < MAX_SEED:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be in [0, 2**53)")
        return value

    return parse


def fraction(name: str) -> Callable[[str], float]:
    """An argparse type for a number in (0, 1]."""
    positive = positive_float(name)

    def parse(text: str) -> float:
        value = positive(text)
        if value > 1:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be in (0, 1]")
        return value

    return parse


def parse_resolution(text: str) -> tuple[int, int]:
    """`512` or `640x480`."""
    parts = str(text).lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"--resolution {text!r}: expected W or WxH, such as 512x384")
    if len(values) == 1:
        values *= 2
    if min(values) <= 0:
        raise argparse.ArgumentTypeError(f"--resolution {text!r}: width and height must be positive")
    if max(values) > MAX_RESOLUTION:
        raise argparse.ArgumentTypeError(f"--resolution {text!r}: at most {MAX_RESOLUTION} pixels a side")
    return values[0], values[1]


def strategy(text: str) -> str:
    """--sampling: a strategy name or an AxE grid."""
    try:
        return parse_strategy(text).name
    except SettingError as exc:
        raise argparse.ArgumentTypeError(cli_text(exc)) from None


def shard(text: str) -> Shard:
    """--shard I/N."""
    try:
        return Shard.parse(text)
    except SettingError as exc:
        raise argparse.ArgumentTypeError(cli_text(exc)) from None


def device(text: str) -> str:
    """--device: auto, cpu, cuda, cuda:N or mps."""
    try:
        return check_device(text)
    except SettingError as exc:
        raise argparse.ArgumentTypeError(cli_text(exc)) from None
