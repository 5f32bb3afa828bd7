"""Class labels in the dataset: `sgan prep images --labels folders|FILE.json`, what `sgan data` shows and
exports of them, every bad label input, and resuming a labelled build."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest
from conftest import CIFAR, REPO, prep_position, sgan, sgan_here
from PIL import Image

from stylegan_cli.core.errors import UsageError
from stylegan_cli.data.dataset import Dataset, build_levels, encode_level, pixel_md5
from stylegan_cli.data.labels import class_index, folder_labels

CLASSES = ["airplane", "cat", "dog"]


def make_src(root: Path, per_class: dict[str, int], loose: int = 0) -> Path:
    """A folder of CIFAR-10 images: the first N of each class in its class folder, and `loose` more directly in it."""
    root.mkdir(parents=True)
    for name, n in per_class.items():
        (root / name).mkdir()
        for k in range(n):
            shutil.copy(CIFAR / name / f"{k:04d}.jpg", root / name / f"{k:04d}.jpg")
    for k in range(loose):
        shutil.copy(CIFAR / "bird" / f"{k:04d}.jpg", root / f"loose{k}.jpg")
    return root


def prep(src: Path, run: Path, *args) -> subprocess.CompletedProcess:
    return sgan("prep", "images", "--src", src, "-r", run, "--resolution", 8, "--workers", 1, *args)


def dataset(run: Path) -> Dataset:
    return Dataset(run / "data" / "dataset.lmdb")


def everything(ds: Dataset) -> tuple:
    """All a dataset holds per image, and its classes, for comparing two datasets exactly."""
    return ([(ds.source(i), {r: ds.image(i, r).tobytes() for r in ds.resolutions}) for i in range(len(ds))],
            ds.class_names, None if ds.labels is None else ds.labels.tolist())


def rejects(run: Path) -> dict[str, dict]:
    return {r["source"]: r for r in map(json.loads, (run / "data" / "rejects.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """A run prepared with --labels folders from 3 classes of 3 images (one of them a folder deeper), plus an
    image directly in --src."""
    root = tmp_path_factory.mktemp("labelled")
    src = make_src(root / "src", {"airplane": 3, "cat": 2, "dog": 3}, loose=1)
    (src / "cat" / "deeper").mkdir()
    shutil.copy(CIFAR / "cat" / "0099.jpg", src / "cat" / "deeper" / "0099.jpg")
    result = prep(src, root / "run", "--labels", "folders")
    assert result.returncode == 0, result.stderr
    assert "1 no label" in result.stderr
    return root / "run"


def test_folders_label_each_image_by_its_subfolder_sorted_by_name(labelled):
    ds = dataset(labelled)
    assert ds.class_names == CLASSES and ds.num_classes == 3
    assert [ds.source(i)["source"] for i in range(len(ds))] == [
        "airplane/0000.jpg", "airplane/0001.jpg", "airplane/0002.jpg", "cat/0000.jpg", "cat/0001.jpg",
        "cat/deeper/0099.jpg", "dog/0000.jpg", "dog/0001.jpg", "dog/0002.jpg"]
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (9,)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [ds.label(i) for i in range(9)] == [ds.source(i)["label"] for i in range(9)] == ds.labels.tolist()
    assert ds.meta["settings"]["labels"] == "folders"
    with pytest.raises(IndexError):
        ds.label(9)
    loose = rejects(labelled)["loose0.jpg"]
    assert loose["reason"] == "no label" and loose["detail"] == "it lies directly in --src, not in a class folder"


@pytest.mark.slow
def test_a_dataset_json_labels_what_it_names_and_rejects_what_it_does_not(tmp_path):
    src = make_src(tmp_path / "src", {"airplane": 2, "cat": 2, "dog": 2})
    (src / "dataset.json").write_text(json.dumps({"labels": [
        ["airplane/0000.jpg", 2], ["./airplane/0001.jpg", 0], ["cat/0000.jpg", 2], ["cat/0001.jpg", 2],
        ["dog/0001.jpg", 0]]}))  # no class 1; dog/0000.jpg unlabelled
    result = sgan("prep", "images", "--src", src, "-r", tmp_path / "run", "--resolution", 8, "--workers", 2,
                  "--labels", src / "dataset.json")
    assert result.returncode == 0, result.stderr
    ds = dataset(tmp_path / "run")
    assert ds.class_names == ["0", "1", "2"] and ds.num_classes == 3  # up to the largest class, as NVIDIA's one-hot
    assert [(ds.source(i)["source"], ds.label(i)) for i in range(len(ds))] == [
        ("airplane/0000.jpg", 2), ("airplane/0001.jpg", 0), ("cat/0000.jpg", 2), ("cat/0001.jpg", 2),
        ("dog/0001.jpg", 0)]
    assert {k: (r["reason"], r["detail"]) for k, r in rejects(tmp_path / "run").items()} == {
        "dog/0000.jpg": ("no label", "the labels file does not label it")}
    settings = ds.meta["settings"]
    assert settings["labels"] == str(src / "dataset.json") and len(settings["labels_sha256"]) == 64
    path = ds.path
    del ds  # LMDB opens an environment once per process

    info = sgan_json("data", "info", "-r", tmp_path / "run")
    assert info["classes"] == {"0": 2, "1": 0, "2": 3}

    empty = sgan("data", "grid", "-r", tmp_path / "run", "--out", tmp_path / "g.png", "--class", "1")
    assert empty.returncode == 2 and empty.stderr.strip().splitlines() == [
        f"sgan: Class 1 has no images in the dataset {path}."]
    assert not (tmp_path / "g.png").exists()

    again = sgan("prep", "images", "--src", src, "-r", tmp_path / "run", "--resolution", 8, "--labels",
                 src / "dataset.json")
    assert again.returncode == 0 and "up to date" in again.stderr
    (src / "dataset.json").write_text(json.dumps({"labels": [["dog/0000.jpg", 1]]}))
    changed = sgan("prep", "images", "--src", src, "-r", tmp_path / "run", "--resolution", 8, "--labels",
                   src / "dataset.json")
    assert changed.returncode == 2 and "--overwrite" in changed.stderr
    assert dataset(tmp_path / "run").labels.tolist() == [2, 0, 2, 2, 0]


def sgan_json(*args) -> dict:
    result = sgan(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_info_shows_the_images_per_class(labelled):
    assert sgan_json("data", "info", "-r", labelled)["classes"] == {"airplane": 3, "cat": 3, "dog": 3}
    table = sgan("data", "info", "-r", labelled)
    assert table.returncode == 0
    assert '{"airplane": 3, "cat": 3, "dog": 3}' in table.stdout


def test_export_writes_nvidia_dataset_json_and_prep_reads_it_back(labelled, tmp_path):
    out = tmp_path / "export"
    result = sgan("data", "export", "-r", labelled, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [str(out / "index.jsonl"), str(out / "dataset.json")]
    written = json.loads((out / "dataset.json").read_text())
    ds = dataset(labelled)
    assert written == {"labels": [[f"{i:05d}.png", ds.label(i)] for i in range(9)], "class_names": CLASSES}

    again = prep(out, tmp_path / "again", "--labels", out / "dataset.json")
    assert again.returncode == 0, again.stderr
    copy = dataset(tmp_path / "again")
    assert copy.class_names == CLASSES and copy.labels.tolist() == ds.labels.tolist()
    assert [copy.image(i, 8).tobytes() for i in range(9)] == [ds.image(i, 8).tobytes() for i in range(9)]
    assert (tmp_path / "again" / "data" / "rejects.jsonl").read_text() == ""

    limited = sgan("data", "export", "-r", labelled, "--out", tmp_path / "three", "--limit", 3, "--resolution", 4)
    assert limited.returncode == 0, limited.stderr
    assert json.loads((tmp_path / "three" / "dataset.json").read_text())["labels"] == [
        ["00000.png", 0], ["00001.png", 0], ["00002.png", 0]]


def test_grid_class_shows_only_that_class(labelled, tmp_path, capsys):
    cats = [dataset(labelled).image(i, 8) for i in range(3, 6)]  # closed again before the command opens it
    status, out, err = sgan_here(capsys, "data", "grid", "-r", labelled, "--out", tmp_path / "cat.png", "--class",
                                 "cat", "--count", 64)
    assert status == 0, err
    assert "3 of the 3 images of class cat at 8x8." in err
    grid = np.asarray(Image.open(tmp_path / "cat.png").convert("RGB"))
    assert grid.shape == (18, 18, 3)  # 2 columns, 2 rows, 2-pixel gaps
    tiles = [grid[r : r + 8, c : c + 8] for r, c in ((0, 0), (0, 10), (10, 0))]
    assert all(np.array_equal(tile, img) for tile, img in zip(tiles, cats))
    status, _, err = sgan_here(capsys, "data", "grid", "-r", labelled, "--out", tmp_path / "one.png", "--class", "1",
                               "--seed", 3)
    assert status == 0, err
    assert Image.open(tmp_path / "one.png").size == (18, 18)

    for value in ("bird", "3", "-1"):
        status, _, err = sgan_here(capsys, "data", "grid", "-r", labelled, "--out", tmp_path / "bad.png", "--class",
                                   value)
        assert status == 2 and err.strip().splitlines() == [
            f"sgan: Class '{value}' is neither a class name (airplane, cat, dog) nor an index from 0 to 2."]
    assert not (tmp_path / "bad.png").exists()


def test_class_index_takes_a_name_or_an_index():
    assert class_index("cat", CLASSES) == 1 and class_index("2", CLASSES) == 2 and class_index("02", CLASSES) == 2
    assert class_index("1", ["1", "0"]) == 0  # a name wins over an index
    assert class_index("1", ["10", "20"]) == 1
    many = [f"c{k}" for k in range(20)]
    with pytest.raises(UsageError, match=r"^Class 'x' is neither a class name \(c0, c1, .*, c9, \.\.\.\) nor an index "
                                         r"from 0 to 19\.$"):
        class_index("x", many)
    for value in ("3", "-1", "1.0", "", "Cat"):
        with pytest.raises(UsageError):
            class_index(value, CLASSES)
    with pytest.raises(UsageError, match="no classes"):
        class_index("0", [])


def test_folder_labels_name_the_classes_by_sorted_first_folder():
    labels, names = folder_labels(["b/x.png", "a/y/z.png", "top.png", "B/w.png"], "SRC")
    assert names == ["B", "a", "b"] and labels == [2, 1, None, 0]
    with pytest.raises(UsageError, match="one subfolder per class under SRC"):
        folder_labels(["a.png", "b.png"], "SRC")


BAD_FILES = [
    ("not json", "is not valid JSON"),
    ('{"labels": null}', 'must hold {"labels": [["path", class], ...]}'),
    ('{"labels": []}', "with at least one entry"),
    ('[["cat/0000.jpg", 1]]', 'must hold {"labels"'),
    ('{"labels": [["cat/0000.jpg"]]}', "entry 0: must be a [path, class] pair"),
    ('{"labels": [["cat/0000.jpg", 1], "dog/0000.jpg"]}', "entry 1: must be a [path, class] pair"),
    ('{"labels": [["cat/0000.jpg", -1]]}', "must be a non-negative integer, not -1"),
    ('{"labels": [["cat/0000.jpg", 1.0]]}', "must be a non-negative integer, not 1.0"),
    ('{"labels": [["cat/0000.jpg", "1"]]}', 'must be a non-negative integer, not "1"'),
    ('{"labels": [["cat/0000.jpg", true]]}', "must be a non-negative integer, not true"),
    ('{"labels": [["cat/0000.jpg", [0.5, 0.5]]]}', "must be a non-negative integer"),
    ('{"labels": [["/abs/cat.jpg", 1]]}', "must be relative to --src"),
    ('{"labels": [["../cat/0000.jpg", 1]]}', "must be relative to --src"),
    ('{"labels": [["cat/0000.jpg", 1], ["./cat/0000.jpg", 1]]}', "cat/0000.jpg is labelled twice"),
    ('{"labels": [["cat/0000.jpg", 1]], "class_names": "cat"}', "class_names must be a list"),
    ('{"labels": [["cat/0000.jpg", 1]], "class_names": ["a", "a"]}', "distinct non-empty strings"),
    ('{"labels": [["cat/0000.jpg", 2]], "class_names": ["a", "b"]}', "uses class 2, but its class_names name only 2"),
    ('{"labels": [["cat/0005.jpg", 1]]}', "names cat/0005.jpg, which is not an image under"),
    ('{"labels": [["cat/0005.jpg", 1], ["cat/0006.jpg", 1], ["cat/0000.jpg", 1]]}',
     "names cat/0005.jpg, which is not an image under {src} (nor are 1 more of its entries)."),
    ('{"labels": [["cat/notes.txt", 1]]}', "names cat/notes.txt, which is not an image under"),
]


@pytest.fixture(scope="module")
def small_src(tmp_path_factory) -> Path:
    src = make_src(tmp_path_factory.mktemp("small") / "src", {"cat": 1, "dog": 1})
    (src / "cat" / "notes.txt").write_text("not an image")
    return src


@pytest.mark.parametrize("text, words", BAD_FILES)
def test_a_malformed_labels_file_is_one_sentence_and_exit_2(small_src, tmp_path, capsys, text, words):
    (tmp_path / "labels.json").write_text(text)
    status, out, err = sgan_here(capsys, "prep", "images", "--src", small_src, "-r", tmp_path, "--resolution", 8,
                                 "--labels", tmp_path / "labels.json")
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sgan: Labels file {tmp_path / 'labels.json'}"), err
    assert words.replace("{src}", str(small_src)) in lines[0]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("labels, words", [
    ("missing.json", "Cannot read labels file {tmp}/missing.json: No such file or directory."),
    ("labels.csv", "--labels must be folders or a .json labels file, not '{tmp}/labels.csv'."),
    ("folder", "--labels must be folders or a .json labels file, not '{tmp}/folder'."),
])
def test_a_labels_flag_that_names_no_labels_file_is_exit_2(small_src, tmp_path, capsys, labels, words):
    status, _, err = sgan_here(capsys, "prep", "images", "--src", small_src, "-r", tmp_path, "--resolution", 8,
                               "--labels", tmp_path / labels)
    assert status == 2 and err.strip().splitlines() == ["sgan: " + words.format(tmp=tmp_path)]


def test_folders_with_no_class_folder_is_exit_2(tmp_path, capsys):
    src = make_src(tmp_path / "flat", {}, loose=2)
    status, _, err = sgan_here(capsys, "prep", "images", "--src", src, "-r", tmp_path, "--resolution", 8,
                               "--labels", "folders")
    assert status == 2 and err.strip().splitlines() == [
        f"sgan: --labels folders needs one subfolder per class under {src}, but its images lie directly in it."]
    assert not (tmp_path / "data").exists()


def test_class_on_an_unlabelled_dataset_is_exit_2(prepped, tmp_path, capsys):
    status, _, err = sgan_here(capsys, "data", "grid", "-r", prepped, "--out", tmp_path / "g.png", "--class", "0")
    path = prepped / "data" / "dataset.lmdb"
    assert status == 2 and err.strip().splitlines() == [
        f"sgan: The dataset {path} has no labels, so --class has nothing to choose from; prepare one with "
        "`sgan prep images --labels`."]
    assert not (tmp_path / "g.png").exists()


def test_bad_labels_lose_nothing_already_prepared(labelled, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(labelled / "data", run / "data")
    before = everything(dataset(run))
    (tmp_path / "bad.json").write_text('{"labels": [["cat/0000.jpg", -3]]}')
    status, _, _ = sgan_here(capsys, "prep", "images", "--src", dataset(run).meta["source"]["src"], "-r", run,
                             "--resolution", 16, "--labels", tmp_path / "bad.json", "--overwrite")
    assert status == 2
    assert everything(dataset(run)) == before


def write_old_dataset(path: Path, images: list[np.ndarray]) -> None:
    """A dataset as sgan wrote it before labels existed: format version 1, these keys and no others."""
    env = lmdb.open(str(path), map_size=1 << 24, subdir=True)
    sources = [{"source": f"{i}.png", "face": 0, "pixel_md5": pixel_md5(img)} for i, img in enumerate(images)]
    meta = {"format": "sgan-multires-lmdb", "version": 1, "resolutions": [4, 8], "count": len(images), "channels": 3,
            "encoding": {"4": "raw", "8": "raw"}, "source": {"kind": "images", "src": "/photos"},
            "landmark_backend": None, "fingerprint": "0" * 64, "created": "2025-01-01T00:00:00Z",
            "sgan_version": "0.1.0", "report": {"rejected": 0, "rejects_by_reason": {}},
            "settings": {"kind": "images", "src": "/photos", "resolution": 8, "max_pixels": 1 << 28}}
    with env.begin(write=True) as txn:
        for i, (img, source) in enumerate(zip(images, sources)):
            for res, level in build_levels(img).items():
                txn.put(f"img/{res}/{i:08d}".encode(), encode_level(level))
            txn.put(f"src/{i:08d}".encode(), json.dumps(source).encode())
        txn.put(b"prep/settings", json.dumps(meta["settings"]).encode())
        txn.put(b"meta", json.dumps(meta).encode())
    env.close()


def test_an_old_unlabelled_dataset_reads_as_unlabelled(tmp_path, capsys):
    images = [np.full((8, 8, 3), 40 * k, np.uint8) for k in range(3)]
    path = tmp_path / "old.lmdb"
    write_old_dataset(path, images)
    ds = Dataset(path)
    assert ds.class_names is None and ds.num_classes == 0 and ds.labels is None and ds.label(2) is None
    assert np.array_equal(ds.image(1, 8), images[1])
    del ds  # LMDB opens an environment once per process

    status, out, err = sgan_here(capsys, "data", "info", "-r", tmp_path, "--data", path, "--json")
    assert status == 0, err
    assert json.loads(out)["classes"] is None and json.loads(out)["count"] == 3
    status, out, err = sgan_here(capsys, "data", "export", "-r", tmp_path, "--data", path, "--out", tmp_path / "x")
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["00000.png", "00001.png", "00002.png", "index.jsonl"]
    status, _, err = sgan_here(capsys, "data", "grid", "-r", tmp_path, "--data", path, "--out", tmp_path / "g.png",
                               "--class", "0")
    assert status == 2 and "has no labels" in err


def test_an_unlabelled_prep_stores_no_labels_and_keeps_its_settings(tmp_path):
    """Without --labels the settings are those of every dataset made before labels, so those stay up to date."""
    src = make_src(tmp_path / "src", {"cat": 2}, loose=1)
    result = prep(src, tmp_path / "run")
    assert result.returncode == 0, result.stderr
    ds = dataset(tmp_path / "run")
    assert len(ds) == 3 and ds.class_names is None and ds.labels is None
    assert set(ds.meta["settings"]) == {"kind", "src", "resolution", "max_pixels"}
    assert all("label" not in s for s in ds.sources())
    path = ds.path
    del ds  # LMDB opens an environment once per process
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        assert txn.get(b"labels") is None
    env.close()


# `sgan ARGS` in which a stop signal arrives as input 65 is being read, and commits wait for 64 results.
STOP_AT_65 = """
import signal, sys
from stylegan_cli.cli.app import main
from stylegan_cli.core.signals import Stopped
from stylegan_cli.data import prep, prep_worker

