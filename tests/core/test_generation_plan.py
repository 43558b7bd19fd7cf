"""core.generation_plan: image seeds, the shard's items, resume, and the generation records."""

import copy
import json

import numpy as np
import pytest

from dst3d_addon.core import dataset as ds
from dst3d_addon.core import files
from dst3d_addon.core.camera import Intrinsics, Pose
from dst3d_addon.core.errors import DatasetError
from dst3d_addon.core.generation_plan import (
    GenerationItem,
    completed_keys,
    generation_key,
    generation_record,
    image_rel_path,
    image_seed,
    load_generations,
    plan_items,
    validate_generation,
)
from dst3d_addon.core.generation_settings import SettingsError, settings_from_preset
from dst3d_addon.core.prompts import PromptSource
from dst3d_addon.core.records import annotation_record
from dst3d_addon.core.render_plan import Shard


def annotation(class_key: str, model: str, view: int, size=(64, 48), name=None, synset=None) -> dict:
    ann_id = f"{class_key}/{model}/{view:06d}"
    return annotation_record(
        annotation_id=ann_id,
        class_name=name or class_key,
        synset=synset,
        cad_path=f"{model}.glb",
        model_id=model,
        to_object=np.eye(4),
        pose=Pose(0.1 * view, 0.2, 0.0, 3.0),
        intrinsics=Intrinsics.from_lens(*size),
        bbox=None,
        truncated=False,
        seed=view,
        files={
            "control": f"control/{ann_id}.png",
            "mask": f"masks/{ann_id}.png",
            "depth": f"depth/{ann_id}.npz",
        },
    )


ANNS = [
    annotation("n02690373", f"plane_{m}", v, name="airliner", synset="n02690373")
    for m in range(3)
    for v in range(5)
] + [annotation("pickup_truck", "truck_0", v) for v in range(5)]


def test_image_seed_and_path():
    a = image_seed(0, "car/m/000001", 0)
    assert a == image_seed(0, "car/m/000001", 0)
    assert (
        len(
            {
                a,
                image_seed(0, "car/m/000001", 1),
                image_seed(1, "car/m/000001", 0),
                image_seed(0, "car/m/000002", 0),
            }
        )
        == 4
    )
    assert all(0 <= image_seed(s, "x/y/000000", k) < 2**53 for s in range(20) for k in range(5))
    assert image_rel_path("n1/m/000003", 2) == "images/n1/m/000003_2.png"
    with pytest.raises(ValueError, match="non-negative"):
        image_rel_path("n1/m/000003", -1)
    assert generation_key("n1/m/000003", 2) == "n1/m/000003#2"


def test_plan_items_order_sizes_and_prompts():
    s = settings_from_preset("paper", seed=9)
    items = plan_items(ANNS, s, PromptSource(), 2, Shard(), set())
    assert len(items) == 2 * len(ANNS)
    assert [(i.annotation_id, i.k) for i in items] == [(a["id"], k) for a in ANNS for k in range(2)]
    first = items[0]
    assert first.seed == image_seed(9, ANNS[0]["id"], 0)
    assert first.prompt == "An image of airliner, best quality, extremely detailed"
    assert first.control == ANNS[0]["files"]["control"]
    assert first.output == image_rel_path(ANNS[0]["id"], 0)
    assert (first.width, first.height) == (64, 48)  # the control image's size
    assert first.class_name == "airliner"
    assert items[-1].prompt.startswith("An image of pickup truck,")
    assert GenerationItem.from_dict(json.loads(json.dumps(first.as_dict()))) == first
    assert first.key == generation_key(first.annotation_id, 0)
    sized = plan_items(
        ANNS[:1], settings_from_preset("paper", width=512, height=512), PromptSource(), 1, Shard(), set()
    )
    assert (sized[0].width, sized[0].height) == (512, 512)


def test_same_seed_same_prompt_alone_or_in_a_batch(tmp_path):
    captions = tmp_path / "c.csv"
    captions.write_text("class,caption\n" + "".join(f"airliner,plane {i}\n" for i in range(5)))
    src = PromptSource.load("t {class}", "", captions)
    s = settings_from_preset("paper", seed=4)
    everything = plan_items(ANNS, s, src, 3, Shard(), set())
    alone = [plan_items([a], s, src, 3, Shard(), set()) for a in ANNS]
    assert [i for group in alone for i in group] == everything
    assert len({i.prompt for i in everything if i.class_name == "airliner"}) == 5  # several captions used
    assert {i.prompt for i in everything if i.class_name == "pickup_truck"} == {"t pickup truck"}  # template
    # a different run seed gives different seeds (and so different prompt picks)
    other = plan_items(ANNS, settings_from_preset("paper", seed=5), src, 3, Shard(), set())
    assert [i.seed for i in other] != [i.seed for i in everything]


