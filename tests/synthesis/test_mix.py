"""`sgan mix`: style mixing by groups of layers (StyleGAN §3.1, Figure 3)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, sgan, sgan_here
from PIL import Image

from stylegan_cli.synthesis import mixing as mix
from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.latents import parse_latents
from stylegan_cli.synthesis.render import to_ws

PAPER_1024 = [2 ** (2 + i // 2) for i in range(18)]  # 4, 4, 8, 8, ..., 1024, 1024


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def ckpt(trained):
    return trained / "checkpoints" / "latest"


@pytest.fixture(scope="module")
def G(trained):
    return load_generator(trained, None).G



def test_groups_follow_the_paper_and_unnamed_groups_take_the_next_coarser_named_one():
    coarse, middle, fine = ["coarse"] * 4, ["middle"] * 4, ["fine"] * 10
    assert mix.layer_sources(PAPER_1024, ["coarse", "middle", "fine"]) == coarse + middle + fine
    assert mix.layer_sources(PAPER_1024, ["coarse", "fine"]) == coarse + coarse + fine  # middle from coarse
    assert mix.layer_sources(PAPER_1024, ["coarse", "middle"]) == coarse + middle + ["middle"] * 10
    assert mix.layer_sources(PAPER_1024, ["middle", "fine"]) == ["middle"] * 8 + fine  # coarse from middle
    assert mix.layer_sources(PAPER_1024, ["coarse", "fine"], [0, 1, 17]) == ["fine"] * 2 + ["coarse"] * 15 + ["fine"]


def test_each_layer_receives_the_styles_of_its_groups_latent(G):
    ws = {g: to_ws(G, parse_latents(s, G.z_dim))[0] for g, s in (("coarse", "1"), ("middle", "2"))}
    mixed = mix.mix_ws(ws, mix.layer_sources(G.style_layer_resolutions(), ["coarse", "middle"]))
    with torch.no_grad():
        z = torch.from_numpy(np.stack([parse_latents(s, G.z_dim)[0].z for s in "12"])).float()
        w1, w2 = G.mapping(z.to(G.w_avg.device))
    assert G.style_layer_resolutions() == [4, 4, 8, 8, 16, 16]
    torch.testing.assert_close(mixed[:4], w1.expand(4, -1))
    torch.testing.assert_close(mixed[4:], w2.expand(2, -1))


def test_grid_cells_and_latents_follow_the_lists(trained, ckpt, tmp_path):
    # --batch 1 in both stages: batched convolutions may differ from single ones in the last bit
    result = sgan("mix", "-r", tmp_path, "--ckpt", ckpt, "--coarse", "1,2,3", "--middle", "4-7", "--batch", 1,
                  "--grid-scale", 1)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "mix"
    cells = [f"seed000{r}-seed000{c}.png" for r in (1, 2, 3) for c in (4, 5, 6, 7)]
    assert result.stdout.splitlines() == [str(out / n) for n in cells + ["grid.png", "latents.npz"]]
    grid = pixels(out / "grid.png")
    assert grid.shape == (4 * 16 + 3 * 2, 5 * 16 + 4 * 2, 3)  # (1 + 3) x (1 + 4) cells, 2-pixel gaps

    def cell(r, c):
        return grid[r * 18 : r * 18 + 16, c * 18 : c * 18 + 16]

    assert (cell(0, 0) == 255).all()  # the empty corner
    assert sgan("sample", "-r", tmp_path, "--ckpt", ckpt, "--seeds", "1-7", "--batch", 1).returncode == 0
    for c, seed in enumerate((4, 5, 6, 7), 1):  # columns: the finer group's sources along the top
        assert np.array_equal(cell(0, c), pixels(tmp_path / "samples" / f"seed000{seed}.png"))
    for r, seed in enumerate((1, 2, 3), 1):  # rows: the coarser group's sources down the left edge
        assert np.array_equal(cell(r, 0), pixels(tmp_path / "samples" / f"seed000{seed}.png"))
    assert np.array_equal(cell(2, 3), pixels(out / "seed0002-seed0006.png"))

    G = load_generator(trained, None).G
    expected = to_ws(G, parse_latents("1-7", G.z_dim)).numpy()
    with np.load(out / "latents.npz") as npz:
        w, names = npz["w"], npz["names"].tolist()
    assert names == [n[:-4] for n in cells] and w.shape == (12, 6, 512)
    assert np.array_equal(w[6][:4], expected[1][:4]) and np.array_equal(w[6][4:], expected[5][4:])  # 2 x 6


def test_mixing_a_latent_with_itself_is_plain_sampling(ckpt, tmp_path, capsys, monkeypatch):
    flags = ["-r", tmp_path, "--ckpt", ckpt, "--trunc", 0.7, "--trunc-cutoff", 2, "--noise-mode", "random",
             "--batch", 1]
    assert sgan_here(capsys, "mix", "--coarse", 3, "--middle", 3, *flags)[0] == 0
    assert sgan_here(capsys, "sample", "--seeds", 3, *flags)[0] == 0
    assert np.array_equal(pixels(tmp_path / "mix" / "seed0003-seed0003.png"),
                          pixels(tmp_path / "samples" / "seed0003.png"))


def test_fine_falls_back_and_styles_name_layers(G, ckpt, tmp_path, capsys, monkeypatch):
    expected = to_ws(G, parse_latents("1,2", G.z_dim)).numpy()
    flags = ["-r", tmp_path, "--ckpt", ckpt, "--coarse", 1, "--fine", 2]
    code, _, err = sgan_here(capsys, "mix", *flags)  # 16x16: no fine layers, all from --coarse
    assert code == 0 and "no fine style layers" in err
    with np.load(tmp_path / "mix" / "latents.npz") as npz:
        assert np.array_equal(npz["w"][0], expected[0])
    assert sgan_here(capsys, "mix", *flags, "--styles", "1,4-5")[0] == 0
    with np.load(tmp_path / "mix" / "latents.npz") as npz:
        w = npz["w"][0]
    assert [int(np.array_equal(w[i], expected[1][i])) for i in range(6)] == [0, 1, 0, 0, 1, 1]
    assert [int(np.array_equal(w[i], expected[0][i])) for i in range(6)] == [1, 0, 1, 1, 0, 0]


def test_the_same_command_writes_the_same_bytes(ckpt, tmp_path):
    args = ["mix", "-r", tmp_path, "--ckpt", ckpt, "--coarse", "8,9", "--middle", "10", "--noise-mode", "random",
            "--batch", 2]
    assert sgan(*args).returncode == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "mix").iterdir()}
    assert sgan(*args).returncode == 0
    assert first == {p.name: p.read_bytes() for p in (tmp_path / "mix").iterdir()}
    assert sorted(first) == ["grid.png", "latents.npz", "seed0008-seed0010.png", "seed0009-seed0010.png"]


def test_sample_pipes_into_mix(G, ckpt, tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k != "SGAN_RUN"}, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "stylegan_cli"]
    sample = subprocess.Popen([*cmd, "sample", "-r", tmp_path, "--ckpt", ckpt, "--seeds", "4,9", "--save-latents"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    result = subprocess.run([*cmd, "mix", "-r", tmp_path, "--ckpt", ckpt, "--coarse", "-", "--middle", "5"],
                            stdin=sample.stdout, capture_output=True, text=True, env=env)
    sample.stdout.close()
    assert sample.wait() == 0 and result.returncode == 0, result.stderr
    assert [line.rsplit("/", 1)[-1] for line in result.stdout.splitlines()] == [
        "seed0004-seed0005.png", "seed0009-seed0005.png", "grid.png", "latents.npz"]
    expected = to_ws(G, parse_latents("4,5,9", G.z_dim)).numpy()
    with np.load(tmp_path / "mix" / "latents.npz") as npz:
        assert np.array_equal(npz["w"][1][:4], expected[2][:4]) and np.array_equal(npz["w"][1][4:], expected[1][4:])


@pytest.mark.parametrize("flags, message", [
    (["--coarse", "1,2"], "at least two"),
    (["--coarse", "1", "--middle", "2-x"], "not a list of seeds"),
    (["--coarse", "1", "--middle", "2", "--styles", "0-6"], "has 6 style layers"),
    (["--coarse", "1", "--middle", "2", "--styles", "a"], "not a list of style layers"),
    (["--coarse", "1", "--middle", "2", "--fine", "3", "--styles", "0"], "exactly two"),
    (["--coarse", "1,2", "--middle", "3,4", "--fine", "5,6"], "At most two"),
    (["--coarse", "{bad}", "--middle", "2"], "neither a z nor a w"),
    (["--coarse", "{good}:2", "--middle", "2"], "index 2 is out of range"),
    (["--coarse", "-", "--middle", "-"], "Only one group"),
    (["--coarse", "1", "--middle", "2", "--trunc-cutoff", "7"], "beyond"),
])
def test_bad_input_is_one_sentence_and_exit_2(flags, message, ckpt, tmp_path, capsys, monkeypatch):
    np.savez(tmp_path / "bad.npz", foo=np.zeros(3))
    np.savez(tmp_path / "good.npz", z=np.zeros((2, 512)))
    flags = [f.format(bad=tmp_path / "bad.npz", good=tmp_path / "good.npz") for f in flags]
    code, out, err = sgan_here(capsys, "mix", "-r", tmp_path, "--ckpt", ckpt, *flags)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("sgan: ") and message in err, err
