"""`sgan train`: the schedule, learning, exact resume, preemption and multi-process training, on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, sgan, sgan_here

from stylegan_cli.data.dataset import Dataset
from stylegan_cli.model import checkpoint
from stylegan_cli.model.generator import Generator
from stylegan_cli.training.config import TrainConfig
from stylegan_cli.training.schedule import phase
from stylegan_cli.training.stream import ImageStream

# A model small enough to train for a few hundred steps on two CPU cores.
TINY = ["--fmap-base", 128, "--fmap-max", 32, "--resolution", 16, "--workers", 0, "--tick", 0.064,
        "--image-ticks", 1]


def train_args(run: Path, data: Path, *extra) -> list:
    return ["train", "-r", run, "--data", data, *TINY, *extra]


@pytest.fixture(scope="module")
def data(prepped) -> Path:
    return prepped / "data" / "dataset.lmdb"


def final_state(run: Path) -> dict:
    return checkpoint.load(checkpoint.latest(run))


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- the schedule ------------------------------------------------------------------------------


def test_schedule_stabilises_the_first_level_then_fades_in_each_next_one():
    cfg = TrainConfig(resolution=32, lod_kimg=1.0)
    assert phase(0, cfg, start=8) == (8, 1.0)
    assert phase(999, cfg, start=8) == (8, 1.0)
    assert phase(1000, cfg, start=8) == (16, 0.0)
    assert phase(1500, cfg, start=8) == (16, 0.5)
    assert phase(2000, cfg, start=8) == (16, 1.0)
    assert phase(2999, cfg, start=8) == (16, 1.0)
    assert phase(3250, cfg, start=8) == (32, 0.25)
    assert phase(10**7, cfg, start=8) == (32, 1.0)
    flat = TrainConfig(resolution=32, lod_kimg=1.0, progressive=False)
    assert phase(0, flat, start=8) == phase(1500, flat, start=8) == (32, 1.0)


def test_image_stream_is_the_same_however_it_is_cut():
    stream = ImageStream(n=10, seed=3, mirror=True)
    whole = stream.take(0, 35)
    pieces = ImageStream(10, 3, True).take(0, 7) + ImageStream(10, 3, True).take(7, 28)
    assert whole == pieces
    for epoch in range(3):  # every epoch shows every image exactly once
        assert sorted(i for i, _ in whole[epoch * 10 : epoch * 10 + 10]) == list(range(10))
    assert any(f for _, f in whole) and not any(f for _, f in ImageStream(10, 3, False).take(0, 35))


# --- the command -------------------------------------------------------------------------------


def test_dry_run_prints_the_configuration_and_parameter_counts(tmp_path, data):
    result = sgan(*train_args(tmp_path, data, "--dry-run", "--json"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["config"]["resolution"] == 16 and summary["config"]["arch"] == "stylegan"
    assert summary["levels"] == [8, 16]
    G = Generator("stylegan", 16, fmap_base=128, fmap_max=32)
    assert summary["parameters"]["G"] == sum(p.numel() for p in G.parameters())
    assert not (tmp_path / "checkpoints").exists()


def test_a_resolution_above_the_dataset_is_a_usage_error(tmp_path, data):
    result = sgan("train", "-r", tmp_path, "--data", data, "--resolution", 128, "--dry-run")
    assert result.returncode == 2 and "above the dataset's largest level" in result.stderr


@pytest.mark.slow
def test_a_tiny_model_learns_the_data(tmp_path, data):
    """After a short training the samples are much closer to the data than the untrained
    generator's, by the sliced Wasserstein distance between 16x16 images."""
    result = sgan(*train_args(tmp_path, data, "--kimg", 4, "--lod-kimg", 0.5, "--batch", 16, "--lr", 0.003,
                              "--mirror", "--snap", 1, "--keep", 2, "--ema-kimg", 0.2), timeout=900)
    assert result.returncode == 0, result.stderr
    state = final_state(tmp_path)
    torch.manual_seed(0)
    G = Generator("stylegan", 16, fmap_base=128, fmap_max=32)
    untrained = {k: v.clone() for k, v in G.state_dict().items()}
    G.load_state_dict(state["G_ema"])
    reals = np.stack([Dataset(data).image(i, 16) for i in range(8)]).astype(np.float32) / 127.5 - 1
    reals = np.concatenate([reals, reals[:, :, ::-1]])  # the mirrored data it saw

    def swd(model_state) -> float:
        G.load_state_dict(model_state)
        with torch.no_grad():
            fakes = G(torch.randn(256, G.z_dim, generator=torch.Generator().manual_seed(0)), noise_mode="const")
        return sliced_wasserstein(fakes.permute(0, 2, 3, 1).numpy().reshape(256, -1), reals.reshape(16, -1))

    before, after = swd(untrained), swd(state["G_ema"])
    assert after < 0.7 * before, (before, after)  # measured: 1.35 -> 0.76
    log = [json.loads(line) for line in (tmp_path / "train" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["kimg"] == pytest.approx(4.0, abs=0.02) and log[-1]["resolution"] == 16
    assert {"loss_G", "loss_D", "r1", "sec_per_kimg", "img_per_sec", "memory_gib", "alpha", "lr"} <= log[-1].keys()
    assert sorted((tmp_path / "train").glob("fakes-*.png"))
    assert [p.name for p in sorted((tmp_path / "checkpoints").glob("ckpt-*.pt"))] == ["ckpt-0000003.pt",
                                                                                       "ckpt-0000004.pt"]


@pytest.mark.slow
def test_the_moving_average_ramps_up_to_follow_the_generator(tmp_path, data, capsys):
    """With its half-life capped at 5% of the images seen (StyleGAN2-ADA), G's moving average takes on the
    data's mean colour within a kimg; with the papers' constant 10k images it still shows the untrained
    network's colour."""
    reals = np.stack([Dataset(data).image(i, 16) for i in range(8)]).astype(np.float32) / 127.5 - 1
    data_colour = torch.from_numpy(reals.mean(axis=(0, 1, 2)))

    def colour_distance(config: dict, weights: dict | None) -> float:
        torch.manual_seed(config["seed"])  # the trainer's initial weights
        G = checkpoint.build_generator(config)
        if weights is not None:
            G.load_state_dict(weights)
        with torch.no_grad():
            fakes = G(torch.randn(64, G.z_dim, generator=torch.Generator().manual_seed(0)), noise_mode="const")
        return float((fakes.mean(dim=(0, 2, 3)) - data_colour).norm())

    distance = {}
    for rampup in (0.05, 0):
        run = tmp_path / str(rampup)
        code, _, err = sgan_here(capsys, *train_args(run, data, "--kimg", 1, "--batch", 16, "--no-progressive",
                                                     "--ema-rampup", rampup, "--tick", 1))
        assert code == 0, err
        state = final_state(run)
        distance["untrained"] = colour_distance(state["config"], None)
        distance[rampup] = colour_distance(state["config"], state["G_ema"])
    # measured: 3.9 untrained, 0.75 with the ramp-up, 3.8 without
    assert distance[0.05] < 0.5 * distance["untrained"] and distance[0.05] < 0.5 * distance[0], distance


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, projections: int = 128) -> float:
    """Mean over random directions of the 1-D Wasserstein distance between the projected sets."""
    rng = np.random.default_rng(0)
    dirs = rng.standard_normal((a.shape[1], projections))
    dirs /= np.linalg.norm(dirs, axis=0)
    qs = np.linspace(0, 1, 65)
    pa, pb = a @ dirs, b @ dirs
    return float(np.mean(np.abs(np.quantile(pa, qs, axis=0) - np.quantile(pb, qs, axis=0))))


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_resumes_bitwise(tmp_path, data):
    args = ["--kimg", 0.4, "--lod-kimg", 0.1, "--batch", 8, "--snap", 0.1, "--seed", 7]
    reference = sgan(*train_args(tmp_path / "a", data, *args))
    assert reference.returncode == 0, reference.stderr

    run = tmp_path / "b"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "stylegan_cli", *map(str, train_args(run, data, *args))], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / "train" / "log.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    stopped = final_state(run)  # a usable checkpoint, loaded without running code
    assert 0 < stopped["nimg"] < 400

    resumed = sgan(*train_args(run, data, *args))
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in resumed.stderr
    a, b = final_state(tmp_path / "a"), final_state(run)
    assert a["nimg"] == b["nimg"] == 400
    for net in ("G", "D", "G_ema"):
        assert_same_tensors(a[net], b[net])


