"""`sgan train`'s TensorBoard logging (training/tensorboard.py), read back by tensorboard's own reader."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, sgan
from PIL import Image

from stylegan_cli.training.tensorboard import FAKES_TAG, OFF, metric_tag, scalar_tag

EventAccumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator").EventAccumulator

# Four ticks of 8 images at 16x16 from the start, a fakes grid every second tick, swd16 every 16 images.
ARGS = ["--no-progressive", "--fmap-base", 128, "--fmap-max", 32, "--resolution", 16, "--workers", 0, "--batch", 8,
        "--tick", 0.008, "--image-ticks", 2, "--metrics", "swd16", "--metrics-every", 0.016]


@pytest.fixture(scope="module")
def data(prepped) -> Path:
    return prepped / "data" / "dataset.lmdb"


def train(run: Path, data: Path, kimg: float, env: dict | None = None):
    result = sgan("train", "-r", run, "--data", data, "--kimg", kimg, *ARGS, env=env)
    assert result.returncode == 0, result.stderr
    return result


def read_board(run: Path):
    board = EventAccumulator(str(run / "train" / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    board.Reload()
    return board


@pytest.mark.slow
def test_ticks_fakes_and_metrics_go_to_tensorboard_and_a_resumed_run_appends(tmp_path, data):
    run = tmp_path / "run"
    first = train(run, data, 0.032)
    assert OFF not in first.stderr
    train(run, data, 0.048)  # resumes from the checkpoint at 32 images
    assert len(list((run / "train" / "tensorboard").glob("events.out.tfevents.*"))) == 2
    board = read_board(run)
    tags = board.Tags()

    lines = [json.loads(line) for line in (run / "train" / "log.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == [0.008, 0.016, 0.024, 0.032, 0.040, 0.048]
    numeric = [k for k, v in lines[0].items() if isinstance(v, (int, float))]
    assert {"kimg", "loss_G", "loss_D", "r1", "lr", "sec_per_kimg", "img_per_sec", "memory_gib", "resolution",
            "alpha"} <= set(numeric)
    assert "time" not in numeric
    for key in numeric:
        assert scalar_tag(key) in tags["scalars"], key
        events = board.Scalars(scalar_tag(key))
        assert [e.step for e in events] == [round(line["kimg"] * 1000) for line in lines], key
        assert [e.value for e in events] == pytest.approx([line[key] for line in lines], rel=1e-6), key

    results = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert results
    for name in {r["metric"] for r in results}:
        mine = [r for r in results if r["metric"] == name]
        events = board.Scalars(metric_tag(name))
        assert [e.step for e in events] == [round(r["kimg"] * 1000) for r in mine] == [16, 32, 48]
        assert [e.value for e in events] == pytest.approx([r["value"] for r in mine], rel=1e-6)

    # A grid every second tick and at the end; for runs this short every grid is fakes-0000000.png,
    # so the file holds the last one.
    images = board.Images(FAKES_TAG)
    assert [e.step for e in images] == [16, 32, 48]
    last = np.asarray(Image.open(io.BytesIO(images[-1].encoded_image_string)).convert("RGB"))
    assert np.array_equal(last, np.asarray(Image.open(run / "train" / "fakes-0000000.png").convert("RGB")))
    assert all(e.width == last.shape[1] and e.height == last.shape[0] for e in images)


def test_without_tensorboard_training_still_works_and_says_so_once(tmp_path, data):
    shim = tmp_path / "shim"
    (shim / "tensorboard").mkdir(parents=True)
    (shim / "tensorboard" / "__init__.py").write_text("raise ImportError('tensorboard is hidden by the test')\n")
    run = tmp_path / "run"
    result = train(run, data, 0.016, env={"PYTHONPATH": os.pathsep.join([str(shim), str(REPO)])})
    assert result.stderr.count(OFF) == 1
    assert len((run / "train" / "log.jsonl").read_text().splitlines()) == 2
    assert (run / "train" / "fakes-0000000.png").is_file()
    assert not (run / "train" / "tensorboard").exists()
