"""`sgan project` as a user runs it: a generated image found again, the latents file that renders the
reconstruction and pipes into `sgan mix`, resuming per target, and bad inputs one sentence each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import FACES, REPO, sgan, sgan_here, small_stylegan2
from PIL import Image

from stylegan_cli.data.dataset import Dataset
from stylegan_cli.model import checkpoint
from stylegan_cli.model.generator import Generator
from stylegan_cli.projection.projector import ProjectConfig, w_statistics
from stylegan_cli.synthesis.latents import z_from_seed

STEPS = 150


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def write_run(run, G: Generator, config: dict):
    """A run whose checkpoint holds G as its moving-average generator, written by sgan's own `checkpoint.save`."""
    state = {**checkpoint.header(), "config": config, "nimg": 0, "step": 0, "resolution": G.resolution,
             "alpha": 1.0, "G_ema": G.state_dict()}
    checkpoint.save(run, state, kimg=0)
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("project"), *small_stylegan2())


@pytest.fixture(scope="module")
def projected(run):
    """Seed 5's image, rendered by `sgan sample`, projected: (the JSON document, the target's path)."""
    made = sgan("sample", "-r", run, "--seeds", 5, "--out", run / "targets")
    assert made.returncode == 0, made.stderr
    target = run / "targets" / "seed0005.png"
    result = sgan("project", "-r", run, "--target", target, "--no-align", "--steps", STEPS, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), target


