"""`sgan train --aug`: StyleGAN2-ADA's augmentation in training, as a user runs it. ADA's controller raises p when
D overfits (r_t = E[sign D(real)] above the target) and never below 0; p, r_t and the settings are logged and
checkpointed, a resumed run continues bitwise, and contradicting or meaningless flags are refused."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import CIFAR, REPO, sgan, sgan_here

from stylegan_cli.model import checkpoint

TINY_F = ["--arch", "stylegan2", "--config-f", "--fmap-base", 128, "--fmap-max", 32, "--batch", 8, "--workers", 0,
          "--seed", 1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """64 CIFAR-10 images at 32x32 (7 or 6 of each class)."""
    src = tmp_path_factory.mktemp("cifar64")
    for i, path in enumerate(sorted(CIFAR.glob("*/*"))[::15][:64]):
        shutil.copy(path, src / f"{i:03d}{path.suffix}")
    run = tmp_path_factory.mktemp("prepped64")
    result = sgan("prep", "images", "--src", src, "-r", run, "--resolution", 32, "--workers", 1)
    assert result.returncode == 0, result.stderr
    return run / "data" / "dataset.lmdb"


def log(run):
    return [json.loads(line) for line in (run / "train" / "log.jsonl").read_text().splitlines()]


def train(run, data, *args):
    return sgan("train", "-r", run, "--data", data, *TINY_F, "--tick", 0.064, "--snap", 100, *args, timeout=600)


@pytest.mark.slow
def test_ada_raises_p_when_d_overfits_and_a_target_of_1_keeps_it_at_0(tmp_path, data):
    adapting = train(tmp_path / "ada", data, "--kimg", 1, "--aug", "ada", "--ada-kimg", 10)
    assert adapting.returncode == 0, adapting.stderr
    lines = log(tmp_path / "ada")
    assert all({"aug_p", "r_t"} <= set(line) for line in lines)
    assert {(line["aug"], line["augpipe"], line["ada_target"]) for line in lines} == {("ada", "bgc", 0.6)}
    assert max(line["aug_p"] for line in lines) > 0
    # every adjustment (4 steps of 8 images) moves p by 32 / (10 * 1000)
    steps = {round(line["aug_p"] / 0.0032, 6) for line in lines}
    assert all(s == int(s) for s in steps), steps
    never = train(tmp_path / "never", data, "--kimg", 0.256, "--aug", "ada", "--target", 1.0)
    assert never.returncode == 0, never.stderr
    assert {line["aug_p"] for line in log(tmp_path / "never")} == {0.0}  # r_t <= 1 is never above the target


@pytest.mark.slow
def test_stylegan2_on_a_small_dataset_augments_by_default_and_says_so(tmp_path, data):
    result = train(tmp_path, data, "--kimg", 0.016)
    assert result.returncode == 0, result.stderr
    assert "--aug ada --augpipe bgc" in result.stderr and "the default for stylegan2 on 64 images" in result.stderr
    state = checkpoint.load(checkpoint.latest(tmp_path))
    assert state["config"]["aug"] == "ada" and float(state["augment"]["p"]) >= 0
    plain = sgan("train", "-r", tmp_path / "sg", "--data", data, "--fmap-base", 128, "--fmap-max", 32, "--batch", 8,
                 "--workers", 0, "--kimg", 0.016, "--resolution", 16)
    assert plain.returncode == 0, plain.stderr
    assert "Augmenting" not in plain.stderr and "aug_p" not in log(tmp_path / "sg")[0]


@pytest.mark.slow
@pytest.mark.parametrize("aug", [["--aug", "fixed", "--p", 0.5], ["--aug", "ada", "--ada-kimg", 1]])
def test_a_resumed_run_continues_exactly(tmp_path, data, aug):
    """5 steps, then 10 more from the checkpoint, equal 15 in one go: with a fixed p, whose draws change every
    image D sees, and with ADA, whose checkpoint falls between two of p's adjustments (every 4 steps)."""
    args = [*aug, "--snap", 0.04]
    assert train(tmp_path / "once", data, "--kimg", 0.12, *args).returncode == 0
    assert train(tmp_path / "twice", data, "--kimg", 0.04, *args).returncode == 0
    resumed = train(tmp_path / "twice", data, "--kimg", 0.12, *args)
    assert resumed.returncode == 0 and "Resuming from" in resumed.stderr
    a, b = (checkpoint.load(checkpoint.latest(tmp_path / run)) for run in ("once", "twice"))
    assert a["nimg"] == b["nimg"] == 120
    assert float(a["augment"]["p"]) == 0.5 if "fixed" in aug else a["augment"]["signs"][1] == 3 * 8  # 3 steps' reals
    for key in ("p", "signs", "rng"):
        assert torch.equal(a["augment"][key], b["augment"][key]), key
    for net in ("G", "D", "G_ema"):
        for name in a[net]:
            assert torch.equal(a[net][name], b[net][name]), (net, name)


