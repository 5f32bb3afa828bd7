"""Preemption as clusters deliver it, and damaged inputs (docs/design.md §10): a stop signal sent to every process
of the job at once (the main process, its DataLoader workers, every torchrun rank) ends in one checkpoint at
the position reached; a damaged newest checkpoint is set aside and training continues from the one before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, sgan

from stylegan_cli.model import checkpoint

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
TINY = ["--resolution", 16, "--fmap-base", 128, "--fmap-max", 32, "--batch", 8, "--tick", 0.008, "--snap", 100]


def _train(run: Path, data: Path, *extra) -> list[str]:
    return [str(a) for a in ("train", "-r", run, "--data", data, *TINY, *extra)]


def _signal_group_once_training(command: list[str], run: Path, signum: int = signal.SIGTERM):
    """Starts `command` in its own process group, waits for the first log line (training is under way and
    far from its end), then signals the whole group at once, as Slurm, `timeout` and Kubernetes do."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    log = run / "train" / "log.jsonl"
    deadline = time.monotonic() + 300
    while not (log.is_file() and log.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=300)
    return proc.returncode, stderr


@pytest.fixture(scope="module")
def data(prepped) -> Path:
    return prepped / "data" / "dataset.lmdb"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_to_the_whole_group_with_loader_workers_saves_one_checkpoint_and_resumes(tmp_path, data, signum):
    run = tmp_path / "run"
    status, stderr = _signal_group_once_training(
        [sys.executable, "-m", "stylegan_cli", *_train(run, data, "--kimg", 1000, "--workers", 2)], run, signum)
    assert status == 128 + signum, stderr
    assert "internal error" not in stderr and stderr.count("saved ") == 1
    reached = checkpoint.load(checkpoint.latest(run))["nimg"]
    assert reached > 0 and f"Stopped at kimg {reached / 1000:.3f}" in stderr
    resumed = sgan(*_train(run, data, "--kimg", reached / 1000 + 0.016, "--workers", 2))
    assert resumed.returncode == 0 and "Resuming from" in resumed.stderr, resumed.stderr


@pytest.mark.slow
def test_a_signal_to_every_torchrun_rank_at_once_saves_one_checkpoint(tmp_path, data):
    """torchrun's own agent gets the signal too and reports it in its exit status and log; the ranks agree on
    the step, rank 0 saves once, and the run resumes."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
               "-m", "stylegan_cli", *_train(run, data, "--kimg", 1000, "--workers", 1)]
    status, stderr = _signal_group_once_training(command, run)
    assert status != 0
    assert stderr.count("saved ") == 1 and "(stopped by SIGTERM)" in stderr
    assert "sgan: internal error" not in stderr and "is killed by signal" not in stderr
    reached = checkpoint.load(checkpoint.latest(run))["nimg"]
    assert reached > 0
    resumed = sgan(*_train(run, data, "--kimg", reached / 1000 + 0.016, "--workers", 0))
    assert resumed.returncode == 0 and "Resuming from" in resumed.stderr, resumed.stderr


@pytest.mark.slow
def test_training_sets_a_damaged_newest_checkpoint_aside_and_continues_from_the_one_before(tmp_path, data):
    run = tmp_path / "run"
    first = sgan(*_train(run, data, "--kimg", 0.008, "--workers", 0))
    assert first.returncode == 0, first.stderr
    older = checkpoint.latest(run)
    newest = older.with_name("ckpt-0000001.pt")  # a newer checkpoint, cut short (a full disk, a partial copy)
    whole = older.read_bytes()
    newest.write_bytes(whole[: len(whole) // 2])
    (older.parent / "latest").unlink()
    (older.parent / "latest").symlink_to(newest.name)

    reader = sgan("sample", "-r", run, "--seeds", "0")
    assert reader.returncode == 1
    assert str(newest) in reader.stderr and f"--ckpt {older}" in reader.stderr

    resumed = sgan(*_train(run, data, "--kimg", 0.016, "--workers", 0))
    assert resumed.returncode == 0, resumed.stderr
    assert f"Set aside as {newest}.damaged" in resumed.stderr and f"continuing from {older}" in resumed.stderr
    assert (newest.parent / f"{newest.name}.damaged").read_bytes() == whole[: len(whole) // 2]  # kept, not deleted
    assert checkpoint.load(checkpoint.latest(run))["nimg"] == 16


def test_when_every_checkpoint_is_damaged_training_stops_and_touches_nothing(tmp_path, data):
    run = tmp_path / "run"
    assert sgan(*_train(run, data, "--kimg", 0.008, "--workers", 0)).returncode == 0
    (only,) = run.glob("checkpoints/ckpt-*.pt")
    only.write_bytes(b"not a checkpoint")
    again = sgan(*_train(run, data, "--kimg", 0.016, "--workers", 0))
    assert again.returncode == 1 and "no older checkpoint" in again.stderr and only.is_file()


def test_a_truncated_dataset_is_one_sentence_not_a_crash(tmp_path, data):
    copy = tmp_path / "dataset.lmdb"
    copy.mkdir()
    whole = (data / "data.mdb").read_bytes()
    (copy / "data.mdb").write_bytes(whole[: len(whole) // 3])
    result = sgan(*_train(tmp_path / "run", copy, "--kimg", 0.008, "--workers", 0))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"sgan: The dataset {copy} is damaged")
