"""core.dataset: atomic files, JSONL appends under concurrency, dataset.json settings, ids."""

import errno
import json
import multiprocessing
import os
import re
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from dst3d_addon.core import dataset as ds
from dst3d_addon.core import files, ids
from dst3d_addon.core.errors import DatasetError, Dst3dError

SETTINGS = {"resolution": [64, 48], "seed": 3, "sampling": {"strategy": "1", "views": 10}}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


# --------------------------------------------------------------------------- atomic writes


def test_write_bytes_atomic_creates_parents_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    files.write_bytes_atomic(target, b"hello")
    files.write_bytes_atomic(target, b"world!")
    assert target.read_bytes() == b"world!"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fail_at", ["write", "fsync", "replace"])
def test_failed_write_keeps_old_target_and_removes_temp(tmp_path, monkeypatch, fail_at):
    target = tmp_path / "x.json"
    target.write_bytes(b"old complete content")
    real_write = os.write

    def half_write(fd, data):  # writes part of the data, then the disk is full
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def boom(*args):
        raise OSError(errno.EIO, "I/O error")

    with monkeypatch.context() as m:
        m.setattr(os, fail_at, half_write if fail_at == "write" else boom)
        with pytest.raises(OSError):
            files.write_bytes_atomic(target, b"new content that never fully lands" * 100)
    assert target.read_bytes() == b"old complete content"
    assert list(tmp_path.iterdir()) == [target]


def test_failed_first_write_leaves_no_target(tmp_path, monkeypatch):
    def boom(*args):
        raise OSError(errno.EIO, "I/O error")

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", boom)
        with pytest.raises(OSError):
            files.write_png(tmp_path / "masks" / "m.png", np.zeros((4, 4), np.uint8))
    assert not (tmp_path / "masks" / "m.png").exists()
    assert leftovers(tmp_path) == []


def test_temp_names_differ_and_carry_the_pid(tmp_path):
    names = {files.temp_name(tmp_path / "f.png").name for _ in range(200)}
    assert len(names) == 200
    assert all(f".{os.getpid()}@" in n and n.startswith(".f.png.") and n.endswith(".tmp") for n in names)


def test_temporary_files_a_killed_writer_left_are_removed(tmp_path):
    """Ours of a dead process, and any a day old, go; a live writer's (ours or another machine's) stay."""
    folder = tmp_path / "control" / "c"
    folder.mkdir(parents=True)
    mine_alive = files.temp_name(folder / "a.png")
    mine_dead = folder / mine_alive.name.replace(f".{os.getpid()}@", ".999999999@")
    other_host = folder / ".b.png.123@0123abcd.00112233aabb.tmp"
    old_other = folder / ".c.png.123@0123abcd.00112233aabb.tmp"
    old_style = folder / ".d.png.123.00112233aabb.tmp"
    keep = folder / "e.png"
    for path in (mine_alive, mine_dead, other_host, old_other, old_style, keep):
        path.write_bytes(b"x")
    day_ago = time.time() - files.STALE_TEMP_AGE - 60
    for path in (old_other, old_style):
        os.utime(path, (day_ago, day_ago))
    assert files.remove_stale_temps(tmp_path) == 3
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (mine_alive, other_host, keep))


def test_temps_of_one_file_are_removed_whoever_wrote_them(tmp_path):
    """A worker lost with a file in hand: its temporary siblings go, any machine's; others stay."""
    target = tmp_path / "depth" / "c" / "m" / "[000031].npz"
    target.parent.mkdir(parents=True)
    ours = files.temp_name(target)
    other = target.with_name(f".{target.name}.77@0123abcd.00112233aabb.tmp")
    neighbour = files.temp_name(target.with_name("[000032].npz"))
    not_temp = target.with_name(f".{target.name}.notes.tmp")
    for path in (ours, other, neighbour, not_temp, target):
        path.write_bytes(b"x")
    assert files.remove_temps_of(target) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(
        p.name for p in (neighbour, not_temp, target)
    )