@pytest.mark.parametrize("count", [2, 3, 7])
def test_shards_cover_every_image_exactly_once_and_keep_views_together(count):
    s = settings_from_preset("paper")
    full = plan_items(ANNS, s, PromptSource(), 3, Shard(), set())
    parts = [plan_items(ANNS, s, PromptSource(), 3, Shard(i, count), set()) for i in range(count)]
    keys = [i.key for part in parts for i in part]
    assert sorted(keys) == sorted(i.key for i in full) and len(keys) == len(set(keys))
    by_key = {i.key: i for i in full}
    assert all(by_key[i.key] == i for part in parts for i in part)  # same seed and prompt in any shard
    for part in parts:
        ids = {i.annotation_id for i in part}
        assert all(sum(1 for i in part if i.annotation_id == a) == 3 for a in ids)  # all k together
    assert sum(1 for part in parts if part) >= 2


def test_resume_skips_done_keys_and_adds_more_images_per_view():
    s = settings_from_preset("paper")
    two = plan_items(ANNS, s, PromptSource(), 2, Shard(), set())
    done = {i.key for i in two[:7]}
    rest = plan_items(ANNS, s, PromptSource(), 2, Shard(), done)
    assert [i.key for i in rest] == [i.key for i in two[7:]]
    assert rest == two[7:]
    # all of 2 per view done; asking for 4 per view adds k = 2, 3 only, with the same first images
    more = plan_items(ANNS, s, PromptSource(), 4, Shard(), {i.key for i in two})
    assert {i.k for i in more} == {2, 3} and len(more) == 2 * len(ANNS)
    assert plan_items(ANNS, s, PromptSource(), 2, Shard(), {i.key for i in two}) == []


def test_plan_rejects_bad_input():
    s = settings_from_preset("paper")
    with pytest.raises(SettingsError, match=r"^images_per_view 0: must be positive"):
        plan_items(ANNS, s, PromptSource(), 0, Shard(), set())
    odd = annotation("car", "m", 0, size=(100, 75))
    with pytest.raises(SettingsError, match=r"car/m/000000: its control image is 100x75.*width/height"):
        plan_items([odd], s, PromptSource(), 1, Shard(), set())
    fixed = settings_from_preset("paper", width=96, height=72)
    item = plan_items([odd], fixed, PromptSource(), 1, Shard(), set())[0]
    assert (item.width, item.height) == (96, 72)


# --------------------------------------------------------------------------- records


def make_item(**change) -> GenerationItem:
    s = settings_from_preset("paper", seed=1)
    item = plan_items(ANNS[:1], s, PromptSource(), 2, Shard(), set())[1]
    return GenerationItem(**{**item.as_dict(), **change})


def test_record_has_the_spec_layout():
    s = settings_from_preset("paper", seed=1)
    item = make_item()
    r = generation_record(item, s.model_description(), s)
    assert list(r)[:12] == [
        "id",
        "k",
        "file",
        "seed",
        "prompt",
        "negative_prompt",
        "model",
        "steps",
        "guidance",
        "control_scale",
        "width",
        "height",
    ]
    assert r["id"] == ANNS[0]["id"] and r["k"] == 1 and r["file"] == f"images/{ANNS[0]['id']}_1.png"
    assert r["model"] == {
        "base": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "controlnet": "lllyasviel/control_v11p_sd15_canny",
        "scheduler": "ddim",
    }
    assert (r["steps"], r["guidance"], r["control_scale"], r["eta"]) == (20, 9.0, 1.0, 1.0)
    assert (r["width"], r["height"], r["lora"]) == (64, 48, None)
    assert r["seed"] == item.seed and r["prompt"] == item.prompt
    assert json.loads(json.dumps(r)) == r


def test_record_of_the_fallback_settings_actually_used():
    fast = settings_from_preset("fast")
    used = {**fast.fallback_settings().job_settings(), "lora": None}
    r = generation_record(make_item(), fast.model_description(), used)
    assert (r["model"]["scheduler"], r["steps"], r["guidance"], r["lora"]) == ("unipc", 10, 7.5, None)
    with_lora = generation_record(make_item(), fast.model_description(), fast)
    assert (with_lora["model"]["scheduler"], with_lora["steps"], with_lora["lora"]) == ("lcm", 4, fast.lora)
    with pytest.raises(ValueError, match="lack steps"):
        generation_record(make_item(), fast.model_description(), {"scheduler": "ddim"})


