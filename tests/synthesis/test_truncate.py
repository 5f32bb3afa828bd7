"""`sgan truncate`: the truncation sweep (StyleGAN Figure 8) and re-estimating the centre of mass of W."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import sgan, sgan_here
from PIL import Image

from stylegan_cli.model import checkpoint
from stylegan_cli.synthesis.generator import load_generator, w_avg_path
from stylegan_cli.synthesis.images import to_uint8

RES = 16  # the `trained` fixture's generator


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))



@pytest.fixture
def ckpt(trained, tmp_path):
    """A private copy of the trained checkpoint, so that a w_avg side file written beside it stays in
    this test; each test writes into its own run directory under tmp_path."""
    copy = tmp_path / "ckpt.pt"
    shutil.copyfile(checkpoint.latest(trained), copy)
    return copy


def test_a_row_per_seed_a_column_per_psi(ckpt, tmp_path):
    run = tmp_path / "run"
    result = sgan("truncate", "-r", run, "--ckpt", ckpt, "--seeds", "1-3", "--psi", "-0.5,0,0.7,1", "--batch", 5,
                  "--grid-scale", 1)
    assert result.returncode == 0, result.stderr
    out = run / "truncate"
    cells = [f"seed{s:04d}-psi{p}.png" for s in (1, 2, 3) for p in ("-0.50", "0.00", "0.70", "1.00")]
    assert result.stdout.splitlines() == [str(out / n) for n in ["grid.png", *cells, "latents.npz"]]
    grid = pixels(out / "grid.png")
    assert grid.shape == (3 * RES + 2 * 2, 4 * RES + 3 * 2, 3)
    for row, seed in enumerate((1, 2, 3)):  # the grid holds the cells, row by seed, column by psi
        y = row * (RES + 2)
        assert np.array_equal(grid[y : y + RES, 2 * (RES + 2) : 2 * (RES + 2) + RES],
                              pixels(out / f"seed{seed:04d}-psi0.70.png"))
    with np.load(out / "latents.npz") as npz:
        assert npz["seeds"].tolist() == [1, 2, 3] and npz["w"].shape == (3, 6, 512)


@pytest.mark.slow
def test_psi_zero_is_one_image_for_every_seed_and_psi_one_is_no_truncation(ckpt, tmp_path):
    run = tmp_path / "run"
    # One image per pass in both stages: a matrix product's rounding may depend on how many rows it has.
    result = sgan("truncate", "-r", run, "--ckpt", ckpt, "--seeds", "4-6", "--psi", "0,1", "--batch", 1)
    assert result.returncode == 0, result.stderr
    sample = sgan("sample", "-r", run, "--ckpt", ckpt, "--seeds", "4-6", "--batch", 1)
    assert sample.returncode == 0, sample.stderr
    mean = [pixels(run / "truncate" / f"seed{s:04d}-psi0.00.png") for s in (4, 5, 6)]
    assert all(np.array_equal(mean[0], m) for m in mean[1:])
    for s in (4, 5, 6):
        assert ((run / "truncate" / f"seed{s:04d}-psi1.00.png").read_bytes()
                == (run / "samples" / f"seed{s:04d}.png").read_bytes())
    assert not np.array_equal(pixels(run / "truncate" / "seed0004-psi1.00.png"),
                              pixels(run / "truncate" / "seed0005-psi1.00.png"))


def test_a_cutoff_truncates_the_first_style_inputs_only(ckpt, tmp_path):
    result = sgan("truncate", "-r", tmp_path, "--ckpt", ckpt, "--seeds", "1,2", "--psi", "0", "--trunc-cutoff", 2)
    assert result.returncode == 0, result.stderr
    # The coarse styles are the average, the rest the seed's own: the images differ.
    assert not np.array_equal(pixels(tmp_path / "truncate" / "seed0001-psi0.00.png"),
                              pixels(tmp_path / "truncate" / "seed0002-psi0.00.png"))


def test_the_same_command_writes_the_same_bytes(ckpt, tmp_path):
    args = ["--ckpt", ckpt, "--seeds", "2,9", "--psi", "0.5,-1", "--noise-mode", "random"]
    assert sgan("truncate", "-r", tmp_path / "a", *args).returncode == 0
    assert sgan("truncate", "-r", tmp_path / "b", *args, "--batch", 3).returncode == 0
    a, b = tmp_path / "a" / "truncate", tmp_path / "b" / "truncate"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 6
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


@pytest.mark.slow
def test_compute_avg_stores_the_centre_of_mass_for_this_and_later_stages(ckpt, tmp_path):
    run = tmp_path / "run"
    old = sgan("truncate", "-r", run, "--ckpt", ckpt, "--seeds", "1", "--psi", "0")
    assert old.returncode == 0, old.stderr
    old_mean = pixels(run / "truncate" / "seed0001-psi0.00.png")
    old_avg = load_generator(run, ckpt).G.w_avg.cpu().clone()

    result = sgan("truncate", "-r", run, "--ckpt", ckpt, "--compute-avg", "--samples", 5000, "--seeds", "1",
                  "--psi", "0", "--json")
    assert result.returncode == 0, result.stderr
    side = w_avg_path(ckpt)
    assert json.loads(result.stdout)["outputs"][0] == str(side) and side.is_file()
    w_avg = np.load(side, allow_pickle=False)
    assert w_avg.dtype == np.float32 and w_avg.shape == (512,)

    G = load_generator(run, ckpt).G  # reads the side file
    assert np.array_equal(G.w_avg.cpu().numpy(), w_avg)
    with torch.no_grad():  # an independent estimate of E[f(z)] agrees, far closer than the old average
        independent = G.mapping(torch.randn(10000, 512, generator=torch.Generator().manual_seed(1))).mean(0).cpu()
        expected = to_uint8(G.synthesis(G.w_avg.expand(1, G.num_ws, -1), noise_mode="const"))[0]
    assert (independent - torch.from_numpy(w_avg)).norm() < 0.25 * (old_avg - torch.from_numpy(w_avg)).norm()

    # The sweep in the same command used the new average, and so does a later stage.
    new_mean = pixels(run / "truncate" / "seed0001-psi0.00.png")
    assert np.array_equal(new_mean, expected) and not np.array_equal(new_mean, old_mean)
    later = sgan("sample", "-r", run, "--ckpt", ckpt, "--seeds", "5", "--trunc", "0")
    assert later.returncode == 0, later.stderr
    assert np.array_equal(pixels(run / "samples" / "seed0005.png"), expected)


@pytest.mark.parametrize("args, code, words", [
    (["--seeds", "1-x"], 2, "not a list of seeds"),
    (["--seeds", "1", "--psi", "0.5,half"], 2, "not a comma-separated list of numbers"),
    (["--seeds", "1", "--trunc-cutoff", "7"], 2, "beyond this generator's 6 style inputs"),
    ([], 2, "Give --seeds"),
    (["--seeds", "1", "--samples", "10"], 2, "only applies with --compute-avg"),
    (["--seeds", "1", "--ckpt", "missing.pt"], 2, "No checkpoint file"),
    (["--seeds", "1", "--ckpt", "corrupt.pt"], 1, "corrupt"),
])
def test_bad_input_is_one_sentence(trained, tmp_path, capsys, args, code, words):
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    args = [str(tmp_path / a) if a.endswith(".pt") else a for a in args]
    status, _, stderr = sgan_here(capsys, "truncate", "-r", trained, *args)
    assert status == code
    assert words in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