def _rewrite_many(args):
    target, tag = args
    for i in range(40):
        files.write_bytes_atomic(target, (f"{tag}:{i};" * 2000).encode(), durable=False)
    return tag


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(max_workers=4, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield ex


def test_concurrent_atomic_writes_to_one_target_are_always_whole(tmp_path, pool):
    target = tmp_path / "shared.txt"
    list(pool.map(_rewrite_many, [(target, t) for t in "abcd"]))
    text = target.read_text()
    first = text.split(";")[0]
    assert text == (first + ";") * 2000  # one writer's complete content, never a mix
    assert leftovers(tmp_path) == []


def test_png_is_deterministic_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    for img in (
        rng.integers(0, 256, (48, 64), dtype=np.uint8),
        rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        rng.integers(0, 256, (48, 64, 4), dtype=np.uint8),
    ):
        files.write_png(tmp_path / "a.png", img)
        files.write_png(tmp_path / "b.png", img.copy())
        assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
        back = cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4), np.uint8)]
)
def test_png_refuses_bad_images(tmp_path, bad):
    with pytest.raises((TypeError, ValueError)):
        files.write_png(tmp_path / "a.png", bad)
    assert not (tmp_path / "a.png").exists()


def test_depth_npz_is_deterministic_and_loadable(tmp_path, monkeypatch):
    depth = np.full((48, 64), np.inf, np.float32)
    depth[10:30, 20:40] = np.linspace(1.0, 2.0, 400, dtype=np.float32).reshape(20, 20)
    files.write_depth_npz(tmp_path / "a.npz", depth)
    # np.savez_compressed would stamp the current time into the zip: ours must not care.
    monkeypatch.setattr("time.time", lambda: 2_000_000_000.0)
    files.write_depth_npz(tmp_path / "b.npz", depth.astype(np.float64))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        assert [i.date_time for i in zf.infolist()] == [(1980, 1, 1, 0, 0, 0)]
        assert zf.infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    back = np.load(tmp_path / "a.npz")["depth"]
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, depth)
    np.testing.assert_array_equal(files.read_depth_npz(tmp_path / "a.npz"), depth)
    with pytest.raises(TypeError):
        files.write_depth_npz(tmp_path / "c.npz", np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError):
        files.write_depth_npz(tmp_path / "c.npz", np.zeros((4, 4, 1), np.float32))


