"""`sgan interpolate`: lerp in W, slerp in Z (StyleGAN §4.1), as frames, a GIF and an MP4."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import sgan, sgan_here
from PIL import Image

from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.interpolation import schedule, slerp
from stylegan_cli.synthesis.latents import parse_latents
from stylegan_cli.synthesis.render import to_ws


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def ckpt(trained):
    return trained / "checkpoints" / "latest"



def test_slerp_keeps_the_norm_and_hits_both_ends():
    rng = np.random.RandomState(0)
    a, b = rng.randn(512), rng.randn(512)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    ts = np.linspace(0, 1, 11)
    norms = [np.linalg.norm(slerp(a, b, t)) for t in ts]
    np.testing.assert_allclose(norms, np.linalg.norm(a), rtol=1e-12)
    assert np.array_equal(slerp(a, b, 0.0), a) and np.allclose(slerp(a, b, 1.0), b, rtol=1e-12)
    assert np.linalg.norm((a + b) / 2) < 0.8 * norms[5]  # a lerp would cut through the sphere
    # the cosine of a vector with itself can round to just above 1, where arccos is NaN: clip it
    angles = [np.arccos(np.clip(np.dot(a, slerp(a, b, t)) / norms[0] ** 2, -1.0, 1.0)) for t in ts]
    np.testing.assert_allclose(np.diff(angles), angles[-1] / 10, atol=1e-7)  # constant angular speed


def test_schedule_visits_the_keyframes_in_order():
    assert schedule(3, 2, False) == [(0, 1, 0.0), (0, 1, 0.5), (1, 2, 0.0), (1, 2, 0.5), (2, 2, 0.0)]
    assert schedule(2, 2, True) == [(0, 1, 0.0), (0, 1, 0.5), (1, 0, 0.0), (1, 0, 0.5)]


@pytest.mark.parametrize("space", ["w", "z"])
def test_frames_start_and_end_on_the_keyframes(space, ckpt, tmp_path, capsys, monkeypatch):
    flags = ["-r", tmp_path, "--ckpt", ckpt, "--batch", 1]  # single images: bit-for-bit comparable across stages
    code, out, err = sgan_here(capsys, "interpolate", "--seeds", "1,2,3", "--space", space, "--steps", 4, *flags)
    assert code == 0, err
    frames = [tmp_path / "interpolate" / f"frame{i:05d}.png" for i in range(9)]
    assert out.splitlines() == [*map(str, frames), str(tmp_path / "interpolate" / "interpolation.gif"),
                                str(tmp_path / "interpolate" / "latents.npz")]
    assert sgan_here(capsys, "sample", "--seeds", "1-3", *flags)[0] == 0
    for frame, seed in ((0, 1), (4, 2), (8, 3)):
        assert np.array_equal(pixels(frames[frame]), pixels(tmp_path / "samples" / f"seed000{seed}.png"))
    with np.load(tmp_path / "interpolate" / "latents.npz") as npz:
        assert npz["w"].shape == (9, 6, 512) and ("z" in npz.files) == (space == "z")


def test_w_and_z_paths_part_between_the_keyframes(ckpt, tmp_path, capsys, monkeypatch):
    ws = {}
    for space in ("w", "z"):
        code, _, err = sgan_here(capsys, "interpolate", "-r", tmp_path / space, "--ckpt", ckpt, "--seeds", "5,6",
                                 "--steps", 2, "--space", space)
        assert code == 0, err
        with np.load(tmp_path / space / "interpolate" / "latents.npz") as npz:
            ws[space] = npz["w"]
    assert np.array_equal(ws["w"][0], ws["z"][0]) and np.array_equal(ws["w"][2], ws["z"][2])
    assert np.abs(ws["w"][1] - ws["z"][1]).max() > 1e-3
    G = load_generator(tmp_path / "w", ckpt).G
    ends = to_ws(G, parse_latents("5,6", G.z_dim)).numpy()
    np.testing.assert_allclose(ws["w"][1], (ends[0] + ends[1]) / 2, atol=1e-6)  # W: the straight line


@pytest.mark.slow
def test_loop_gif_fps_and_the_same_bytes_twice(ckpt, tmp_path):
    args = ["interpolate", "-r", tmp_path, "--ckpt", ckpt, "--seeds", "7,8,9", "--steps", 3, "--loop", "--fps", 20,
            "--noise-mode", "random"]
    result = sgan(*args)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "interpolate"
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == [f"frame{i:05d}.png" for i in range(9)] + ["interpolation.gif", "latents.npz"]
    with Image.open(out / "interpolation.gif") as gif:
        assert gif.n_frames == 9 and gif.info["duration"] == 50 and gif.info["loop"] == 0
    assert sgan(*args).returncode == 0
    assert first == {p.name: p.read_bytes() for p in out.iterdir()}


def test_mp4_through_ffmpeg_on_path_else_a_note(ckpt, tmp_path, capsys, monkeypatch):
    flags = ["interpolate", "-r", tmp_path, "--ckpt", ckpt, "--seeds", "1,2", "--steps", 2]
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    code, out, err = sgan_here(capsys, *flags)
    assert code == 0 and "ffmpeg is not on PATH" in err and ".mp4" not in out
    fake = tmp_path / "bin" / "ffmpeg"  # stands in for ffmpeg: stores the raw frames it is fed
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor last; do :; done\ncat > "$last"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", path)
    code, out, err = sgan_here(capsys, *flags)
    mp4 = tmp_path / "interpolate" / "interpolation.mp4"
    assert code == 0 and str(mp4) in out.splitlines(), err
    frames = np.stack([pixels(tmp_path / "interpolate" / f"frame{i:05d}.png") for i in range(3)])
    assert mp4.read_bytes() == frames.tobytes()
    fake.write_text("#!/bin/sh\necho 'Unknown encoder libx264' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", path)
    code, out, err = sgan_here(capsys, *flags)
    assert code == 0 and "Unknown encoder libx264" in err and not mp4.exists()


def test_latents_files_as_keyframes(ckpt, tmp_path, capsys, monkeypatch):
    assert sgan_here(capsys, "mix", "-r", tmp_path, "--ckpt", ckpt, "--coarse", "1,2", "--middle", 3)[0] == 0
    latents = tmp_path / "mix" / "latents.npz"
    code, _, err = sgan_here(capsys, "interpolate", "-r", tmp_path, "--ckpt", ckpt, "--latents", latents, "--steps", 2)
    assert code == 0, err
    with np.load(latents) as keys, np.load(tmp_path / "interpolate" / "latents.npz") as frames:
        assert np.array_equal(frames["w"][0], keys["w"][0]) and np.array_equal(frames["w"][2], keys["w"][1])
    code, out, err = sgan_here(capsys, "interpolate", "-r", tmp_path, "--ckpt", ckpt, "--latents", latents,
                               "--space", "z")
    assert code == 2 and "has only a w" in err


@pytest.mark.parametrize("flags, message", [
    ([], "either --seeds or --latents"),
    (["--seeds", "1", "--latents", "2"], "either --seeds or --latents"),
    (["--seeds", "4"], "at least two keyframes"),
    (["--seeds", "1-"], "not a list of seeds"),
    (["--seeds", "1,2", "--steps", 0], "--steps"),
    (["--seeds", "1,2", "--fps", 100], "--fps"),
    (["--latents", "missing.npz"], "No latents file"),
])
def test_bad_input_is_one_sentence_and_exit_2(flags, message, ckpt, tmp_path, capsys, monkeypatch):
    code, out, err = sgan_here(capsys, "interpolate", "-r", tmp_path, "--ckpt", ckpt, *flags)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("sgan: ") and message in err, err
