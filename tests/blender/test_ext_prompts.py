"""Prompts per object in the panel, in this process (the bpy module): the list's buttons, Write
Prompts with the template writer and with the tiny LLM in its worker, Preview's selected prompt,
and Export Dataset writing each model's own prompts into prompts.jsonl, which the generate stage
then draws from (two objects, two lists, two negative prompts)."""

from __future__ import annotations

import os
import shutil
import sys
import time

import bpy
import pytest

from dst3d_addon.blender import registration
from dst3d_addon.blender.generate_session import SESSION, tick
from dst3d_addon.blender.model import SAMPLE_MODEL
from dst3d_addon.blender.operators_model import add_model
from dst3d_addon.blender.preferences import ADDON_PACKAGE, get_preferences
from dst3d_addon.blender.prompts_job import PromptsJob, object_prompts
from dst3d_addon.core.generation_plan import iter_items, load_generations
from dst3d_addon.core.generation_settings import settings_from_preset
from dst3d_addon.core.prompt_table import load_prompt_table, read_groups
from dst3d_addon.core.prompts import PAPER_NEGATIVE, PromptSource
from dst3d_addon.core.records import iter_annotations
from dst3d_addon.core.render_plan import Shard


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("prompt-env")
    values = {
        "DST3D_CACHE": str(base / "dst3d-cache"),
        "HF_HOME": str(base / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield dict(os.environ)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _configure(prefs) -> None:
    prefs.worker_runtime = "EXISTING"
    prefs.python_path = sys.executable
    prefs.model_preset = "tiny"
    prefs.device = "cpu"
    prefs.llm_model = "tiny"


@pytest.fixture(scope="module", autouse=True)
def registered(env):
    registration.register()
    addon = bpy.context.preferences.addons.new()
    addon.module = ADDON_PACKAGE
    _configure(get_preferences(bpy.context))
    yield
    registration.unregister()
    bpy.context.preferences.addons.remove(addon)


@pytest.fixture
def two_models(tmp_path) -> tuple[bpy.types.Object, bpy.types.Object]:
    """Two copies of the sample airliner (two CAD files: two model ids of one class), a camera."""
    bpy.ops.wm.read_homefile(use_empty=True)
    objs = []
    for name in ("jet_a", "jet_b"):
        shutil.copy(SAMPLE_MODEL, tmp_path / f"{name}.glb")
        objs.append(add_model(bpy.context, str(tmp_path / f"{name}.glb"), "object", "n02690373"))
    assert bpy.ops.dst3d.add_camera() == {"FINISHED"}
    s = bpy.context.scene.dst3d
    s.resolution_x = s.resolution_y = 64
    s.override_preset, s.steps = True, 2
    return objs[0], objs[1]


def drive(limit: float = 180.0) -> tuple[str, bool]:
    deadline = time.monotonic() + limit
    while True:
        ended, line, failed = tick(bpy.context)
        if ended:
            return line, failed
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.02)


def test_the_list_buttons_and_the_template_writer(two_models) -> None:
    a, _b = two_models
    assert a.dst3d.class_name == "airliner"  # the synset's name, not "object"
    bpy.context.view_layer.objects.active = a
    assert not bpy.ops.dst3d.prompt_remove.poll() and not bpy.ops.dst3d.roll_prompt.poll()
    assert bpy.ops.dst3d.prompt_add() == {"FINISHED"}
    assert [i.text for i in a.dst3d.prompts] == [a.dst3d.prompt]
    a.dst3d.prompts[0].text = "a {class} in the snow"
    assert bpy.ops.dst3d.prompt_add() == {"FINISHED"}  # a copy of the selected one
    assert [i.text for i in a.dst3d.prompts] == ["a {class} in the snow"] * 2 and a.dst3d.prompt_index == 1
    assert bpy.ops.dst3d.prompt_remove() == {"FINISHED"} and len(a.dst3d.prompts) == 1
    a.dst3d.prompt_writer, a.dst3d.prompt_count = "templates", 6
    assert bpy.ops.dst3d.write_prompts() == {"FINISHED"}
    texts = [i.text for i in a.dst3d.prompts]
    assert len(texts) == 6 and len(set(texts)) == 6 and all("airliner" in t.lower() for t in texts)
    assert SESSION.last_message == "Wrote 6 prompts for 'jet_a' with the template writer"
    seen = set()
    for _ in range(30):
        before = a.dst3d.prompt_index
        assert bpy.ops.dst3d.roll_prompt() == {"FINISHED"}
        assert a.dst3d.prompt_index != before
        seen.add(a.dst3d.prompt_index)
    assert len(seen) > 2
    prompt, _negative = object_prompts(a, PromptSource()).choose(5, "airliner", "n02690373")
    assert prompt == texts[a.dst3d.prompt_index]  # Preview uses the selected prompt


def test_export_writes_each_models_own_prompts(two_models, tmp_path) -> None:
    a, b = two_models
    for obj, texts, negative in (
        (a, ["a {class} at dawn", "a {class} at dusk"], "blurry"),
        (b, [], "cartoon"),
    ):
        for text in texts:
            obj.dst3d.prompts.add().text = text
        obj.dst3d.negative_prompt = negative
    b.dst3d.prompt = "an {class} in the rain"
    prefs = get_preferences(bpy.context)
    prefs.worker_runtime = "MANAGED"  # not set up: the export renders, writes the prompts, skips generation
    try:
        s = bpy.context.scene.dst3d
        s.views, s.export_dir = 2, str(tmp_path / "ds")
        for obj in (a, b):
            obj.select_set(True)
        assert bpy.ops.dst3d.export_dataset(wait=True) == {"FINISHED"}
    finally:
        _configure(prefs)
    assert SESSION.last_skipped, SESSION.last_message
    out = tmp_path / "ds"
    groups = read_groups(out)
    assert {k: (g.prompts, g.negative_prompt, g.writer) for k, g in groups.items()} == {
        ("n02690373", "jet_a"): (("a {class} at dawn", "a {class} at dusk"), "blurry", "panel"),
        ("n02690373", "jet_b"): (("an {class} in the rain",), "cartoon", "panel"),
    }
    source = PromptSource().with_table(load_prompt_table(out))
    items = list(
        iter_items(iter_annotations(out), settings_from_preset(pipeline="tiny"), source, 3, Shard(), set())
    )
    for item in items:
        if "/jet_a/" in item.annotation_id:
            assert (
                item.prompt in ("a airliner at dawn", "a airliner at dusk")
                and item.negative_prompt == "blurry"
            )
        else:
            assert (item.prompt, item.negative_prompt) == ("an airliner in the rain", "cartoon")
    assert {i.prompt for i in items if "/jet_a/" in i.annotation_id} == {
        "a airliner at dawn",
        "a airliner at dusk",
    }
    assert PAPER_NEGATIVE not in {i.negative_prompt for i in items}


def test_a_bad_prompt_in_a_list_refuses_the_export_before_anything_is_written(two_models, tmp_path) -> None:
    a, b = two_models
    a.dst3d.prompts.add().text = "a {klass}"
    s = bpy.context.scene.dst3d
    s.export_dir = str(tmp_path / "ds")
    for obj in (a, b):
        obj.select_set(True)
    with pytest.raises(RuntimeError, match=r"unknown placeholder \{klass\}"):
        bpy.ops.dst3d.export_dataset()
    assert not (tmp_path / "ds").exists()


@pytest.mark.slow
def test_write_prompts_with_the_tiny_llm_and_export_generates_from_the_lists(two_models, tmp_path) -> None:
    a, b = two_models
    bpy.context.view_layer.objects.active = a
    a.dst3d.prompt_writer, a.dst3d.prompt_count = "llm", 2
    before = [i.text for i in a.dst3d.prompts]
    assert bpy.ops.dst3d.write_prompts() == {"FINISHED"}  # started; no timer runs here
    job = SESSION.job
    assert isinstance(job, PromptsJob)
    line, failed = drive()
    assert not failed, line
    # tiny's text is noise: the filters drop it, the job says so and leaves the list as it was
    assert line.startswith("Wrote 0 prompts for 'jet_a' with the LLM") and "only 0 of 2" in line
    assert [i.text for i in a.dst3d.prompts] == before
    # export with generation: each model's images take their own list's prompts
    a.dst3d.prompts.add().text = "a {class} over the sea"
    b.dst3d.prompts.add().text = "a {class} on a runway"
    s = bpy.context.scene.dst3d
    s.views, s.images_per_view, s.export_dir = 1, 2, str(tmp_path / "gen")
    for obj in (a, b):
        obj.select_set(True)
    assert bpy.ops.dst3d.export_dataset() == {"FINISHED"}
    line, failed = drive(300)
    assert not failed and not SESSION.last_skipped, line
    prompts = {(r["id"].split("/")[1], r["prompt"]) for r in load_generations(tmp_path / "gen")}
    assert prompts == {("jet_a", "a airliner over the sea"), ("jet_b", "a airliner on a runway")}