def test_write_json_atomic_refuses_nan_and_keeps_old(tmp_path):
    target = tmp_path / "d.json"
    files.write_json_atomic(target, {"a": [1, 2], "name": "é"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [1, 2], "name": "é"}
    with pytest.raises(ValueError):
        files.write_json_atomic(target, {"a": float("nan")})
    assert json.loads(target.read_text(encoding="utf-8"))["a"] == [1, 2]


# --------------------------------------------------------------------------- JSONL


def test_append_and_read_round_trip(tmp_path):
    path = tmp_path / "sub" / "r.jsonl"
    assert files.read_records(path) == []
    files.append_records(path, [{"id": "a", "x": [1.5, None]}, {"id": "b", "s": "ü\nnewline"}])
    files.append_records(path, [])
    files.append_records(path, [{"id": "c"}])
    assert path.read_bytes().count(b"\n") == 3
    assert [r["id"] for r in files.read_records(path)] == ["a", "b", "c"]
    assert files.read_records(path)[1]["s"] == "ü\nnewline"
    with pytest.raises(ValueError):
        files.append_records(path, [{"bad": float("inf")}])
    with pytest.raises(TypeError):
        files.append_records(path, [["not", "a", "dict"]])
    assert len(files.read_records(path)) == 3  # a failed batch appends nothing


def test_torn_last_line_is_ignored_then_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"id": "a"}\n\n{"id": "b"}\n{"id": "c", "files": {"ma')
    assert [r["id"] for r in files.read_records(path)] == ["a", "b"]
    files.append_records(path, [{"id": "d"}])
    assert path.read_bytes() == b'{"id": "a"}\n\n{"id": "b"}\n{"id": "d"}\n'
    assert [r["id"] for r in files.read_records(path)] == ["a", "b", "d"]


def test_torn_only_line_is_cut_to_empty(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"id": "half' * 10000)  # longer than one repair read chunk, no newline
    assert files.read_records(path) == []
    files.append_records(path, [{"id": "x"}])
    assert path.read_bytes() == b'{"id": "x"}\n'


def test_corrupt_inner_line_names_file_and_line(tmp_path):
    path = tmp_path / "annotations.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": oops}\n{"id": "c"}\n')
    with pytest.raises(DatasetError, match=r"annotations\.jsonl: line 2 is not valid JSON"):
        files.read_records(path)
    path.write_bytes(b'{"id": "a"}\n[1, 2]\n')
    with pytest.raises(DatasetError, match=r"line 2 is a JSON list"):
        files.read_records(path)
    assert issubclass(DatasetError, Dst3dError)


def test_failed_append_write_is_rolled_back(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    files.append_records(path, [{"id": "a"}])
    real_write = os.write

    def half_write(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "write", half_write)
        with pytest.raises(OSError):
            files.append_records(path, [{"id": "b", "pad": "x" * 100}, {"id": "c"}])
    assert path.read_bytes() == b'{"id": "a"}\n'


def _append_many(args):
    path, proc, count = args
    rng = np.random.default_rng(proc)
    i = 0
    while i < count:
        batch = int(rng.integers(1, 6))
        # records well over PIPE_BUF (4 KiB) so that unlocked appends would interleave
        files.append_records(
            path,
            [{"id": f"{proc}-{j}", "pad": "x" * 5000} for j in range(i, min(count, i + batch))],
            durable=False,
        )
        i += batch
    return proc


def test_concurrent_appends_from_processes_keep_every_line_whole(tmp_path, pool):
    path = tmp_path / "annotations.jsonl"
    list(pool.map(_append_many, [(path, p, 200) for p in range(4)]))
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]
    ids = [r["id"] for r in records]
    assert len(ids) == 800
    assert set(ids) == {f"{p}-{j}" for p in range(4) for j in range(200)}
    for p in range(4):  # each process's own records stay in its order
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(f"{p}-")]
        assert mine == sorted(mine)


# --------------------------------------------------------------------------- dataset.json


def test_open_creates_dataset_json(tmp_path):
    out = tmp_path / "new" / "data"
    d = ds.Dataset.open(out, "render", SETTINGS, tool_version="0.1.0", depth={"background": "inf"})
    info = json.loads((out / "dataset.json").read_text())
    assert info["format"] == ds.FORMAT_VERSION == 1
    assert info["tool"] == {"name": "dst3d", "version": "0.1.0"}
    assert info["stages"] == {"render": SETTINGS}
    assert info["classes"] == {}
    assert info["depth"] == {"background": "inf"}
    assert info["created"].endswith("+00:00")
    assert [h["stage"] for h in info["history"]] == ["render"] and info["history"][0]["mixed"] is False
    assert d.info == info and d.root == out
    assert leftovers(tmp_path) == []


def test_reopen_with_same_settings_changes_nothing(tmp_path):
    ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0.1.0")
    before = (tmp_path / "dataset.json").read_bytes()
    same = {"seed": 3, "sampling": {"views": 10, "strategy": "1"}, "resolution": (64, 48)}
    ds.Dataset.open(tmp_path, "render", same, tool_version="0.2.0")
    assert (tmp_path / "dataset.json").read_bytes() == before


def test_other_settings_are_refused_naming_the_keys(tmp_path):
    ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0.1.0")
    other = {**SETTINGS, "seed": 4, "sampling": {"strategy": "1", "views": 20}}
    with pytest.raises(DatasetError) as err:
        ds.Dataset.open(tmp_path, "render", other, tool_version="0.1.0")
    msg = str(err.value)
    assert "\n" not in msg
    assert "seed: 3 -> 4" in msg and "sampling.views: 10 -> 20" in msg
    assert "allow_mixed=True" in msg and msg.startswith(f"out {tmp_path}:")
    named = err.value.worded(lambda setting: f"<{setting}>")
    assert "<allow_mixed>" in named and named.startswith("<out>")
    assert "resolution" not in msg
    # a key only on one side
    with pytest.raises(DatasetError, match=r"edges: \(unset\) -> \"canny\""):
        ds.Dataset.open(tmp_path, "render", {**SETTINGS, "edges": "canny"}, tool_version="0.1.0")
    assert json.loads((tmp_path / "dataset.json").read_text())["stages"]["render"] == SETTINGS


def test_allow_mixed_records_the_new_settings_in_history(tmp_path):
    ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0.1.0")
    other = {**SETTINGS, "seed": 4}
    d = ds.Dataset.open(tmp_path, "render", other, tool_version="0.1.0", allow_mixed=True)
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["stages"]["render"] == other == d.info["stages"]["render"]
    assert [(h["settings"]["seed"], h["mixed"]) for h in info["history"]] == [(3, False), (4, True)]
    # other stages have their own entry and do not conflict
    ds.Dataset.open(tmp_path, "generate", {"steps": 20}, tool_version="0.1.0")
    assert set(json.loads((tmp_path / "dataset.json").read_text())["stages"]) == {"render", "generate"}


def test_depth_description_mismatch_is_refused(tmp_path):
    ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0.1.0", depth={"background": "inf"})
    with pytest.raises(DatasetError, match=r"depth.*background: \"inf\" -> \"0\""):
        ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0.1.0", depth={"background": "0"})


def test_out_is_a_file_or_under_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DatasetError, match=r"file\.txt: is a file, not a folder"):
        ds.Dataset.open(f, "render", SETTINGS, tool_version="0")
    with pytest.raises(DatasetError, match=r"a part of its path is a file"):
        ds.Dataset.open(f / "sub" / "out", "render", SETTINGS, tool_version="0")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root bypasses directory permissions")
