"""Typed generation errors. They cross the worker pipe as {"kind": ..., "message": ...} and the
client raises the same class again, so Blender and the batch script can act on the kind."""

from __future__ import annotations

from ..core.errors import Dst3dError


class GenerationError(Dst3dError):
    """Base of the generation errors; str() is one line a user can act on."""

    kind = "internal"


class MissingWeights(GenerationError):
    """A model's weights are neither in the cache nor downloadable (offline, or no network)."""

    kind = "missing_weights"


class MissingRuntime(GenerationError):
    """The worker's Python lacks torch / diffusers / transformers."""

    kind = "missing_runtime"


class OutOfMemory(GenerationError):
    """The device ran out of memory; a smaller batch may still fit."""

    kind = "out_of_memory"


class BadInput(GenerationError):
    """A job or pipeline request the worker cannot use (bad path, size, option)."""

    kind = "bad_input"


class Cancelled(GenerationError):
    """The job was cancelled by the client."""

    kind = "cancelled"


class WorkerCrashed(GenerationError):
    """The worker process ended unexpectedly; the next job starts a new one."""

    kind = "crashed"


ERROR_KINDS: dict[str, type[GenerationError]] = {
    cls.kind: cls
    for cls in (
        GenerationError,
        MissingWeights,
        MissingRuntime,
        OutOfMemory,
        BadInput,
        Cancelled,
        WorkerCrashed,
    )
}


def error_from_kind(kind: str, message: str) -> GenerationError:
    """The typed error for a kind sent over the pipe (unknown kinds become GenerationError)."""
    return ERROR_KINDS.get(kind, GenerationError)(message)
