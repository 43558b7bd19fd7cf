"""Model ids, sharding, task planning, the record writer and progress."""

import io
import json
import tracemalloc

import pytest

from dst3d_addon.core.files import read_records
from dst3d_addon.core.progress import Progress, format_duration
from dst3d_addon.core.render_plan import (
    TASK_VIEWS,
    ModelJob,
    Shard,
    TaskQueue,
    model_id_from_path,
    pending_views,
    plan_render,
    unique_models,
)


def test_model_ids_skip_generic_names():
    assert model_id_from_path("planes/airliner_01.glb") == "airliner_01"
    shapenet = "/data/ShapeNetCore.v2/02691156/1a04e3eab45ca15dd86060f189eb133/models/model_normalized.obj"
    assert model_id_from_path(shapenet) == "1a04e3eab45ca15dd86060f189eb133"
    assert model_id_from_path("x/my model (v2).obj") == "my_model_v2"


def test_duplicate_ids_refused_naming_both_files():
    a = ModelJob("car", "m", "a/m.obj")
    b = ModelJob("car", "m", "b/m.obj")
    with pytest.raises(ValueError, match=r"a/m\.obj.*b/m\.obj"):
        unique_models([a, b])
    assert unique_models([a, ModelJob("bus", "m", "b/m.obj")])[1] == []  # other class: fine


def test_the_same_model_given_twice_is_one_model():
    a = ModelJob("car", "m", "a/m.obj")
    other = ModelJob("car", "n", "a/n.obj")
    assert unique_models([a, other, a, a]) == ([a, other], [a, a])


def test_annotation_id_uses_synset_when_known():
    assert ModelJob("airliner", "a1", "a.glb", synset="n02690373").annotation_id(17) == "n02690373/a1/000017"
    assert ModelJob("airliner", "a1", "a.glb").annotation_id(3) == "airliner/a1/000003"


@pytest.mark.parametrize("bad", ["3/2", "2/2", "1/0", "-1/2", "a/b", "1", ""])
def test_bad_shards_refused(bad):
    with pytest.raises(ValueError, match=r"^shard "):
        Shard.parse(bad)


def test_shards_partition_the_views_exactly():
    models = [ModelJob("c", f"m{i}", f"m{i}.obj") for i in range(3)]
    all_ids = {m.annotation_id(v) for m in models for v in range(50)}
    seen = []
    for i in range(4):
        shard = Shard.parse(f"{i}/4")
        for m in models:
            seen.extend(m.annotation_id(v) for v in pending_views(m, 50, shard, set()))
    assert sorted(seen) == sorted(all_ids)  # every view once, none twice
    sizes = [sum(1 for m in models for _ in pending_views(m, 50, Shard(i, 4), set())) for i in range(4)]
    assert min(sizes) > 20  # roughly balanced (150 views / 4)


def test_pending_skips_done():
    m = ModelJob("c", "m", "m.obj")
    done = {m.annotation_id(v) for v in (0, 2, 4)}
    assert list(pending_views(m, 6, Shard(), done)) == [1, 3, 5]


def queue_of(views_per_model: list[int]) -> TaskQueue:
    return TaskQueue(lambda m: iter(range(views_per_model[m])), len(views_per_model))


def test_a_worker_keeps_its_model_while_it_has_views():
    queue = queue_of([600, 300, 0, 5])
    first = queue.next_task()
    assert (first.model, first.views) == (0, tuple(range(TASK_VIEWS)))
    # another worker (nothing loaded) starts a model nobody works on
    assert queue.next_task().model == 1
    # the first worker goes on with its own model
    assert queue.next_task(loaded=0).views[0] == TASK_VIEWS
    handed = []
    while (task := queue.next_task(loaded=0)) is not None:
        handed.append(task)
    views = {m: [] for m in range(4)}
    for task in [first, *handed]:
        views[task.model].extend(task.views)
    assert views[0][-1] == 599 and views[3] == [0, 1, 2, 3, 4] and views[2] == []
    assert all(len(t.views) <= TASK_VIEWS for t in handed)


def test_workers_share_a_model_when_there_are_fewer_models():
    queue = queue_of([1000])
    a, b = queue.next_task(), queue.next_task()
    assert a.model == b.model == 0 and a.views[-1] + 1 == b.views[0]


