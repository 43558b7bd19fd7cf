"""Model ids, sharding, task planning, progress and the worker protocol."""

import io

import pytest

from dst3d_addon.core.progress import Progress, format_duration
from dst3d_addon.core.render_plan import (
    ModelJob,
    Shard,
    check_unique_ids,
    model_id_from_path,
    pending_views,
    plan_tasks,
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
        check_unique_ids([a, b])
    check_unique_ids([a, ModelJob("bus", "m", "b/m.obj")])  # other class: fine


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
        for m, views in zip(models, pending_views(models, 50, shard, set()), strict=True):
            seen.extend(m.annotation_id(v) for v in views)
    assert sorted(seen) == sorted(all_ids)  # every view once, none twice
    sizes = [sum(len(v) for v in pending_views(models, 50, Shard(i, 4), set())) for i in range(4)]
    assert min(sizes) > 20  # roughly balanced (150 views / 4)


def test_pending_skips_done():
    m = ModelJob("c", "m", "m.obj")
    done = {m.annotation_id(v) for v in (0, 2, 4)}
    assert pending_views([m], 6, Shard(), done) == [[1, 3, 5]]


def test_plan_tasks_whole_models_or_chunks():
    many = plan_tasks([[0, 1, 2]] * 5, workers=2)
    assert len(many) == 5 and all(t.views == (0, 1, 2) for t in many)
    few = plan_tasks([list(range(10)), [], list(range(3))], workers=4)
    by_model = {}
    for t in few:
        by_model.setdefault(t.model, []).extend(t.views)
    assert by_model == {0: list(range(10)), 2: [0, 1, 2]}
    assert sum(1 for t in few if t.model == 0) == 2
    assert plan_tasks([[], []], workers=3) == []


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