@pytest.mark.slow
@pytest.mark.parametrize("aug", [[], ["--aug", "fixed", "--p", 0.5]], ids=["plain", "augmented"])
def test_two_gloo_processes_train_like_one(tmp_path, data, aug):
    """The same global batch split over two processes gives the same losses at every step (to a few 1e-4,
    what three steps make of floating-point reordering) and the same networks up to that reordering.
    (Adam's per-element normalisation makes weights
    with near-zero gradients move by up to about lr per step, either way, on such noise: a 1-process
    run with another thread count differs as much, so weights are compared with that in mind: D to 3 steps
    of lr 0.001, G's moving average, which follows G from the start (its ramp-up), to 3 steps each way.)
    Augmented, each process applies its share of the draws made for the global batch (training/augment.py)."""
    args = ["--kimg", 0.024, "--lod-kimg", 0.032, "--batch", 8, "--snap", 1, "--seed", 3, "--tick", 0.008, *aug]
    single = sgan(*train_args(tmp_path / "one", data, *args))
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    double = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone", "-m",
         "stylegan_cli", *map(str, train_args(tmp_path / "two", data, *args))],
        env=env, capture_output=True, text=True, timeout=600)
    assert double.returncode == 0, double.stderr
    logs = [[json.loads(line) for line in (tmp_path / run / "train" / "log.jsonl").read_text().splitlines()]
            for run in ("one", "two")]
    assert len(logs[0]) == len(logs[1]) == 3
    for a, b in zip(*logs):
        for key in ("loss_D", "loss_G", "r1"):
            assert b[key] == pytest.approx(a[key], rel=3e-4, abs=1e-5), (a["kimg"], key)
    one, two = final_state(tmp_path / "one"), final_state(tmp_path / "two")
    assert one["nimg"] == two["nimg"] == 24
    for net, atol in (("D", 3e-3), ("G_ema", 1e-2)):
        for key, value in one[net].items():
            torch.testing.assert_close(two[net][key], value, rtol=0, atol=atol, msg=f"{net}.{key}")