def stopping(position):
    if position == 65:
        raise Stopped(signal.SIGTERM)
    return prep_worker.process(position)

prep.process, prep.COMMIT_SECONDS = stopping, float("inf")
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_labelled_prep_stopped_midway_resumes_with_its_labels_and_never_mixes_others(tmp_path, capsys):
    """A stop signal that arrives as input 65 of 72 is being read, after the 64 before were committed in one
    transaction (the time rule for commits is switched off, so that this holds on any machine)."""
    src = make_src(tmp_path / "src", {"airplane": 30, "cat": 30, "dog": 11})
    shutil.copy(CIFAR / "bird" / "0000.jpg", src / "zz_loose.jpg")  # the last input, a reject
    args = ["prep", "images", "--src", src, "--resolution", 8, "--workers", 1, "--labels", "folders"]

    run = tmp_path / "stopped"
    partial = run / "data" / "dataset.lmdb.partial"
    stopped = subprocess.run([sys.executable, "-c", STOP_AT_65, *map(str, args), "-r", str(run)], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "Interrupted after 64 of 72 inputs" in stopped.stderr and prep_position(partial) == 64

    (tmp_path / "bad.json").write_text('{"labels": [["cat/0000.jpg", "cat"]]}')
    status, _, _ = sgan_here(capsys, *[a if a != "folders" else tmp_path / "bad.json" for a in args], "-r", run)
    assert status == 2 and prep_position(partial) == 64  # a malformed file touches nothing
    other = tmp_path / "other"
    shutil.copytree(run / "data", other / "data")  # the same partial build, to rerun with other labels

    resumed = sgan(*args, "-r", run)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming: 64 of 72" in resumed.stderr
    reference = sgan(*args, "-r", tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr
    ds = dataset(run)
    assert everything(ds) == everything(dataset(tmp_path / "reference"))
    assert ds.labels.tolist() == [0] * 30 + [1] * 30 + [2] * 11
    assert list(rejects(run)) == ["zz_loose.jpg"] and not partial.exists()

    inputs = [s["source"] for s in ds.sources()]
    (tmp_path / "fives.json").write_text(json.dumps({"labels": [[rel, 5] for rel in inputs]}))
    relabelled = sgan(*[a if a != "folders" else tmp_path / "fives.json" for a in args], "-r", other)
    assert relabelled.returncode == 0, relabelled.stderr
    assert "Resuming" not in relabelled.stderr
    fives = dataset(other)
    assert fives.class_names == [str(k) for k in range(6)] and fives.labels.tolist() == [5] * 71
    assert [s["label"] for s in fives.sources()] == [5] * 71
