"""The scaling sums, against numbers worked out by hand."""

import pytest

from dst3d_addon.core.scaling import Costs, Job, cores_to_keep_up, estimate

CANNY = Costs(render_s_per_view=0.08, generate_s_per_image=0.5, view_bytes=100_000, image_bytes=500_000)
RECIPE = Costs(render_s_per_view=5.0, generate_s_per_image=0.5, view_bytes=100_000, image_bytes=500_000)


def test_fast_render_leaves_generation_the_wall_time():
    # 3,600 views on 2 GPUs x 8 cores: render 3600*0.08/16 = 18 s, generate 3600*0.5/2 = 900 s
    e = estimate(Job(classes=10, views_per_class=360, gpus=2, cores_per_gpu=8), CANNY)
    assert e.render_hours * 3600 == pytest.approx(18.0)
    assert e.generate_hours * 3600 == pytest.approx(900.0)
    assert e.bottleneck == "generate"
    # fill: the first 256 views rendered on 16 cores, 256*0.08/16 = 1.28 s
    assert e.pipelined_hours * 3600 == pytest.approx(901.28)
    assert e.sequential_hours * 3600 == pytest.approx(918.0)
    assert e.core_hours == pytest.approx(3600 * 0.08 / 3600)
    assert e.gpu_hours == pytest.approx(0.5)
    assert e.held_gpu_hours == pytest.approx(2 * 901.28 / 3600)
    assert e.gpu_busy == pytest.approx(900 / 901.28)


def test_few_cores_per_gpu_move_the_bottleneck_to_render():
    # 3D-DST's Cycles recipe at 5 s a view needs 5/0.5 = 10 cores per GPU to keep up
    assert cores_to_keep_up(RECIPE) == pytest.approx(10.0)
    assert cores_to_keep_up(RECIPE, images_per_view=2) == pytest.approx(5.0)
    eight = estimate(Job(classes=1, views_per_class=1000, gpus=1, cores_per_gpu=8), RECIPE)
    assert eight.render_hours * 3600 == pytest.approx(625.0)  # 1000*5/8
    assert eight.generate_hours * 3600 == pytest.approx(500.0)
    assert eight.bottleneck == "render"
    # the last 256 rendered views still to generate on one GPU: 128 s
    assert eight.pipelined_hours * 3600 == pytest.approx(625.0 + 128.0)
    sixteen = estimate(Job(classes=1, views_per_class=1000, gpus=1, cores_per_gpu=16), RECIPE)
    assert sixteen.bottleneck == "generate"
    assert sixteen.pipelined_hours * 3600 == pytest.approx(500.0 + 256 * 5 / 16)


def test_more_gpus_divide_the_wall_time_not_the_gpu_hours():
    one = estimate(Job(classes=100, views_per_class=100, gpus=1, cores_per_gpu=8), CANNY)
    many = estimate(Job(classes=100, views_per_class=100, gpus=8, cores_per_gpu=8), CANNY)
    assert many.generate_hours == pytest.approx(one.generate_hours / 8)
    assert many.render_hours == pytest.approx(one.render_hours / 8)
    assert many.gpu_hours == pytest.approx(one.gpu_hours)
    assert many.core_hours == pytest.approx(one.core_hours)


def test_storage_is_linear_in_views_and_images():
    small = estimate(Job(classes=2, views_per_class=50, gpus=1, cores_per_gpu=8), CANNY)
    assert small.storage_bytes == 100 * (100_000 + 500_000)
    double = estimate(Job(classes=4, views_per_class=50, gpus=1, cores_per_gpu=8), CANNY)
    assert double.storage_bytes == 2 * small.storage_bytes
    three = estimate(Job(classes=2, views_per_class=50, gpus=1, cores_per_gpu=8, images_per_view=3), CANNY)
    assert three.storage_bytes == 100 * 100_000 + 300 * 500_000
    assert three.gpu_hours == pytest.approx(3 * small.gpu_hours)
    assert three.core_hours == pytest.approx(small.core_hours)


def test_a_dataset_smaller_than_one_chunk_fills_with_itself():
    e = estimate(Job(classes=1, views_per_class=10, gpus=1, cores_per_gpu=2), CANNY)
    assert e.fill_hours * 3600 == pytest.approx(10 * 0.08 / 2)
    none = estimate(Job(classes=1, views_per_class=10, gpus=1, cores_per_gpu=2, fill_views=0), CANNY)
    assert none.pipelined_hours == pytest.approx(none.generate_hours)


@pytest.mark.parametrize("field", ["classes", "views_per_class", "gpus", "cores_per_gpu", "images_per_view"])
def test_counts_below_one_are_refused_by_name(field):
    values = {"classes": 1, "views_per_class": 1, "gpus": 1, "cores_per_gpu": 1, "images_per_view": 1}
    values[field] = 0
    with pytest.raises(ValueError, match=field):
        Job(**values)


def test_the_table_tool_prints_a_row_per_gpu_count_and_names_the_bottleneck(capsys):
    from tools.scaling_table import main

    main(
        [
            "--classes",
            "10",
            "--views",
            "100",
            "--gpus",
            "1",
            "4",
            "--render-ms",
            "5000",
            "--generate-s",
            "0.5",
        ]
    )
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "4"]
    assert all("| render |" in row for row in rows)  # 5 s a view on 8 cores is slower than 0.5 s an image
    assert "from 10 CPU cores per GPU" in out
