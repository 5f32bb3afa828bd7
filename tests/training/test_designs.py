"""Every generator design with every discriminator design (StyleGAN2 §4.1, Figure 7) trains, resumes
bitwise and samples: a tiny StyleGAN2 at 16x16 on CPU, stopped at a first --kimg and continued to a
larger one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sgan_here
from PIL import Image

from stylegan_cli.model import checkpoint
from stylegan_cli.model.discriminator import D_ARCHS
from stylegan_cli.model.generator import G_ARCHS

# Small enough for 2 CPU cores: 6 steps of 8 images, then 6 more; R1 every 4 steps, path length every 4.
SMALL = ["--arch", "stylegan2", "--resolution", 16, "--fmap-base", 64, "--fmap-max", 16, "--batch", 8,
         "--lod-kimg", 0.032, "--r1-every", 4, "--workers", 0, "--tick", 0.032, "--snap", 1, "--seed", 5]


@pytest.fixture(scope="module")
def data(prepped) -> Path:
    return prepped / "data" / "dataset.lmdb"


def train(capsys, run: Path, data: Path, g_arch: str, d_arch: str, kimg: float) -> str:
    code, _, err = sgan_here(capsys, "train", "-r", run, "--data", data, *SMALL, "--g-arch", g_arch,
                             "--d-arch", d_arch, "--kimg", kimg)
    assert code == 0, err
    return err


def final_state(run: Path) -> dict:
    return checkpoint.load(checkpoint.latest(run))


@pytest.mark.slow
@pytest.mark.parametrize("g_arch", G_ARCHS)
@pytest.mark.parametrize("d_arch", D_ARCHS)
def test_every_design_trains_resumes_bitwise_and_samples(tmp_path, data, capsys, g_arch, d_arch):
    """Stopped at 48 images and continued to 96, a run ends where a run straight to 96 ends, bit for bit
    (the moving average's ramp-up depends only on the images seen), and its checkpoint renders."""
    train(capsys, tmp_path / "straight", data, g_arch, d_arch, 0.096)
    run = tmp_path / "resumed"
    train(capsys, run, data, g_arch, d_arch, 0.048)
    assert final_state(run)["nimg"] == 48
    assert "Resuming from" in train(capsys, run, data, g_arch, d_arch, 0.096)
    straight, resumed = final_state(tmp_path / "straight"), final_state(run)
    assert straight["nimg"] == resumed["nimg"] == 96
    assert (resumed["config"]["g_arch"], resumed["config"]["d_arch"]) == (g_arch, d_arch)
    for net in ("G_ema", "D"):
        assert straight[net].keys() == resumed[net].keys()
        for key in straight[net]:
            assert torch.equal(straight[net][key], resumed[net][key]), (net, key)

    log = [json.loads(line) for line in (run / "train" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite([line["loss_G"], line["loss_D"]]).all() for line in log)
    grows = (g_arch, d_arch) == ("orig", "orig")  # through 8x8 and a fade; the others at 16x16 throughout
    assert {line["resolution"] for line in log} == ({8, 16} if grows else {16})
    assert {"r1", "pl"} <= set().union(*log)

    code, _, err = sgan_here(capsys, "sample", "-r", run, "--seeds", "0-3")
    assert code == 0, err
    image = np.asarray(Image.open(run / "samples" / "seed0003.png"))
    assert image.shape == (16, 16, 3) and image.std() > 0
