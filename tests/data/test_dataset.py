"""`sgan data`: what a user sees of a prepared dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
from conftest import sgan
from PIL import Image

from stylegan_cli.data.dataset import Dataset


def test_info_reports_the_dataset(prepped):
    result = sgan("data", "info", "-r", prepped, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    ds = Dataset(prepped / "data" / "dataset.lmdb")
    assert info["count"] == 8 and info["resolutions"] == [4, 8, 16, 32, 64]
    assert info["encoding"]["64"] == "raw" and info["channels"] == 3
    assert info["fingerprint"] == ds.meta["fingerprint"] and len(info["fingerprint"]) == 64
    assert info["landmark_backend"] == "dlib" and info["rejected"] == 0
    table = sgan("data", "info", "-r", prepped)
    assert table.returncode == 0 and info["fingerprint"][:16] in table.stdout


def test_export_writes_pngs_named_by_index_and_an_index(prepped, tmp_path):
    out = tmp_path / "export"
    result = sgan("data", "export", "-r", prepped, "--resolution", 32, "--out", out, "--limit", 3)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(out / f"{i:05d}.png") for i in range(3)] + [str(out / "index.jsonl")]
    ds = Dataset(prepped / "data" / "dataset.lmdb")
    for i in range(3):
        assert np.array_equal(np.asarray(Image.open(out / f"{i:05d}.png")), ds.image(i, 32))
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert rows == [{"index": i, "source": ds.source(i)["source"], "face": 0} for i in range(3)]


def test_grid_tiles_the_images(prepped, tmp_path):
    out = tmp_path / "grid.png"
    result = sgan("data", "grid", "-r", prepped, "--resolution", 16, "--out", out, "--count", 6)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert Image.open(out).size == (3 * 16 + 2 * 2, 2 * 16 + 1 * 2)  # 3 columns, 2 rows, 2-pixel gaps


def test_data_flag_reads_a_dataset_outside_the_run(prepped, tmp_path):
    shared = tmp_path / "shared.lmdb"
    shutil.copytree(prepped / "data" / "dataset.lmdb", shared)
    result = sgan("data", "info", "-r", tmp_path / "other-run", "--data", shared, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["count"] == 8


def test_missing_dataset_or_level_is_one_clear_sentence(prepped, tmp_path):
    missing = sgan("data", "info", "-r", tmp_path)
    assert missing.returncode == 2 and "sgan prep" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    level = sgan("data", "grid", "-r", prepped, "--resolution", 128, "--out", tmp_path / "g.png")
    assert level.returncode == 2 and "no 128x128 level" in level.stderr
    assert not (tmp_path / "g.png").exists()


def test_the_dataset_reads_in_dataloader_worker_processes(prepped):
    """Forked or spawned workers, after the parent itself has read, each open their own LMDB handle."""
    import torch

    from stylegan_cli.data.dataset import LevelImages

    ds = Dataset(prepped / "data" / "dataset.lmdb")
    expected = np.stack([ds.image(i, 16) for i in range(len(ds))]).transpose(0, 3, 1, 2)  # the parent reads first
    batches = [[(i, False) for i in range(j, min(j + 3, len(ds)))] for j in range(0, len(ds), 3)]
    for context in ("fork", "spawn"):
        loader = torch.utils.data.DataLoader(LevelImages(ds, 16), batch_sampler=batches, num_workers=2,
                                             multiprocessing_context=context)
        assert np.array_equal(torch.cat(list(loader)).numpy(), expected), context
