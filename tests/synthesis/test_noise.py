"""`sgan noise`: stochastic variation (StyleGAN §3.2): noise realisations and their per-pixel std
(Figure 4), noise in some layers only (Figure 5), and the refusal for Progressive GAN."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sgan, sgan_here
from PIL import Image

from stylegan_cli.model import checkpoint
from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.latents import parse_latents
from stylegan_cli.synthesis.render import synthesize, to_ws

RES = 16  # the `trained` fixture's generator


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))



@pytest.fixture
def ckpt(trained):
    return checkpoint.latest(trained)


def test_realisations_and_their_std_the_same_bytes_every_time(ckpt, tmp_path):
    args = ["--ckpt", ckpt, "--seed", "7,8", "--n", 12, "--show", 3, "--grid-scale", 1]
    result = sgan("noise", "-r", tmp_path / "a", *args)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "a" / "noise"
    names = ["seed0007-variation.png", "seed0007-std.png", "seed0008-variation.png", "seed0008-std.png", "latents.npz"]
    assert result.stdout.splitlines() == [str(out / n) for n in names]
    figure, std = pixels(out / "seed0007-variation.png"), pixels(out / "seed0007-std.png")
    assert figure.shape == (RES, 4 * RES + 3 * 2, 3)  # 3 realisations, then the std
    assert np.array_equal(figure[:, -RES:], std) and std.max() > 0
    examples = [figure[:, i * (RES + 2) : i * (RES + 2) + RES] for i in range(3)]
    assert not np.array_equal(examples[0], examples[1])

    # The std is that of the n images the engine renders with noise seeds 0..n-1, x4 in 0-255 units.
    G = load_generator(tmp_path, ckpt).G
    ws = to_ws(G, parse_latents("7", G.z_dim)).expand(12, -1, -1)
    images = synthesize(G, ws, 12, "random", noise_seeds=list(range(12)))
    assert np.array_equal(examples[2], images[2])
    expected = np.clip(np.std(images.astype(np.float64).mean(axis=3), axis=0) * 4 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(std[:, :, 0], expected)

    again = sgan("noise", "-r", tmp_path / "b", *args, "--batch", 5)
    assert again.returncode == 0, again.stderr
    assert all((out / n).read_bytes() == (tmp_path / "b" / "noise" / n).read_bytes() for n in names)


def test_noise_in_some_layers_only(ckpt, tmp_path):
    result = sgan("noise", "-r", tmp_path, "--ckpt", ckpt, "--seed", "3", "--n", 8, "--fine-from", 16,
                  "--layers", "all,none", "--layers", "fine,coarse", "--grid-scale", 1)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "noise"
    panels = ["all", "none", "fine", "coarse"]
    names = [n for p in panels for n in (f"seed0003-layers-{p}.png", f"seed0003-layers-{p}-std.png")]
    assert result.stdout.splitlines() == [str(out / n) for n in [*names, "seed0003-layers.png", "latents.npz"]]
    std = {p: pixels(out / f"seed0003-layers-{p}-std.png") for p in panels}
    assert std["none"].max() == 0 and std["all"].max() > 0
    assert not np.array_equal(std["coarse"], std["fine"])
    # The combined figure: one row per panel, in the order given (Figure 5's (a)-(d)).
    combined = pixels(out / "seed0003-layers.png")
    assert combined.shape == (4 * RES + 3 * 2, 5 * RES + 4 * 2, 3)
    for row, p in enumerate(panels):
        assert np.array_equal(combined[row * (RES + 2) : row * (RES + 2) + RES],
                              pixels(out / f"seed0003-layers-{p}.png"))
    # Without noise every realisation is the image of noise mode 'none'.
    G = load_generator(tmp_path, ckpt).G
    plain = synthesize(G, to_ws(G, parse_latents("3", G.z_dim)), 1, "none")[0]
    assert np.array_equal(pixels(out / "seed0003-layers-none.png")[:, :RES], plain)


def test_a_single_realisation_and_a_split_with_no_fine_layers(ckpt, tmp_path):
    result = sgan("noise", "-r", tmp_path, "--ckpt", ckpt, "--seed", "1", "--n", 1, "--layers", "fine",
                  "--grid-scale", 1)
    assert result.returncode == 0, result.stderr
    assert "no fine noise inputs" in result.stderr  # --fine-from 64 on a 16x16 generator
    figure = pixels(tmp_path / "noise" / "seed0001-layers-fine.png")
    assert figure.shape == (RES, 2 * RES + 2, 3) and figure[:, -RES:].max() == 0


def test_progressive_gan_has_no_noise_to_vary(trained, tmp_path):
    run = tmp_path / "pggan"
    trained_pggan = sgan("train", "-r", run, "--data", trained / "data" / "dataset.lmdb", "--arch", "pggan",
                         "--resolution", 8, "--fmap-base", 64, "--fmap-max", 16, "--kimg", 0.032, "--batch", 8,
                         "--workers", 0)
    assert trained_pggan.returncode == 0, trained_pggan.stderr
    result = sgan("noise", "-r", run, "--seed", "1")
    assert result.returncode == 2 and "no noise inputs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (run / "noise").exists()


@pytest.mark.parametrize("args, words", [
    (["--seed", "x"], "not a list of seeds"),
    (["--seed", "1", "--layers", "middle"], "not one of all, none, coarse, fine"),
    (["--seed", "1", "--n", "0"], "--n"),
    ([], "--seed"),
])
def test_bad_input_is_one_sentence(trained, capsys, args, words):
    status, _, stderr = sgan_here(capsys, "noise", "-r", trained, *args)
    assert status == 2
    assert words in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