@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, data):
    first = sgan(*train_args(tmp_path, data, "--kimg", 0.064, "--batch", 8, "--snap", 0.064))
    assert first.returncode == 0, first.stderr
    good = checkpoint.latest(tmp_path)
    blown = sgan(*train_args(tmp_path, data, "--kimg", 2, "--batch", 8, "--lr", 1e30, "--snap", 2))
    assert blown.returncode == 1
    assert "non-finite" in blown.stderr.splitlines()[-1] and "Traceback" not in blown.stderr
    assert checkpoint.latest(tmp_path) == good
    assert final_state(tmp_path)["nimg"] == 64


@pytest.mark.parametrize("first, then, message", [
    ([], ["--arch", "stylegan2"], "--arch stylegan"),
    (["--arch", "stylegan2"], ["--arch", "stylegan2", "--d-arch", "resnet"], "--d-arch orig"),
])
@pytest.mark.slow
def test_resuming_with_another_architecture_is_refused(tmp_path, data, first, then, message):
    assert sgan(*train_args(tmp_path, data, "--kimg", 0.016, "--batch", 8, *first)).returncode == 0
    other = sgan(*train_args(tmp_path, data, "--kimg", 0.032, "--batch", 8, *then))
    assert other.returncode == 2 and message in other.stderr


def test_a_checkpoint_from_before_the_stylegan2_designs_resumes(tmp_path, data, capsys):
    """A configuration stored without g_arch and d_arch (and ema_rampup) is one of the original networks."""
    code, _, err = sgan_here(capsys, *train_args(tmp_path, data, "--kimg", 0.016, "--batch", 8))
    assert code == 0, err
    path = checkpoint.latest(tmp_path)
    state = checkpoint.load(path)
    for key in ("g_arch", "d_arch", "ema_rampup"):
        del state["config"][key]
    torch.save(state, path)
    code, _, err = sgan_here(capsys, *train_args(tmp_path, data, "--kimg", 0.032, "--batch", 8))
    assert code == 0 and "Resuming from" in err, err
    assert final_state(tmp_path)["nimg"] == 32


@pytest.mark.slow
def test_compiled_training_runs_without_falling_back_to_eager(tmp_path, data):
    result = sgan(*train_args(tmp_path, data, "--kimg", 0.064, "--lod-kimg", 0.024, "--batch", 8, "--compile"),
                  timeout=900)
    assert result.returncode == 0, result.stderr
    assert "recompile_limit" not in result.stderr
    assert final_state(tmp_path)["nimg"] == 64


@pytest.mark.parametrize("extra", [
    ["--arch", "pggan"],
    ["--arch", "stylegan2", "--r1-every", 2, "--pl-every", 2],
    ["--loss", "wgan-gp"],
])
@pytest.mark.slow
def test_every_architecture_and_loss_trains_through_a_fade(tmp_path, data, extra):
    result = sgan(*train_args(tmp_path, data, "--kimg", 0.08, "--lod-kimg", 0.016, "--batch", 8, *extra))
    assert result.returncode == 0, result.stderr
    log = [json.loads(line) for line in (tmp_path / "train" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["resolution"] == 16 and all(np.isfinite(line["loss_G"]) for line in log)
    terms = set().union(*log)
    assert ("pl" in terms) == ("stylegan2" in extra) and ("gp" in terms) == ("wgan-gp" in extra)
