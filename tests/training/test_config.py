"""The training configuration: defaults per architecture (StyleGAN's schedule for the original networks,
StyleGAN2 config F's constants for the skip and residual designs), the flags that choose them and their
usage errors, and config F's parameter counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import sgan, sgan_here

from stylegan_cli.model import checkpoint
from stylegan_cli.model.generator import ARCHS
from stylegan_cli.training.config import CONFIG_F, TrainConfig
from stylegan_cli.training.schedule import batch_size, learning_rate, levels

CPU = torch.device("cpu")
TINY = ["--resolution", 16, "--fmap-base", 64, "--fmap-max", 16, "--workers", 0]


@pytest.fixture(scope="module")
def data(prepped) -> Path:
    return prepped / "data" / "dataset.lmdb"


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- defaults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_the_original_networks_grow_on_stylegans_schedule(arch):
    cfg = TrainConfig(resolution=256, arch=arch).resolved(CPU)
    assert (cfg.g_arch, cfg.d_arch, cfg.fmap_base, cfg.progressive) == ("orig", "orig", 8192, True)
    assert levels(cfg, start=8) == [8, 16, 32, 64, 128, 256]
    assert [batch_size(cfg, r) for r in (4, 32, 64, 256)] == [512, 64, 32, 32]
    assert [learning_rate(cfg, r) for r in (64, 128, 256)] == [0.001, 0.0015, 0.002]


@pytest.mark.parametrize("g_arch, d_arch", [("skip", "resnet"), ("skip", "orig"), ("orig", "resnet"),
                                            ("resnet", "skip")])
def test_skip_and_residual_networks_take_config_fs_constants_without_growing(g_arch, d_arch):
    cfg = TrainConfig(resolution=256, arch="stylegan2", g_arch=g_arch, d_arch=d_arch).resolved(CPU)
    assert (cfg.fmap_base, cfg.fmap_max, cfg.progressive) == (16384, 512, False)
    assert levels(cfg, start=8) == [256]
    assert (batch_size(cfg, 256), learning_rate(cfg, 256)) == (32, 0.002)
    assert (cfg.r1_every, cfg.pl_weight, cfg.ema_kimg, cfg.ema_rampup) == (16, 2.0, 10.0, 0.05)


def test_given_values_win_over_the_defaults():
    cfg = TrainConfig(resolution=256, **CONFIG_F, fmap_base=512, batch=8, lr=0.01).resolved(CPU)
    assert (cfg.fmap_base, batch_size(cfg, 256), learning_rate(cfg, 256)) == (512, 8, 0.01)
    assert not TrainConfig(resolution=256, progressive=False).resolved(CPU).progressive


# --- flags -------------------------------------------------------------------------------------


def test_config_f_is_the_long_form(tmp_path, data, capsys):
    runs = []
    for flags in (["--config-f"], ["--arch", "stylegan2", "--g-arch", "skip", "--d-arch", "resnet"],
                  ["--config-f", "--arch", "stylegan2", "--d-arch", "resnet"]):
        code, out, err = sgan_here(capsys, "train", "-r", tmp_path, "--data", data, *TINY, *flags, "--dry-run",
                                   "--json")
        assert code == 0, err
        runs.append(json.loads(out))
    assert runs[0] == runs[1] == runs[2]
    config = runs[0]["config"]
    assert (config["arch"], config["g_arch"], config["d_arch"], config["progressive"]) == ("stylegan2", "skip",
                                                                                          "resnet", False)
    assert runs[0]["levels"] == [16]


@pytest.mark.parametrize("flags, message", [
    (["--config-f", "--progressive"], "--progressive needs --g-arch orig and --d-arch orig"),
    (["--arch", "stylegan2", "--d-arch", "resnet", "--progressive"], "no FromRGB below full resolution"),
    (["--g-arch", "skip"], "--g-arch skip is a StyleGAN2 design (§4.1) and needs --arch stylegan2, not stylegan"),
    (["--arch", "pggan", "--d-arch", "resnet"], "--d-arch resnet is a StyleGAN2 design"),
    (["--config-f", "--g-arch", "resnet"], "--config-f means --g-arch skip, not resnet"),
    (["--config-f", "--arch", "stylegan"], "--config-f means --arch stylegan2, not stylegan"),
])
def test_contradictory_architecture_flags_are_usage_errors(tmp_path, data, capsys, flags, message):
    code, _, err = sgan_here(capsys, "train", "-r", tmp_path, "--data", data, *TINY, *flags, "--dry-run")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


# --- config F's size (NVIDIA's StyleGAN2 parameter counts) -----------------------------------


@pytest.mark.slow
def test_config_f_has_nvidias_parameter_counts_at_256(faces_dir, tmp_path):
    run = tmp_path / "run"
    prep = sgan("prep", "ffhq", "--src", faces_dir, "-r", run, "--landmarks", "dlib", "--resolution", 256,
                "--workers", 1)
    assert prep.returncode == 0, prep.stderr
    result = sgan("train", "-r", run, "--config-f", "--dry-run", "--json", "--resolution", 256)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["config"]["fmap_base"] == 16384 and summary["levels"] == [256]
    assert (summary["parameters"]["G"], summary["parameters"]["D"]) == (30_034_338, 28_864_129)


def test_config_f_has_nvidias_parameter_counts_at_1024():
    network = TrainConfig(resolution=1024, **CONFIG_F).resolved(CPU).network()
    assert params(checkpoint.build_generator(network)) == 30_370_060
    assert params(checkpoint.build_discriminator(network)) == 29_012_513
