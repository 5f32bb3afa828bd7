"""`sgan sample`: uncurated samples, their latents, truncation, and the same bytes every time."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import sgan
from PIL import Image

from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.latents import parse_latents, z_from_seed
from stylegan_cli.synthesis.render import synthesize, to_ws
from stylegan_cli.synthesis.truncation import truncate


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_one_png_per_seed_a_grid_and_the_latents(trained, tmp_path):
    result = sgan("sample", "-r", trained, "--seeds", "0-2,7", "--grid", "2x2", "--save-latents", "--batch", 3,
                  "--grid-scale", 1)
    assert result.returncode == 0, result.stderr
    out = trained / "samples"
    names = ["seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png", "grid.png", "latents.npz"]
    assert result.stdout.splitlines() == [str(out / n) for n in names]
    assert pixels(out / "seed0007.png").shape == (16, 16, 3)
    assert Image.open(out / "grid.png").size == (2 * 16 + 2, 2 * 16 + 2)
    with np.load(out / "latents.npz") as npz:
        assert npz["seeds"].tolist() == [0, 1, 2, 7]
        assert np.array_equal(npz["z"][3], z_from_seed(7, 512))  # NVIDIA's seed convention
        assert npz["w"].shape == (4, 6, 512)


def test_the_same_command_writes_the_same_bytes(trained, tmp_path):
    args = ["sample", "-r", trained, "--seeds", "3-5", "--noise-mode", "random", "--trunc", "0.5"]
    assert sgan(*args).returncode == 0
    first = {p.name: p.read_bytes() for p in (trained / "samples").glob("seed000[345].png")}
    assert sgan(*args).returncode == 0
    assert first == {p.name: p.read_bytes() for p in (trained / "samples").glob("seed000[345].png")}


def test_psi_zero_makes_every_seed_the_same_image_and_psi_one_changes_nothing(trained):
    G = load_generator(trained, None).G
    ws = to_ws(G, parse_latents("0-3", G.z_dim))
    same = synthesize(G, truncate(G, ws, 0.0, None), 4)
    assert all(np.array_equal(same[0], img) for img in same[1:])
    assert np.array_equal(synthesize(G, truncate(G, ws, 1.0, None), 4), synthesize(G, ws, 4))
    cut = truncate(G, ws, 0.0, 2)  # the paper's cutoff: only the first style inputs move
    assert torch.equal(cut[:, 2:], ws[:, 2:]) and torch.equal(cut[:, :2], G.w_avg.expand(4, 2, -1))


def test_saved_latents_render_the_same_images(trained):
    assert sgan("sample", "-r", trained, "--seeds", "4,9", "--save-latents").returncode == 0
    before = pixels(trained / "samples" / "seed0009.png")
    again = sgan("sample", "-r", trained, "--seeds", trained / "samples" / "latents.npz:1")
    assert again.returncode == 0, again.stderr
    # alone instead of in a batch of two, the float sums may round differently (seen on one thread): a level at most
    assert np.abs(pixels(trained / "samples" / "seed0009.png").astype(int) - before).max() <= 1


def test_bad_input_is_one_sentence(trained, tmp_path):
    cases = [
        (["--seeds", "1-x"], 2, "not a list of seeds"),
        (["--seeds", "0-3", "--trunc-cutoff", "7"], 2, "beyond this generator's 6 style inputs"),
        (["--seeds", "0-9", "--grid", "3x3"], 2, "fewer than the 10 seeds"),
        (["--seeds", "0", "--grid", "big"], 2, "COLUMNSxROWS"),
        (["--seeds", str(tmp_path / "none.npz")], 2, "No latents file"),
        (["--seeds", "0", "--ckpt", tmp_path / "missing.pt"], 2, "No checkpoint file"),
    ]
    for args, code, words in cases:
        result = sgan("sample", "-r", trained, *args)
        assert result.returncode == code and words in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    result = sgan("sample", "-r", trained, "--ckpt", corrupt)
    assert result.returncode == 1 and "corrupt" in result.stderr
    np.savez(tmp_path / "empty.npz", other=np.zeros(3))
    result = sgan("sample", "-r", trained, "--seeds", tmp_path / "empty.npz")
    assert result.returncode == 2 and "neither a z nor a w" in result.stderr
    result = sgan("sample", "-r", tmp_path / "no-run", "--seeds", "0")
    assert result.returncode == 2 and "no checkpoint" in result.stderr and not (tmp_path / "no-run").exists()


def test_json_names_the_checkpoint(trained):
    result = sgan("sample", "-r", trained, "--seeds", "1", "--json")
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert doc["checkpoint"].endswith(".pt") and doc["outputs"][0].endswith("seed0001.png")


def test_latents_without_seeds_render_whatever_their_file_is_called(trained, tmp_path):
    """Labels are for file names only: a file named seed... without a seeds array is no seed."""
    np.savez(tmp_path / "seedlings.npz", z=np.random.RandomState(0).randn(2, 512))
    result = sgan("sample", "-r", trained, "--seeds", tmp_path / "seedlings.npz", "--save-latents")
    assert result.returncode == 0, result.stderr
    assert (trained / "samples" / "seedlings-1.png").is_file()
    with np.load(trained / "samples" / "latents.npz") as npz:
        assert "seeds" not in npz.files and npz["z"].shape == (2, 512)


def test_bf16_samples_are_the_fp32_images_within_a_few_levels_and_the_rate_is_reported(trained, tmp_path):
    made = {}
    for precision in ("fp32", "bf16"):
        result = sgan("sample", "-r", trained, "--seeds", "0-7", "--precision", precision,
                      "--out", tmp_path / precision, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["img_per_s"] > 0
        made[precision] = np.stack([pixels(tmp_path / precision / f"seed{s:04d}.png") for s in range(8)]).astype(int)
    difference = np.abs(made["bf16"] - made["fp32"])
    assert 0 < difference.mean() < 2 and difference.max() < 32