def test_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(DatasetError, match=r"not writable"):
            ds.Dataset.open(ro, "render", SETTINGS, tool_version="0")
        with pytest.raises(DatasetError, match=r"permission denied"):
            ds.Dataset.open(ro / "inner", "render", SETTINGS, tool_version="0")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "not writable (permission denied)"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
    ],
)
def test_write_probe_failure_is_reported(tmp_path, monkeypatch, err, expected):
    # Simulated, because these tests may run as root (which may write anywhere).
    real_open = os.open

    def failing_open(path, flags, *args):
        if ".write-test." in os.fspath(path):
            raise err
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", failing_open)
    with pytest.raises(DatasetError, match=re.escape(expected)):
        ds.Dataset.open(tmp_path / "out", "render", SETTINGS, tool_version="0")


def test_non_dataset_folders_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match=r"not empty and has no dataset\.json"):
        ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0")
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"dataset\.json: not valid JSON"):
        ds.Dataset.open(other, "render", SETTINGS, tool_version="0")
    (other / "dataset.json").write_text('{"format": 99}')
    with pytest.raises(DatasetError, match=r"format 99 is newer"):
        ds.Dataset.open(other, "render", SETTINGS, tool_version="0")
    (other / "dataset.json").write_text('{"name": "something else"}')
    with pytest.raises(DatasetError, match=r"not a dst3d dataset\.json"):
        ds.Dataset.open(other, "render", SETTINGS, tool_version="0")


def _open_and_add_class(args):
    out, proc = args
    for i in range(10):
        d = ds.Dataset.open(out, "render", SETTINGS, tool_version="0.1.0")
        d.add_classes({f"class{proc}_{i}": {"name": f"c{proc}", "synset": None}})
    return proc


def test_concurrent_open_and_class_updates_lose_nothing(tmp_path, pool):
    out = tmp_path / "shared"
    list(pool.map(_open_and_add_class, [(out, p) for p in range(4)]))
    info = json.loads((out / "dataset.json").read_text())
    assert set(info["classes"]) == {f"class{p}_{i}" for p in range(4) for i in range(10)}
    assert len(info["history"]) == 1  # created once, by whichever process came first
    assert leftovers(out) == []


def test_add_classes_conflict(tmp_path):
    d = ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0")
    d.add_classes({"n02690373": {"name": "airliner", "synset": "n02690373"}})
    d.add_classes({"n02690373": {"name": "airliner", "synset": "n02690373"}})
    with pytest.raises(DatasetError, match=r"class 'n02690373' is recorded as"):
        d.add_classes({"n02690373": {"name": "jet", "synset": "n02690373"}})
    assert d.info["classes"]["n02690373"]["name"] == "airliner"


