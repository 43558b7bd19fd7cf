"""Several generate runs over one dataset, one per worker (a Ray cluster's GPUs), driven as one.

Each `GenerateRun` owns a disjoint part of the shard (`core.cluster.sub_shard`) and its own
worker, so everything a run does alone stays as it is: its plan, its batches and seeds, out of
memory halving the batch, a lost worker restarted once per batch. Splitting by part rather than
handing batches to whichever worker is free keeps that state machine in one copy; the price is
that a fast worker does not take a slow one's views (the hash spreads them evenly, and every
worker has the same kind of GPU on a typical cluster). The runs append to generations.jsonl under
its lock, and the last one to complete puts it in order, so the result is the single run's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import GenerationError
from .run import GenerateRun

#: Seconds between two rounds over the runs when none had anything to do.
IDLE = 0.05


class GenerateFleet:
    """GenerateRun's driving interface (`poll`, `state`, counts, `cancel`, `feed`) over several runs."""

    def __init__(self, runs: Sequence[GenerateRun]) -> None:
        if not runs:
            raise ValueError("a fleet needs a run")
        self.runs = list(runs)
        self.started = min(run.started for run in self.runs)

    # ------------------------------------------------------------------------------ state
    @property
    def state(self) -> str:
        """failed / unavailable as soon as one run is; done once all are; else the least advanced."""
        states = [run.state for run in self.runs]
        for end in ("failed", "unavailable"):
            if end in states:
                return end
        if all(state == "done" for state in states):
            return "done"
        for state in ("starting", "loading"):
            if state in states:
                return state
        return "generating"

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "unavailable")

    @property
    def error(self) -> GenerationError | None:
        return next((run.error for run in self.runs if run.error is not None), None)

    @property
    def total(self) -> int:
        return sum(run.total for run in self.runs)

    @property
    def written(self) -> int:
        return sum(run.written for run in self.runs)

    @property
    def skipped(self) -> int:
        return sum(run.skipped for run in self.runs)

    @property
    def views(self) -> list[str]:
        return self.runs[0].views

    @property
    def request(self) -> dict[str, Any]:
        return self.runs[0].request

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # ------------------------------------------------------------------------------ driving
    def poll(self, timeout: float = 0.0) -> bool:
        """Advance every run as far as its messages allow; waits up to `timeout` in all. True once
        all have finished, or one failed (the others' batches are then cancelled)."""
        deadline = time.monotonic() + timeout
        while True:
            for run in self.runs:
                run.poll(0)
            if self.finished:
                if self.state != "done":
                    self.cancel()
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(IDLE, left))

    def feed(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Views the render has just written: each run takes those of its part."""
        records = list(records)
        for run in self.runs:
            run.feed(records)

    def end_feed(self) -> None:
        """No more views will come."""
        for run in self.runs:
            run.end_feed()

    def cancel(self) -> None:
        """Stop every run's current batch at its next step."""
        for run in self.runs:
            run.cancel()

    def close(self) -> None:
        """Release the workers the runs started."""
        for run in self.runs:
            run.client.release()