@pytest.mark.parametrize("then, message", [
    (["--aug", "none"], "trained with --aug ada --augpipe bgc --target 0.6"),
    (["--augpipe", "bgcfnc"], "--augpipe bgc"),
    (["--aug", "fixed", "--p", 0.2], "--aug ada"),
])
@pytest.mark.slow
def test_resuming_with_other_augmentation_settings_is_refused(tmp_path, data, then, message):
    assert train(tmp_path, data, "--kimg", 0.016, "--aug", "ada").returncode == 0
    other = train(tmp_path, data, "--kimg", 0.032, *then)
    assert other.returncode == 2 and message in other.stderr


@pytest.mark.parametrize("flags, message", [
    (["--aug", "fixed", "--p", 1.5], "--p"),
    (["--aug", "ada", "--target", 0], "--target 0.0"),
    (["--aug", "ada", "--target", 1.2], "--target"),
    (["--augpipe", "bgcx"], "--augpipe"),
    (["--aug", "fixed"], "--aug fixed needs --p"),
    (["--aug", "ada", "--p", 0.3], "--p is the probability of --aug fixed"),
    (["--aug", "none", "--target", 0.5], "--target and --ada-kimg steer --aug ada"),
])
def test_bad_augmentation_flags_are_one_sentence_and_exit_2(tmp_path, data, capsys, flags, message):
    code, out, err = sgan_here(capsys, "train", "-r", tmp_path, "--data", data, *map(str, TINY_F), *map(str, flags))
    assert code == 2 and message in err and out == ""
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


@pytest.mark.slow
def test_an_imported_network_fine_tunes_with_ada_on_a_small_dataset(tmp_path, data):
    """The README's worked example, on a 16x16 config F network written by NVIDIA's StyleGAN2-ADA code."""
    nvidia = REPO / "tests" / "nvidia" / "training_parity" / "skip-resnet-before.pkl"
    assert sgan("import", nvidia, "-r", tmp_path).returncode == 0
    tuned = sgan("train", "-r", tmp_path, "--data", data, "--aug", "ada", "--kimg", 0.032, "--batch", 8,
                 "--workers", 0, "--tick", 0.016)
    assert tuned.returncode == 0, tuned.stderr
    assert "Fine-tuning skip-resnet-before.pkl" in tuned.stderr and "--aug ada --augpipe bgc" in tuned.stderr
    state = checkpoint.load(checkpoint.latest(tmp_path))
    assert state["nimg"] == 32 and state["config"]["aug"] == "ada" and "augment" in state
    assert all("aug_p" in line for line in log(tmp_path))
    report = sgan("report", "-r", tmp_path)
    assert report.returncode == 0, report.stderr
    page = Path(report.stdout.split()[0]).read_text()
    assert 'data-chart="Augmentation (ADA): p and the overfitting heuristic r_t"' in page


@pytest.mark.parametrize("arch", [["--arch", "pggan", "--loss", "wgan-gp"], ["--arch", "stylegan"],
                                  ["--arch", "stylegan2", "--g-arch", "resnet", "--d-arch", "skip"]])
@pytest.mark.slow
def test_every_architecture_trains_augmented_through_a_fade_in(tmp_path, data, arch):
    """Growing networks are augmented at the current resolution (from 4x4 or 8x8, through the fades, up to 16x16);
    WGAN-GP's penalty takes D's gradient through the augmentation too."""
    result = sgan("train", "-r", tmp_path, "--data", data, *arch, "--fmap-base", 128, "--fmap-max", 32, "--batch", 8,
                  "--workers", 0, "--resolution", 16, "--kimg", 0.048, "--lod-kimg", 0.016, "--tick", 0.008,
                  "--aug", "fixed", "--p", 1)
    assert result.returncode == 0, result.stderr
    lines = log(tmp_path)
    if "stylegan2" not in arch:
        assert len({line["resolution"] for line in lines}) >= 2 and any(0 < line["alpha"] < 1 for line in lines)
    assert all(line["aug_p"] == 1.0 and -1 <= line["r_t"] <= 1 for line in lines)
