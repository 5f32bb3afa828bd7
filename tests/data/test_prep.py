"""`sgan prep`: photos in, a multi-resolution LMDB out, whatever the photos and however it is stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FACES, REPO, prep_position, sgan
from PIL import Image

from stylegan_cli.data.dataset import Dataset

PHOTOS = sorted(FACES.glob("*.jpg"))


def records(path: Path) -> list[tuple]:
    """Everything a dataset holds per image, for comparing two datasets exactly."""
    ds = Dataset(path)
    return [(ds.source(i), {r: ds.image(i, r).tobytes() for r in ds.resolutions}) for i in range(len(ds))]


def test_prep_writes_every_level_and_its_reports(prepped):
    data = prepped / "data"
    ds = Dataset(data / "dataset.lmdb")
    assert len(ds) == len(PHOTOS)
    assert ds.resolutions == [4, 8, 16, 32, 64]
    assert [ds.source(i)["source"] for i in range(len(ds))] == [p.name for p in PHOTOS]
    report = json.loads((data / "prep.json").read_text())
    assert report["inputs"] == report["images"] == len(PHOTOS) and report["rejected"] == 0
    assert report["settings"]["landmarks"] == "dlib" and report["versions"]["dlib-bin"]
    assert (data / "rejects.jsonl").read_text() == ""
    first = json.loads((prepped / "history.jsonl").read_text().splitlines()[0])  # later tests add lines
    assert first["exit_status"] == 0 and "prep" in first["command"]
    assert str(data / "dataset.lmdb") in first["outputs"]


def test_each_level_is_the_2x2_box_average_of_the_next(prepped):
    ds = Dataset(prepped / "data" / "dataset.lmdb")
    for i in range(len(ds)):
        for lo, hi in zip(ds.resolutions, ds.resolutions[1:]):
            fine = ds.image(i, hi).astype(np.uint16)
            expected = (fine[0::2, 0::2] + fine[1::2, 0::2] + fine[0::2, 1::2] + fine[1::2, 1::2] + 2) // 4
            assert np.array_equal(ds.image(i, lo), expected), (i, lo)


def test_stdout_carries_only_the_paths_written(tmp_path):
    result = sgan("prep", "images", "--src", FACES, "-r", tmp_path, "--resolution", 16, "--workers", 1)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [str(tmp_path / "data" / name) for name in ("dataset.lmdb", "prep.json", "rejects.jsonl")]
    assert "8 images from 8 inputs" in result.stderr


def test_images_mode_centre_crops_and_resizes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 200  # the centre square is uniform grey; the sides are black
    Image.fromarray(wide).save(src / "wide.png")
    result = sgan("prep", "images", "--src", src, "-r", tmp_path / "run", "--resolution", 8, "--workers", 1)
    assert result.returncode == 0, result.stderr
    img = Dataset(tmp_path / "run" / "data" / "dataset.lmdb").image(0, 8)
    assert img.shape == (8, 8, 3) and (img == 200).all()


def test_many_workers_write_the_same_dataset_as_one(tmp_path, prepped):
    result = sgan("prep", "ffhq", "--src", FACES, "-r", tmp_path, "--landmarks", "dlib", "--resolution", 64,
                  "--workers", 2)
    assert result.returncode == 0, result.stderr
    assert records(tmp_path / "data" / "dataset.lmdb") == records(prepped / "data" / "dataset.lmdb")
    assert Dataset(tmp_path / "data" / "dataset.lmdb").meta["fingerprint"] == \
        Dataset(prepped / "data" / "dataset.lmdb").meta["fingerprint"]


@pytest.mark.slow
def test_a_prep_killed_midway_resumes_to_the_same_dataset(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for copy in range(4):  # 32 inputs, so the run lasts long enough to be killed in the middle
        for photo in PHOTOS:
            shutil.copy(photo, src / f"{copy}_{photo.name}")
    (src / "broken.jpg").write_bytes(PHOTOS[0].read_bytes()[:5000])
    args = ["prep", "ffhq", "--src", src, "--landmarks", "dlib", "--resolution", 32, "--workers", 1]

    reference = sgan(*args, "-r", tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr

    run = tmp_path / "interrupted"
    partial = run / "data" / "dataset.lmdb.partial"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "stylegan_cli", *map(str, args), "-r", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while prep_position(partial) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = prep_position(partial)
    assert 0 < done < 33, "the kill should land while the prep is under way"
    assert not (run / "data" / "dataset.lmdb").exists()

    resumed = sgan(*args, "-r", run)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming: {done} of 33" in resumed.stderr
    assert records(run / "data" / "dataset.lmdb") == records(tmp_path / "reference" / "data" / "dataset.lmdb")
    rejects = (run / "data" / "rejects.jsonl").read_text().splitlines()
    assert [json.loads(line)["source"] for line in rejects] == ["broken.jpg"]
    assert not partial.exists()


@pytest.mark.parametrize("signum, last_line", [
    (signal.SIGTERM, "Interrupted after {done} of 73 inputs; run the same command again to resume."),
    (signal.SIGUSR1, "Interrupted after {done} of 73 inputs; run the same command again to resume."),
    (signal.SIGINT, "sgan: interrupted."),
])
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_signal_keeps_what_was_committed_and_exits_128_plus_its_number(tmp_path, prepped, signum, last_line,
                                                                              workers):
    """Input 65 of 73 is a named pipe, which the prep cannot get past on any machine until something
    writes to it; so once it has committed any of the 64 before, a signal is sure to find it at work.
    With worker processes the signal goes to the whole process group at once, as clusters send it: the
    workers leave it to the parent, which stops the same way."""
    src = tmp_path / "src"
    src.mkdir()
    for photo in PHOTOS:
        shutil.copy(photo, src / photo.name)
    os.mkfifo(src / "pipe.jpg")
    faces = list(json.loads((prepped / "data" / "landmarks.json").read_text()).values())  # one per photo, in order
    pipe = {"in_the_wild": {"file_path": "pipe.jpg", "face_landmarks": faces[0]["in_the_wild"]["face_landmarks"]}}
    (tmp_path / "landmarks.json").write_text(json.dumps(faces * 8 + [pipe] + faces))
    args = ["prep", "ffhq", "--src", src, "--landmarks", tmp_path / "landmarks.json", "--resolution", 8,
            "--workers", workers]

    run = tmp_path / "stopped"
    partial = run / "data" / "dataset.lmdb.partial"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Python raises KeyboardInterrupt only where SIGINT is not ignored at start-up, as it is in background jobs.
    proc = subprocess.Popen([sys.executable, "-m", "stylegan_cli", *map(str, args), "-r", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while prep_position(partial) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None and prep_position(partial) > 0, "the prep should be waiting on the pipe"
        os.killpg(proc.pid, signum) if workers > 1 else proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    done = prep_position(partial)
    assert proc.returncode == 128 + signum, stderr
    assert 0 < done <= 64 and not (run / "data" / "dataset.lmdb").exists()
    assert f"Interrupted after {done} of 73 inputs" in stderr
    assert stderr.strip().splitlines()[-1] == last_line.format(done=done)
    history = json.loads((run / "history.jsonl").read_text().splitlines()[-1])
    assert history["exit_status"] == 128 + signum

    (src / "pipe.jpg").unlink()
    shutil.copy(PHOTOS[0], src / "pipe.jpg")
    resumed = sgan(*args, "-r", run)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming: {done} of 73" in resumed.stderr
    reference = sgan(*args, "-r", tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr
    assert records(run / "data" / "dataset.lmdb") == records(tmp_path / "reference" / "data" / "dataset.lmdb")


def test_every_kind_of_bad_input_lands_in_rejects(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = PHOTOS[0].read_bytes()
    shutil.copy(PHOTOS[0], src / "a_good.jpg")
    (src / "b_truncated.jpg").write_bytes(good[: len(good) // 2])
    (src / "c_text.jpg").write_text("not a photo at all")
    (src / "d_dangling.png").symlink_to(tmp_path / "deleted.png")  # its target is gone
    Image.new("RGB", (300, 300), (128, 128, 128)).save(src / "e_wall.png")  # no face in it
    Image.new("RGB", (4000, 3000)).save(src / "f_huge.png")
    args = ["prep", "ffhq", "--src", src, "-r", tmp_path / "run", "--landmarks", "dlib", "--resolution", 32,
            "--max-pixels", 10_000_000, "--workers", 1]
    result = sgan(*args)
    assert result.returncode == 0, result.stderr
    rejects = {r["source"]: r for r in map(json.loads, (tmp_path / "run/data/rejects.jsonl").read_text().splitlines())}
    assert {name: r["reason"] for name, r in rejects.items()} == {
        "b_truncated.jpg": "truncated",
        "c_text.jpg": "not an image",
        "d_dangling.png": "unreadable",
        "e_wall.png": "no face",
        "f_huge.png": "too large",
    }
    assert all(r["detail"] for r in rejects.values())
    report = json.loads((tmp_path / "run/data/prep.json").read_text())
    assert report["images"] == 1 and report["rejected"] == 5

    small = sgan("prep", "ffhq", "--src", FACES, "-r", tmp_path / "small", "--landmarks", "dlib",
                 "--resolution", 32, "--min-face", 5000, "--workers", 1)
    assert small.returncode == 1
    assert small.stderr.strip().splitlines()[-1].startswith("sgan: Every input was rejected")
    reasons = {json.loads(line)["reason"] for line in (tmp_path / "small/data/rejects.jsonl").read_text().splitlines()}
    assert reasons == {"face too small"}


@pytest.mark.parametrize("args, words", [
    (["--resolution", 100], "power of two"),
    (["--resolution", 2048], "power of two"),
    (["--resolution", 4], "power of two"),
    (["--landmarks", "retina"], "--landmarks"),
    (["--faces", "some"], "--faces"),
    (["--workers", 0], "--workers"),
])
@pytest.mark.slow
def test_usage_errors_exit_2_with_one_sentence(tmp_path, args, words):
    result = sgan("prep", "ffhq", "--src", FACES, "-r", tmp_path, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "dataset.lmdb").exists()


def test_a_missing_source_folder_is_a_usage_error(tmp_path):
    result = sgan("prep", "images", "--src", tmp_path / "nowhere", "-r", tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr


@pytest.mark.slow
def test_a_finished_dataset_is_kept_unless_overwrite_is_given(tmp_path):
    args = ["prep", "images", "--src", FACES, "-r", tmp_path, "--workers", 1]
    assert sgan(*args, "--resolution", 8).returncode == 0
    again = sgan(*args, "--resolution", 8)
    assert again.returncode == 0 and "up to date" in again.stderr
    other = sgan(*args, "--resolution", 16)
    assert other.returncode == 2 and "--overwrite" in other.stderr
    assert Dataset(tmp_path / "data" / "dataset.lmdb").resolutions[-1] == 8
    replaced = sgan(*args, "--resolution", 16, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert Dataset(tmp_path / "data" / "dataset.lmdb").resolutions[-1] == 16


@pytest.mark.slow
def test_a_landmarks_file_reproduces_the_dataset_and_counts_md5_matches(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for photo in PHOTOS[:2]:
        shutil.copy(photo, src / photo.name)
    first = sgan("prep", "ffhq", "--src", src, "-r", tmp_path / "a", "--landmarks", "dlib", "--resolution", 1024,
                 "--workers", 1)
    assert first.returncode == 0, first.stderr
    landmarks = tmp_path / "a" / "data" / "landmarks.json"
    entries = json.loads(landmarks.read_text())
    assert [e["in_the_wild"]["file_path"] for e in entries.values()] == [p.name for p in PHOTOS[:2]]
    assert all(len(e["in_the_wild"]["face_landmarks"]) == 68 for e in entries.values())

    again = sgan("prep", "ffhq", "--src", src, "-r", tmp_path / "b", "--landmarks", landmarks, "--resolution", 1024,
                 "--workers", 1, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["pixel_md5"] == {"checked": 2, "matched": 2}
    assert "2 of 2 match FFHQ's pixel_md5" in again.stderr

    exact = sgan("prep", "ffhq", "--src", src, "-r", tmp_path / "c", "--landmarks", landmarks, "--resolution", 1024,
                 "--workers", 1, "--exact", "--json")
    assert exact.returncode == 0, exact.stderr
    assert json.loads(exact.stdout)["pixel_md5"] == {"checked": 2, "matched": 0}  # other resampling, other bytes


def test_all_faces_gives_one_image_per_face(tmp_path):
    left, right = (np.asarray(Image.open(p).convert("RGB").resize((500, 500))) for p in PHOTOS[:2])
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.concatenate([left, right], axis=1)).save(src / "pair.png")
    for faces, expected in (("largest", 1), ("all", 2)):
        result = sgan("prep", "ffhq", "--src", src, "-r", tmp_path / faces, "--landmarks", "dlib", "--resolution", 32,
                      "--faces", faces, "--min-face", 50, "--workers", 1)
        assert result.returncode == 0, result.stderr
        ds = Dataset(tmp_path / faces / "data" / "dataset.lmdb")
        assert [ds.source(i)["face"] for i in range(len(ds))] == list(range(expected))


def test_a_detector_that_cannot_start_in_the_workers_fails_fast(tmp_path):
    """A worker pool would restart a worker whose start-up fails, forever; prep must stop instead."""
    result = sgan("prep", "ffhq", "--src", FACES, "-r", tmp_path, "--landmarks", "dlib", "--workers", 2,
                  env={"SGAN_DLIB_LANDMARKS": str(tmp_path / "missing.dat")}, timeout=120)
    assert result.returncode == 2
    assert "missing.dat" in result.stderr.splitlines()[-1]
