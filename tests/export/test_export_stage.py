"""The export stage end to end: bad input gets one line and a non-zero exit with the dataset untouched;
the keep set, --all and --link; a rerun changes nothing; an export cut short (Ctrl-C, SIGKILL) and
run again ends with the same files as one that was not; generated images export with their index.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from dst3d_addon import cli
from dst3d_addon.core import export_target, export_webdataset, files
from dst3d_addon.core.dataset import ANNOTATIONS
from dst3d_addon.core.files import read_records, write_bytes_atomic
from dst3d_addon.core.records import load_annotations
from tests.batch_script import SAMPLE, SCRIPT, kill_group, run_batch, start_batch, survivors
from tests.export.conftest import CLASSES, VIEWS
from tests.export.export_helpers import digest_tree, export, keep_only

N_IMAGES = VIEWS * sum(len(models) for _, models in CLASSES.values())


def one_error(proc, code: int = 2) -> str:
    """The one stderr line of a refused run."""
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("dst3d: error: ")
    return lines[0].removeprefix("dst3d: error: ")


# ----------------------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_and_touches_nothing(rendered, rendered_digest, tmp_path):
    to = tmp_path / "exported"
    cases = {
        "unknown format": (["--format", "yolo", "--to", to], "invalid choice: 'yolo'"),
        "to inside the dataset": (
            ["--format", "coco", "--to", rendered / "x"],
            f"--to {rendered / 'x'}: inside",
        ),
        "no generated images": (
            ["--format", "coco", "--to", to],
            f"--images generated: {rendered} has no generated images (no generations.jsonl); run the generate "
            "stage first, or choose --images renders or control",
        ),
    }
    for name, (args, message) in cases.items():
        proc = run_batch("export", "--out", rendered, *args)
        assert message in one_error(proc), name
        assert not to.exists() and not (rendered / "x").exists(), name
    assert digest_tree(rendered) == rendered_digest


def test_a_dataset_without_renders_is_refused(dataset, tmp_path):
    lines = []
    for record in read_records(dataset / ANNOTATIONS):
        del record["files"]["render"]
        lines.append(json.dumps(record) + "\n")
    write_bytes_atomic(dataset / ANNOTATIONS, "".join(lines).encode())
    shutil.rmtree(dataset / "renders")
    before = digest_tree(dataset)
    proc = run_batch(
        "export", "--out", dataset, "--format", "coco", "--to", tmp_path / "e", "--images", "renders"
    )
    first = load_annotations(dataset)[0]["id"]
    assert one_error(proc) == (
        f"--images renders: {N_IMAGES} of {N_IMAGES} views of {dataset} have no render image (the first: "
        f"{first}; rendered with --no-renders?); choose another --images"
    )
    assert digest_tree(dataset) == before and not (tmp_path / "e").exists()


def test_a_missing_package_is_one_line_naming_it(rendered, tmp_path):
    blocker = tmp_path / "blocker"
    (blocker / "scipy").mkdir(parents=True)
    (blocker / "scipy" / "__init__.py").write_text("raise ImportError('no scipy here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    to = tmp_path / "p3d"
    proc = run_batch(
        "export", "--out", rendered, "--format", "pascal3d", "--to", to, "--images", "renders", env=env
    )
    message = one_error(proc, code=1)
    assert message.startswith("the pascal3d format needs the Python package scipy, which this Python (")
    assert message.endswith(" -m pip install scipy")
    assert not to.exists()


def test_a_folder_of_other_files_or_another_export_is_refused(rendered, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    proc = run_batch("export", "--out", rendered, "--format", "coco", "--to", other, "--images", "renders")
    assert one_error(proc) == f"--to {other}: not empty and not a dst3d export; choose a new or empty folder"
    assert sorted(p.name for p in other.iterdir()) == ["mine.txt"]

    to = tmp_path / "coco"
    export("--out", rendered, "--format", "coco", "--to", to, "--images", "renders")
    before = digest_tree(to)
    for args, what in [
        (["--images", "control"], "holds an export with other settings (images)"),
        (
            ["--images", "renders", "--holdout-models", "0.5"],
            "holds an export with other settings (holdout_models, seed)",
        ),
    ]:
        proc = run_batch("export", "--out", rendered, "--format", "coco", "--to", to, *args)
        assert one_error(proc) == f"--to {to}: {what}; choose a new --to"
    assert digest_tree(to) == before


def test_a_changed_keep_set_is_refused_for_the_old_export(dataset, tmp_path):
    to = tmp_path / "hf"
    export("--out", dataset, "--format", "imagefolder", "--to", to, "--images", "renders")
    keep_only(dataset, [r["id"] for r in load_annotations(dataset)][:5])
    proc = run_batch("export", "--out", dataset, "--format", "imagefolder", "--to", to, "--images", "renders")
    assert one_error(proc) == (
        f"--to {to}: holds an export of other images (the dataset or its keep set changed since); choose a new --to"
    )


# ----------------------------------------------------------------------------------------- choices


def test_the_keep_set_is_respected_unless_all(dataset, tmp_path):
    ids = sorted(r["id"] for r in load_annotations(dataset))
    kept = ids[::3]
    keep_only(dataset, kept)
    export("--out", dataset, "--format", "imagefolder", "--to", tmp_path / "kept", "--images", "control")
    rows = [
        json.loads(line) for line in (tmp_path / "kept" / "train" / "metadata.jsonl").read_text().splitlines()
    ]
    assert sorted(r["id"] for r in rows) == kept
    export(
        "--out", dataset, "--format", "imagefolder", "--to", tmp_path / "all", "--images", "control", "--all"
    )
    rows = [
        json.loads(line) for line in (tmp_path / "all" / "train" / "metadata.jsonl").read_text().splitlines()
    ]
    assert sorted(r["id"] for r in rows) == ids


def test_link_hard_links_and_a_rerun_changes_nothing(rendered, tmp_path, capsys):
    to = tmp_path / "linked"
    export("--out", rendered, "--format", "pascal3d", "--to", to, "--images", "renders", "--link")
    images = sorted((to / "Images").rglob("*.png"))
    assert len(images) == N_IMAGES
    inodes = {p.stat().st_ino for p in (rendered / "renders").rglob("*.png")}
    assert {p.stat().st_ino for p in images} == inodes  # the dataset's own files, not copies
    before = digest_tree(to)
    capsys.readouterr()
    export("--out", rendered, "--format", "pascal3d", "--to", to, "--images", "renders", "--link")
    assert digest_tree(to) == before
    summary = capsys.readouterr().err.splitlines()[-1]
    assert f"0 copied, 0 linked, {N_IMAGES} already there" in summary


# ----------------------------------------------------------------------------------------- resume

EXPORTS = {
    "coco": ["--format", "coco", "--holdout-models", "0.4"],
    "pascal3d": ["--format", "pascal3d", "--holdout-models", "0.4"],
    "imagefolder": ["--format", "imagefolder"],
    "webdataset": ["--format", "webdataset", "--shard-size", "3", "--mask", "--depth"],
}


@pytest.mark.parametrize("fmt", list(EXPORTS))
@pytest.mark.parametrize("after", [0, 7])
def test_an_interrupted_export_resumes_to_the_same_files(rendered, tmp_path, monkeypatch, fmt, after):
    args = ["export", "--out", str(rendered), "--images", "renders", "--quiet", *EXPORTS[fmt]]
    whole = tmp_path / "whole"
    assert cli.main([*args, "--to", str(whole)], SCRIPT) == 0
    part = tmp_path / "part"
    written = {"n": 0}

    def interrupt_after(write):
        def wrapped(*a, **k):
            if written["n"] >= after:
                raise KeyboardInterrupt
            written["n"] += 1
            return write(*a, **k)

        return wrapped

    with monkeypatch.context() as m:
        m.setattr(export_target.Target, "image", interrupt_after(export_target.Target.image))
        m.setattr(export_webdataset, "write_sample", interrupt_after(export_webdataset.write_sample))
        assert cli.main([*args, "--to", str(part)], SCRIPT) == 130
    assert (
        not (part / "export.json").is_file() or not json.loads((part / "export.json").read_text())["complete"]
    )
    # What a SIGKILL mid-write leaves: a temporary file of a process that is gone; the rerun removes it.
    name = files.temp_name(part / "instances_train.json").name.replace(f".{os.getpid()}@", ".999999999@")
    stale = part / name
    stale.write_bytes(b"half")
    assert cli.main([*args, "--to", str(part)], SCRIPT) == 0
    assert digest_tree(part) == digest_tree(whole)


@pytest.mark.slow
def test_a_killed_export_resumes_to_the_same_files(tmp_path):
    out = tmp_path / "ds"
    proc = run_batch("render", "--cad", SAMPLE, "--views", 60, "--resolution", 32, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    args = ["export", "--out", out, "--format", "webdataset", "--images", "control", "--shard-size", 1]
    args += ["--mask", "--depth", "--quiet"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run_batch(*args, "--to", whole).returncode == 0
    running = start_batch(*args, "--to", part)
    deadline = time.monotonic() + 60
    while len(list(part.glob("*.tar"))) < 5 and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not survivors(kill_group(running), timeout=5)
    shards = len(list(part.glob("*.tar")))
    assert 5 <= shards < 60, f"the kill did not land part-way ({shards} shards)"
    proc = run_batch(*args, "--to", part)
    assert proc.returncode == 0, proc.stderr
    assert digest_tree(part) == digest_tree(whole)


# ----------------------------------------------------------------------------------------- generated


@pytest.mark.slow
def test_generated_images_export_with_their_index(dataset, tmp_path):
    env = {
        **os.environ,
        "DST3D_CACHE": str(tmp_path / "dst3d-cache"),
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc = run_batch(
        "generate", "--out", dataset, "--pipeline", "tiny", "--steps", 2, "--device", "cpu", "--quiet",
        "--images-per-view", 2, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    to = tmp_path / "coco"
    export("--out", dataset, "--format", "coco", "--to", to, "--holdout-models", 0.5)
    from pycocotools.coco import COCO

    seen = set()
    for split in ("train", "val"):
        coco = COCO(str(to / "annotations" / f"instances_{split}.json"))
        for image in coco.loadImgs(coco.getImgIds()):
            assert image["file_name"].endswith(f"_{image['k']}.png")
            source = dataset / "images" / f"{image['dst3d_id']}_{image['k']}.png"
            assert (to / split / image["file_name"]).read_bytes() == source.read_bytes()
            seen.add((image["dst3d_id"], image["k"]))
    assert len(seen) == 2 * N_IMAGES
