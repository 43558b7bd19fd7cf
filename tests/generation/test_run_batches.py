"""The generate stage's batches: taken from the planned stream as needed, one image size each."""

from __future__ import annotations

from dst3d_addon.core.generation_plan import GenerationItem
from dst3d_addon.generation.run import Batcher, batches


def test_batches_come_from_the_stream_and_a_batch_that_did_not_fit_comes_back_first():
    def item(n: int, size: int = 64) -> GenerationItem:
        return GenerationItem(f"c/m/{n:06d}", 0, n, "p", "", "control.png", f"o{n}.png", size, size, "c")

    items = [item(0), item(1), item(2), item(3, 128), item(4, 128), item(5)]
    assert [[i.seed for i in b] for b in batches(items, 2)] == [[0, 1], [2], [3, 4], [5]]
    batcher = Batcher(iter(items))
    first = batcher.take(4)
    assert [i.seed for i in first] == [0, 1, 2]  # never two sizes in one batch
    batcher.put_back(first[1:])  # out of memory: halve and retry
    assert [[i.seed for i in b] for b in iter(lambda: batcher.take(2), [])] == [[1, 2], [3, 4], [5]]


def test_views_fed_later_join_the_end_of_the_stream():
    def item(n: int, size: int = 64) -> GenerationItem:
        return GenerationItem(f"c/m/{n:06d}", 0, n, "p", "", "control.png", f"o{n}.png", size, size, "c")

    batcher = Batcher(iter([item(0), item(1)]))
    assert [i.seed for i in batcher.take(4)] == [0, 1] and batcher.take(4) == []
    batcher.extend([item(2), item(3, 128)])  # the render wrote two more views
    assert [[i.seed for i in b] for b in iter(lambda: batcher.take(4), [])] == [[2], [3]]
