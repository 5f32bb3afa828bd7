"""Outputs where the user wants them (`--out DIR` on every synthesis stage) and grids people can look at
(grids of small images enlarged by a whole factor, nearest neighbour, to at least 512 px wide; `--grid-scale`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import sgan, sgan_here
from PIL import Image

from stylegan_cli.synthesis.images import enlarge, grid_scale, image_grid, scaled_grid

RES = 16  # the `trained` fixture's generator

# Each stage with arguments that make it quick, and the default folder it writes into when --out is absent.
STAGES = {
    "sample": (["--seeds", "0-3", "--grid", "2x2", "--save-latents"], "samples"),
    "truncate": (["--seeds", "1,2", "--psi", "1,0.5"], "truncate"),
    "mix": (["--coarse", "1,2", "--fine", "3,4"], "mix"),
    "interpolate": (["--seeds", "1,2", "--steps", 2], "interpolate"),
    "noise": (["--seed", "1", "--n", 2, "--show", 1], "noise"),
}


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def ckpt(trained):
    return trained / "checkpoints" / "latest"


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_out_puts_every_file_in_dir_and_lists_it(stage, ckpt, tmp_path):
    args, default = STAGES[stage]
    run, out = tmp_path / "run", tmp_path / "elsewhere" / "here"
    result = sgan(stage, "-r", run, "--ckpt", ckpt, "--out", out, *args)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.splitlines()
    assert listed and sorted(listed) == sorted(str(p) for p in out.iterdir())  # exactly what it wrote, all in DIR
    assert not (run / default).exists()
    history = json.loads((run / "history.jsonl").read_text().splitlines()[-1])
    assert history["exit_status"] == 0 and history["outputs"] == listed


def test_two_checkpoints_into_two_folders_do_not_overwrite_each_other(ckpt, tmp_path):
    for name, seed in (("a", "1"), ("b", "2")):
        result = sgan("sample", "-r", tmp_path, "--ckpt", ckpt, "--seeds", seed, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["seed0001.png"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["seed0002.png"]


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_file_as_out_is_a_usage_error(stage, ckpt, tmp_path, capsys):
    args, _ = STAGES[stage]
    target = tmp_path / "file.png"
    target.write_bytes(b"not a folder")
    code, out, err = sgan_here(capsys, stage, "-r", tmp_path, "--ckpt", ckpt, "--out", target, *args)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "is a file" in err and str(target) in err
    assert target.read_bytes() == b"not a folder"


def test_the_quick_start_grid_is_big_enough_and_each_cell_an_exact_enlargement(ckpt, tmp_path):
    result = sgan("sample", "-r", tmp_path, "--ckpt", ckpt, "--seeds", "0-15", "--grid", "8x2")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "samples"
    grid = pixels(out / "grid.png")
    one_to_one = 8 * RES + 7 * 2
    factor = grid.shape[1] // one_to_one
    assert grid.shape[1] >= 512 and grid.shape == (factor * (2 * RES + 2), factor * one_to_one, 3)
    for i in range(16):
        image = pixels(out / f"seed{i:04d}.png")
        assert image.shape == (RES, RES, 3)  # single images stay at the network's resolution
        r, c = divmod(i, 8)
        y, x = factor * r * (RES + 2), factor * c * (RES + 2)
        cell = grid[y : y + factor * RES, x : x + factor * RES]
        assert np.array_equal(cell, image.repeat(factor, 0).repeat(factor, 1))


def test_grid_scale_one_keeps_the_old_size_and_n_sets_the_factor(ckpt, tmp_path):
    sizes = {}
    for scale in (1, 3):
        out = tmp_path / str(scale)
        result = sgan("sample", "-r", tmp_path, "--ckpt", ckpt, "--seeds", "0-3", "--grid", "4x1",
                      "--grid-scale", scale, "--out", out)
        assert result.returncode == 0, result.stderr
        sizes[scale] = Image.open(out / "grid.png").size
        assert Image.open(out / "seed0000.png").size == (RES, RES)
    assert sizes == {1: (4 * RES + 3 * 2, RES), 3: (3 * (4 * RES + 3 * 2), 3 * RES)}


@pytest.mark.slow
def test_the_other_stages_grids_are_enlarged_too(ckpt, tmp_path):
    for stage, (args, _) in STAGES.items():
        assert sgan(stage, "-r", tmp_path, "--ckpt", ckpt, "--out", tmp_path / stage, *args).returncode == 0
    enlarged = [tmp_path / "truncate" / "grid.png", tmp_path / "mix" / "grid.png",
                tmp_path / "noise" / "seed0001-variation.png", tmp_path / "interpolate" / "interpolation.gif"]
    for path in enlarged:
        assert Image.open(path).size[0] >= 512, path
    singles = [tmp_path / "truncate" / "seed0001-psi0.50.png", tmp_path / "mix" / "seed0001-seed0003.png",
               tmp_path / "noise" / "seed0001-std.png", tmp_path / "interpolate" / "frame00000.png"]
    for path in singles:
        assert Image.open(path).size == (RES, RES), path


def test_the_factor_only_enlarges_grids_of_small_images():
    assert grid_scale(16, 142) == 4  # 8 cells of 16 px with 2 px gaps: 568 px
    assert grid_scale(64, 64 * 2 + 2) == 4 and grid_scale(127, 127) == 5
    assert grid_scale(128, 128) == 1 and grid_scale(1024, 4 * 1024) == 1  # a 128 px network's grid stays 1:1
    assert grid_scale(16, 1000) == 1  # already wide enough
    assert grid_scale(128, 128, scale=2) == 2 and grid_scale(16, 142, scale=1) == 1


def test_enlarge_is_nearest_neighbour_on_the_whole_grid():
    rng = np.random.RandomState(0)
    small = [rng.randint(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(4)]
    plain = image_grid(small, cols=2)
    big = scaled_grid(small, cols=2)
    f = big.shape[1] // plain.shape[1]
    assert big.shape[1] >= 512 and np.array_equal(big, np.kron(plain, np.ones((f, f, 1), np.uint8)))
    large = [rng.randint(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(2)]
    assert np.array_equal(scaled_grid(large, cols=2), image_grid(large, cols=2))
    frames = rng.randint(0, 256, (3, 16, 16, 3), dtype=np.uint8)  # an animation: every frame alike
    assert enlarge(frames, 16).shape == (3, 512, 512, 3)