def good_record() -> dict:
    s = settings_from_preset("paper", seed=1)
    return generation_record(make_item(), s.model_description(), s)


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("id", "nope", "id is malformed"),
        ("k", -1, "k must be an integer >= 0"),
        ("k", True, "k must be an integer"),
        ("file", "images/other_1.png", "file must be images/"),
        ("seed", 2**53, "seed must be an integer in [0, 9007199254740992)"),
        ("seed", "12", "seed must be an integer"),
        ("prompt", "", "prompt must be a non-empty string"),
        ("negative_prompt", None, "negative_prompt must be a string"),
        ("model", "sd15", "model must be an object"),
        ("model.scheduler", "", "model.scheduler must be a non-empty string"),
        ("steps", 0, "steps must be an integer >= 1"),
        ("guidance", -1, "guidance must be in [0.0, inf]"),
        ("control_scale", float("inf"), "control_scale must be a finite number"),
        ("width", 0, "width must be an integer >= 1"),
        ("height", 1.5, "height must be an integer"),
        ("eta", 2.0, "eta must be in [0.0, 1.0]"),
        ("lora", 3, "lora must be a non-empty string"),
    ],
)
def test_validate_names_the_field(path, value, needle):
    r = good_record()
    node = r
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    with pytest.raises(DatasetError) as err:
        validate_generation(r)
    assert needle in str(err.value)
    if path != "id" and path != "k":
        assert str(err.value).startswith(f"generation {ANNS[0]['id']}#1: ")


def test_validate_missing_fields():
    for key in ("id", "k", "file", "seed", "prompt", "negative_prompt", "model", "steps", "width"):
        r = good_record()
        del r[key]
        with pytest.raises(DatasetError, match=f"{key} is missing"):
            validate_generation(r)
    r = good_record()
    del r["model"]["controlnet"]
    with pytest.raises(DatasetError, match=r"model\.controlnet is missing"):
        validate_generation(r)
    with pytest.raises(DatasetError, match="generation record: record must be an object"):
        validate_generation([1])
    r = good_record()
    del r["eta"], r["lora"]  # optional: the spec's minimal record is valid
    validate_generation(r)


def test_load_generations_and_completed_keys(tmp_path):
    s = settings_from_preset("paper", seed=1)
    data = ds.Dataset.open(tmp_path, "generate", s.as_dict(None), tool_version="test")
    items = plan_items(ANNS[:3], s, PromptSource(), 2, Shard(), set())
    records = [generation_record(i, s.model_description(), s) for i in items]
    for i in items[:4]:
        files.write_png(data.path(i.output), np.zeros((2, 2, 3), np.uint8))
    data.append(ds.GENERATIONS, records[:5])  # the 5th image's file is missing: not complete
    assert completed_keys(data) == {i.key for i in items[:4]}
    assert plan_items(ANNS[:3], s, PromptSource(), 2, Shard(), completed_keys(data)) == items[4:]
    # the 5th is redone and recorded again: the loader keeps one record per image, the last
    redo = {**records[4], "prompt": "redone"}
    data.append(ds.GENERATIONS, [redo, records[5]])
    loaded = load_generations(tmp_path)
    assert [generation_key(r["id"], r["k"]) for r in loaded] == [i.key for i in items]
    assert loaded[4]["prompt"] == "redone"
    # a torn last line is ignored
    with open(tmp_path / ds.GENERATIONS, "ab") as f:
        f.write(b'{"id": "n02690373/pla')
    assert len(load_generations(tmp_path)) == 6
    bad = copy.deepcopy(records[0])
    bad["steps"] = 0
    files.append_records(tmp_path / ds.GENERATIONS, [bad])
    with pytest.raises(DatasetError, match=r"generations\.jsonl: generation .*#0: steps must be"):
        load_generations(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_generations(tmp_path / "nothing")


def test_items_are_planned_as_a_stream():
    """A million views are planned as they are needed: the plan never sits whole in memory."""
    import itertools

    from dst3d_addon.core.generation_plan import iter_items

    s = settings_from_preset("paper", seed=1)
    endless = (dict(ANNS[i % len(ANNS)], id=f"c/m{i}/000000") for i in itertools.count())
    first = list(itertools.islice(iter_items(endless, s, PromptSource(), 2, Shard(), set()), 5))
    assert [(i.annotation_id, i.k) for i in first] == [
        ("c/m0/000000", 0), ("c/m0/000000", 1), ("c/m1/000000", 0), ("c/m1/000000", 1), ("c/m2/000000", 0),
    ]  # fmt: skip
    with pytest.raises(SettingsError, match=r"^images_per_view 1001: at most 1,000"):
        iter_items(endless, s, PromptSource(), 1001, Shard(), set())