def test_a_generated_image_is_found_again(run, projected):
    doc, target = projected
    [found] = doc["targets"]
    assert found["name"] == "seed0005" and found["steps"] == STEPS and doc["failed"] == []
    assert found["lpips"] < 0.5 * found["lpips_start"] and found["psnr"] > found["psnr_start"] + 6
    out = run / "project"
    assert sorted(p.name for p in out.iterdir()) == sorted(["seed0005.png", "seed0005-target.png", "latents.npz",
                                                            "project.json", found["files"][2]])
    assert found["files"][2] in ("seed0005-steps.gif", "seed0005-steps.mp4")
    assert np.array_equal(pixels(out / "seed0005-target.png"), pixels(target))  # already 32x32: taken as it is

    G, _ = small_stylegan2()
    with torch.no_grad():
        w_true = G.mapping(torch.tensor(z_from_seed(5, 16), dtype=torch.float32)[None])[0]
    centre, _ = w_statistics(G, ProjectConfig.w_samples, seed=0)  # where the search starts
    with np.load(out / "latents.npz") as npz:
        w = torch.from_numpy(npz["w"][0])
        assert npz["names"].tolist() == ["seed0005"] and "z" not in npz and "seeds" not in npz
        assert [npz[f"noise{i}"].shape for i in range(7)] == [(1, r, r) for r in (4, 8, 8, 16, 16, 32, 32)]
    assert (w - w_true).norm(dim=1).max() < 0.6 * (centre - w_true).norm()


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_the_latents_file_renders_the_reconstruction_byte_for_byte(run, projected, tmp_path, noise_mode):
    result = sgan("sample", "-r", run, "--seeds", run / "project" / "latents.npz:0", "--noise-mode", noise_mode,
                  "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "seed0005.png")]
    assert (tmp_path / "seed0005.png").read_bytes() == (run / "project" / "seed0005.png").read_bytes()


def test_a_projection_pipes_into_mix(run, projected, tmp_path):
    _, target = projected
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    project = subprocess.Popen([sys.executable, "-m", "stylegan_cli", "project", "-r", str(run), "--target",
                                str(target), "--no-align", "--steps", str(STEPS)], stdout=subprocess.PIPE, env=env)
    mixed = subprocess.run([sys.executable, "-m", "stylegan_cli", "mix", "-r", str(run), "--out", str(tmp_path),
                            "--coarse", "-", "--middle", f"{run / 'project' / 'latents.npz'}:0"],
                           stdin=project.stdout, capture_output=True, text=True, env=env)
    project.stdout.close()
    assert project.wait() == 0 and mixed.returncode == 0, mixed.stderr
    # the projection mixed with itself, noise maps and all, is the reconstruction
    assert mixed.stdout.split()[0] == str(tmp_path / "seed0005-seed0005.png")
    assert (tmp_path / "seed0005-seed0005.png").read_bytes() == (run / "project" / "seed0005.png").read_bytes()


@pytest.mark.slow
def test_an_interrupted_projection_keeps_finished_targets_and_resumes_to_the_same_result(run, tmp_path):
    targets = tmp_path / "targets"
    made = sgan("sample", "-r", run, "--seeds", "1-3", "--out", targets)
    assert made.returncode == 0, made.stderr
    args = ["project", "-r", run, "--target", targets, "--no-align", "--steps", 40]
    reference = sgan(*args, "--out", tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "stylegan_cli", *map(str, args), "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "project.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # the first target is committed, the second under way
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    kept = json.loads((out / "project.json").read_text())["targets"]
    assert f"Interrupted after {len(kept)} of 3 targets" in stderr and 1 <= len(kept) < 3
    first = {name: (out / name).stat().st_mtime_ns for name in kept[0]["files"]}

    resumed = sgan(*args, "--out", out)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming: {len(kept)} of 3 targets are projected already." in resumed.stderr
    assert resumed.stdout == reference.stdout.replace(str(tmp_path / "reference"), str(out))
    assert {name: (out / name).stat().st_mtime_ns for name in first} == first  # kept, not projected again
    with np.load(out / "latents.npz") as a, np.load(tmp_path / "reference" / "latents.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    for name in ("seed0001.png", "seed0002.png", "seed0003.png"):
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()


@pytest.mark.slow
def test_faces_are_aligned_as_prep_aligns_them_and_unusable_targets_are_one_sentence_each(run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(FACES / "001_03.jpg", photos / "face.jpg")
    (photos / "broken.jpg").write_bytes((FACES / "001_03.jpg").read_bytes()[:3000])
    Image.new("RGB", (300, 200), (128, 120, 110)).save(photos / "wall.png")
    result = sgan("project", "-r", run, "--target", photos, "--landmarks", "dlib", "--steps", 3, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [t["name"] for t in doc["targets"]] == ["face"]
    assert [(f["source"], f["reason"]) for f in doc["failed"]] == [("broken.jpg", "truncated"), ("wall.png", "no face")]
    assert "wall.png: no face was found; not projected." in result.stderr
    assert "broken.jpg: " in result.stderr and "Traceback" not in result.stderr

    prep_src = tmp_path / "prep-src"
    prep_src.mkdir()
    shutil.copy(FACES / "001_03.jpg", prep_src / "face.jpg")
    prep = sgan("prep", "ffhq", "--src", prep_src, "-r", tmp_path / "prepped", "--landmarks", "dlib",
                "--resolution", 32, "--workers", 1)
    assert prep.returncode == 0, prep.stderr
    aligned = Dataset(tmp_path / "prepped" / "data" / "dataset.lmdb").image(0, 32)
    assert np.array_equal(pixels(run / "project" / "face-target.png"), aligned)


def test_nothing_to_project_is_an_error(run, tmp_path, capsys):
    Image.new("RGB", (64, 64), (0, 0, 0)).save(tmp_path / "dark.png")
    result = sgan("project", "-r", run, "--target", tmp_path / "dark.png", "--landmarks", "dlib", "--steps", 1,
                  "--out", tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "sgan: No target could be projected (dark.png: no face was found)."

    code, _, err = sgan_here(capsys, "project", "-r", run, "--target", tmp_path / "missing.jpg")
    assert code == 2 and "no such file or folder" in err
    code, _, err = sgan_here(capsys, "project", "-r", run, "--target", tmp_path / "dark.png", "--landmarks", "x.txt")
    assert code == 2 and "--landmarks must be fan, dlib or a .json landmarks file" in err


def test_a_progressive_gan_checkpoint_is_refused_in_one_sentence(tmp_path, capsys):
    G = Generator("pggan", 16, z_dim=16, w_dim=16, fmap_base=64, fmap_max=16)
    pggan = write_run(tmp_path / "pggan", G, {"arch": "pggan", "resolution": 16, "z_dim": 16, "w_dim": 16,
                                              "fmap_base": 64, "fmap_max": 16})
    Image.new("RGB", (16, 16)).save(tmp_path / "t.png")
    code, out, err = sgan_here(capsys, "project", "-r", pggan, "--target", tmp_path / "t.png", "--no-align")
    assert code == 2 and out == ""
    assert "holds a Progressive GAN generator, which has no mapping network" in err
    assert not (pggan / "project").exists()