def test_a_dropped_model_hands_out_nothing_more_and_counts_its_views():
    queue = queue_of([600, 10])
    queue.next_task()  # 256 of model 0 in flight
    assert queue.has_work()
    assert queue.drop(0) == 600 - TASK_VIEWS
    assert [t.model for t in iter(queue.next_task, None)] == [1]
    assert queue.drop(1) == 0


def test_planning_a_million_views_keeps_memory_small(tmp_path):
    m = ModelJob("c", "m", "m.obj")
    tracemalloc.start()
    queue = TaskQueue(lambda _m: pending_views(m, 1_000_000, Shard(), set()), 1)
    count = 0
    for _ in range(400):  # hand out the first 100k views
        count += len(queue.next_task(loaded=0).views)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 400 * TASK_VIEWS and peak < 5_000_000


def test_the_record_writer_writes_each_view_once_in_id_order(tmp_path):
    from dst3d_addon.core.render_plan import RecordWriter

    models = [ModelJob("c", "b", "b.obj"), ModelJob("c", "a", "a.obj")]
    settings = {"seed": 0}
    plan = plan_render(tmp_path, settings, models, 2, Shard(), tool_version="t")
    assert (plan.owned, plan.total, plan.skipped) == (4, 4, 0)
    writer = RecordWriter(plan)
    other = RecordWriter(plan)  # an identical run on the same folder
    for model in models:
        for view in (1, 0):
            writer.add({"id": model.annotation_id(view)})
    other.add({"id": models[0].annotation_id(0)})
    assert (writer.written, other.written, other.duplicates) == (4, 0, 1)
    writer.finish()
    ids = [r["id"] for r in read_records(tmp_path / "annotations.jsonl")]
    assert ids == sorted(ids) and len(ids) == 4
    text = (tmp_path / "annotations.jsonl").read_text()
    writer.finish()  # in order already: left as it is
    assert (tmp_path / "annotations.jsonl").read_text() == text
    assert json.loads(text.splitlines()[0]) == {"id": "c/a/000000"}


def test_progress_line_and_rate():
    now = [0.0]
    out = io.StringIO()
    p = Progress(4, "views", stream=out, clock=lambda: now[0])
    now[0] = 1.0
    p.update()
    now[0] = 2.0
    p.update()
    assert "2/4 views" in p.line() and "1.00 views/s" in p.line() and "ETA 0:02" in p.line()
    p.update(2)
    p.close()
    assert "4/4 views" in out.getvalue()
    assert format_duration(3725) == "1:02:05" and format_duration(float("nan")) == "--:--"


def test_few_views_are_split_so_that_every_worker_gets_some(tmp_path):
    m = ModelJob("c", "m", "m.obj")
    plan = plan_render(tmp_path, {"seed": 0}, [m], 30, Shard(), tool_version="t")
    queue = plan.tasks(workers=2)
    sizes = [len(t.views) for t in iter(queue.next_task, None)]
    assert sum(sizes) == 30 and len(sizes) >= 4 and max(sizes) <= 8


def test_a_class_keeps_the_name_an_older_version_recorded(tmp_path):
    """Catalogue runs used to name a class by its synset id; now by its readable name. A dataset
    begun with the id goes on with it (no refusal), and a new one gets the name."""
    old = ModelJob("n02690373", "a", "a.glb", synset="n02690373")
    plan_render(tmp_path / "old", {"seed": 0}, [old], 1, Shard(), tool_version="t")
    new = ModelJob("airliner", "a", "a.glb", synset="n02690373")
    plan = plan_render(tmp_path / "old", {"seed": 0}, [new], 1, Shard(), tool_version="t")
    assert [m.class_name for m in plan.models] == ["n02690373"]
    plan = plan_render(tmp_path / "new", {"seed": 0}, [new], 1, Shard(), tool_version="t")
    assert [m.class_name for m in plan.models] == ["airliner"]
    assert json.loads((tmp_path / "new" / "dataset.json").read_text())["classes"] == {
        "n02690373": {"name": "airliner", "synset": "n02690373"}
    }