def test_completed_ids_need_every_file(tmp_path):
    d = ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0")
    for name in ("control/c/m/000000.png", "masks/c/m/000000.png", "control/c/m/000001.png"):
        files.write_png(d.path(name), np.zeros((2, 2), np.uint8))
    d.append(
        "annotations.jsonl",
        [
            {
                "id": "c/m/000000",
                "files": {"control": "control/c/m/000000.png", "mask": "masks/c/m/000000.png"},
            },
            {
                "id": "c/m/000001",
                "files": {"control": "control/c/m/000001.png", "mask": "masks/c/m/000001.png"},
            },
            {"id": "c/m/000002", "files": {"control": "control/c/m/000001.png", "render": None}},
        ],
    )
    assert d.completed_ids() == {"c/m/000000", "c/m/000002"}
    # a file cut short (here: empty, or a PNG missing its end) is not whole: its view is redone
    files.write_bytes_atomic(d.path("masks/c/m/000001.png"), b"")
    assert d.completed_ids() == {"c/m/000000", "c/m/000002"}
    whole = d.path("masks/c/m/000000.png").read_bytes()
    files.write_bytes_atomic(d.path("masks/c/m/000000.png"), whole[:-5])
    assert d.completed_ids() == {"c/m/000002"}
    files.write_bytes_atomic(d.path("masks/c/m/000000.png"), whole)
    d.append("generations.jsonl", [{"id": "c/m/000000", "k": 0, "file": "control/c/m/000000.png"}])
    d.append("generations.jsonl", [{"id": "c/m/000000", "k": 1, "file": "images/missing.png"}])
    assert d.completed_ids("generations.jsonl", key=lambda r: f"{r['id']}_{r['k']}") == {"c/m/000000_0"}
    d.append("annotations.jsonl", [{"id": "evil", "files": {"x": "../outside.png"}}])
    with pytest.raises(DatasetError, match=r"relative path inside the dataset folder"):
        d.completed_ids()


@pytest.mark.parametrize("rel", ["../x.png", "/etc/passwd", "a//b", "a/./b", "", "a\\b", "C:/x"])
def test_path_rejects_escapes(tmp_path, rel):
    d = ds.Dataset.open(tmp_path, "render", SETTINGS, tool_version="0")
    with pytest.raises(DatasetError):
        d.path(rel)


# --------------------------------------------------------------------------- ids


def test_annotation_id_format_and_checks():
    assert ids.annotation_id("n02690373", "airliner_01", 17) == "n02690373/airliner_01/000017"
    assert ids.annotation_id("car", "a.b-c+d", np.int64(1234567)) == "car/a.b-c+d/1234567"
    assert ids.parse_annotation_id("n02690373/airliner_01/000017") == ("n02690373", "airliner_01", 17)
    for cls, model in [
        ("a/b", "m"),
        ("c", ".."),
        ("", "m"),
        ("c", ".hidden"),
        ("c", "has space"),
        ("c", "x" * 201),
    ]:
        with pytest.raises(DatasetError):
            ids.annotation_id(cls, model, 0)
    for view in (-1, True, 1.0, "3"):
        with pytest.raises(DatasetError):
            ids.annotation_id("c", "m", view)
    for bad in ("c/m/17", "c/m", "c/m/000001/x", "../m/000001"):
        with pytest.raises(DatasetError):
            ids.parse_annotation_id(bad)


def test_sanitize_model_id_always_gives_a_safe_part():
    assert ids.sanitize_model_id("Boeing 747 (v2)") == "Boeing_747_v2"
    assert ids.sanitize_model_id("Café") == "Cafe"
    assert ids.sanitize_model_id("../../etc") == "etc"
    assert ids.sanitize_model_id("...") == "model"
    assert ids.sanitize_model_id("a" * 300) == "a" * 100
    rng = np.random.default_rng(1)
    alphabet = list("aZ09._-+/\\ :é…\x00ß..")
    for _ in range(300):
        name = "".join(rng.choice(alphabet, size=int(rng.integers(0, 20))))
        ids.check_id_part(ids.sanitize_model_id(name), "model id")
