"""sgan's StyleGAN2 training step equals NVIDIA's: networks written by NVIDIA's StyleGAN2-ADA code, imported with
`sgan import`, trained for two iterations on the same reals, latents and noise, give the same loss terms, the same
path-length mean and the same updated G, D and moving average, to float32 precision.

Both sides compute in float64 (NVIDIA's reference was run so, see its README): in float32 two correct codes part
wherever a leaky ReLU input lies within rounding of zero, which flips its slope in the path-length Jacobian.

The reference data (tests/nvidia/training_parity/, see its README) was written by NVIDIA's own code through
tests/nvidia/make_training_parity.py: iteration 0 runs all four of their phases (Gmain, Greg, Dmain, Dreg),
iteration 1 the main ones only. The ADA kind (config F with `--aug ada`: their augmentation pipe in front of every
D pass, R1's included, its draws from one seeded generator in both codes) runs five iterations from p = 0.5, so
that p is adjusted once (after the fourth) and the fifth augments at the adjusted p. The conditional kind (config F
with 3 classes: NVIDIA's label embedding in G's mapping network, their projection D with its 8-layer label mapping)
feeds fixed one-hot labels of the reals and of each phase's fakes.
"""

import json
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch
from conftest import REPO, sgan

from stylegan_cli.model import checkpoint
from stylegan_cli.nvidia import convert
from stylegan_cli.training.config import TrainConfig
from stylegan_cli.training.distributed import Dist
from stylegan_cli.training.trainer import Draws, Trainer

DATA = REPO / "tests" / "nvidia" / "training_parity"
# G and D architectures: StyleGAN2 config F's, the other two redesigns, and the original design (Fig. 7a); config F
# with ADA, and config F class-conditional
KINDS = ("skip-resnet", "resnet-skip", "orig-orig", "skip-resnet-ada", "skip-resnet-cond")
COND_CLASSES = 3  # the conditional kind's c_dim (its README)
ADA = {"aug": "ada", "augpipe": "bgc", "ada_target": 0.6, "ada_kimg": 0.1}  # the ADA kind's (its README)
ADA_P0, AUG_SEED = 0.5, 77
# The reference run's settings (its README): batch 8, R1 gamma 1 every 16, path length 2 every 4 on half the batch.
SETTINGS = {"batch": 8, "lr": 0.002, "gamma": 1.0, "r1_every": 16, "pl_weight": 2.0, "pl_every": 4, "mixing": 0.0,
            "ema_kimg": 10.0, "ema_rampup": 0.05, "precision": "fp32"}
PHASES = {"G": "Gmain", "G_pl": "Greg", "D": "Dmain"}


def _reported(losses: dict, iteration: int, phase: str, name: str) -> np.ndarray:
    (values,) = [r["values"] for r in losses["reports"]
                 if (r["iteration"], r["phase"], r["name"]) == (iteration, phase, name)]
    return np.asarray(values, dtype=np.float64)


def _fed(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).double()


def _labels(inputs, key: str) -> torch.Tensor | None:
    """The conditional kind's fed class indices as one-hot labels; None for the unconditional kinds (no such key)."""
    if key not in inputs:
        return None
    return torch.nn.functional.one_hot(torch.from_numpy(inputs[key]), COND_CLASSES).double()


class _Images:
    """The trainer's dataset: 8 images, never read (the test feeds the reals), and in a conditional run their class
    labels, which the trainer keeps for drawing the fakes' labels (the test feeds those too)."""

    def __init__(self, c_dim: int):
        self.labels = np.arange(8) % c_dim if c_dim else None

    def __len__(self) -> int:
        return 8


def _draws(inputs, iteration: int, phases: list[str]) -> dict[str, Draws]:
    def noise(p: str) -> list[torch.Tensor]:
        return [_fed(inputs[f"noise_{iteration}_{p}_{k}"]) for k in range(5)]

    draws = {}
    for name in phases:
        if name in PHASES:
            p = PHASES[name]
            z, c = _fed(inputs[f"z_{iteration}_{p}"]), _labels(inputs, f"genc_{iteration}_{p}")
            if name == "G_pl":  # their pl_batch_shrink 2: the first half of the phase's latents (and labels)
                draws[name] = Draws(z[:4], noise(p), pl_y=_fed(inputs[f"plnoise_{iteration}"]),
                                    c=None if c is None else c[:4])
            else:
                draws[name] = Draws(z, noise(p), c=c)
    return draws


def _iterations(kind: str) -> int:
    return 5 if kind.endswith("-ada") else 2


def _compared(kind: str) -> list[int]:
    """The iterations after which NVIDIA's networks were written (after{i + 1}.pkl)."""
    return [4] if kind.endswith("-ada") else [0, 1]


@pytest.fixture(scope="module", params=KINDS)
def parity(request, tmp_path_factory):
    """(kind, the trainer after each iteration's stats, NVIDIA's losses) for networks imported as a user would."""
    kind = request.param
    ada, cond = kind.endswith("-ada"), kind.endswith("-cond")
    run = tmp_path_factory.mktemp(kind) / "run"
    result = sgan("import", DATA / f"{kind.removesuffix('-ada')}-before.pkl", "-r", run, "--json")
    assert result.returncode == 0, result.stderr
    state = checkpoint.load_training_state(checkpoint.latest(run))
    cfg = TrainConfig(**{**state["config"], **SETTINGS, **(ADA if ada else {})}).resolved(torch.device("cpu"))
    assert cfg.c_dim == (COND_CLASSES if cond else 0), kind  # as `sgan import` read it from their networks
    trainer = Trainer(cfg, run, _Images(cfg.c_dim), Dist(device=torch.device("cpu")))
    trainer.load_state(state)
    if ada:
        trainer.augment.p.fill_(ADA_P0)
        trainer.augment_rng.manual_seed(AUG_SEED)
    else:
        assert trainer.augment is None
    for net in (trainer.G, trainer.D, trainer.G_ema):
        net.double()
    trainer.pl_mean = trainer.pl_mean.double()
    inputs = np.load(DATA / f"{kind}-inputs.npz")
    stats, snapshots = [], []
    for i in range(_iterations(kind)):
        phases = trainer.phases()
        assert phases == ["G"] + ["G_pl"] * (i % 4 == 0) + ["D"] + ["D_r1"] * (i % 16 == 0)
        reals = _fed(inputs[f"reals_{i}"])
        stats.append(trainer.train_step(reals, 16, 1.0, _draws(inputs, i, phases), _labels(inputs, f"realc_{i}")))
        snapshots.append({"G": {k: v.clone() for k, v in trainer.G.state_dict().items()},
                          "D": {k: v.clone() for k, v in trainer.D.state_dict().items()},
                          "G_ema": {k: v.clone() for k, v in trainer.G_ema.state_dict().items()},
                          "pl_mean": float(trainer.pl_mean),
                          "p": float(trainer.augment.p) if ada else None})
    return kind, stats, snapshots, json.loads((DATA / f"{kind}-losses.json").read_text())


def test_the_loss_terms_equal_nvidias(parity):
    kind, stats, _, losses = parity
    for i in range(_iterations(kind)):
        expected = {"loss_G": _reported(losses, i, "Gmain", "Loss/G/loss").mean(),
                    "loss_D": _reported(losses, i, "Dmain", "Loss/D/loss").mean()}
        # sgan reports the regularisers as added to the loss: times their interval (StyleGAN2 §3.1)
        if i % 4 == 0:
            expected["pl"] = _reported(losses, i, "Greg", "Loss/G/reg").mean() * 4
        if i % 16 == 0:
            expected["r1"] = _reported(losses, i, "Dreg", "Loss/D/reg").mean() * 16
        if kind.endswith("-ada"):  # ADA's overfitting heuristic over the step's reals
            expected["r_t"] = _reported(losses, i, "Dmain", "Loss/signs/real").mean()
        assert set(stats[i]) == set(expected), kind
        for name, value in expected.items():
            assert float(stats[i][name]) == pytest.approx(value, rel=1e-5, abs=1e-6), (kind, i, name)


def test_the_path_length_mean_equals_nvidias(parity):
    kind, _, snapshots, losses = parity
    for i in range(_iterations(kind)):
        (expected,) = [p["pl_mean"] for p in losses["pl_mean"] if p["iteration"] == i]
        assert snapshots[i]["pl_mean"] == pytest.approx(expected, rel=1e-5), (kind, i)


def test_adas_p_equals_nvidias_after_every_iteration(parity):
    """p stays at its start for four iterations, then moves by batch * 4 / (ada_kimg * 1000) = 0.32 towards the
    target, as their training loop moves it."""
    kind, _, snapshots, losses = parity
    if not kind.endswith("-ada"):  # nothing augments without --aug
        assert "augment_p" not in losses and all(s["p"] is None for s in snapshots)
        return
    expected = [p["p"] for p in losses["augment_p"]]
    assert [s["p"] for s in snapshots] == pytest.approx(expected, abs=1e-6)
    assert expected[3] != expected[2]


@pytest.mark.parametrize("net", ["G", "D", "G_ema"])
def test_the_updated_networks_equal_nvidias(parity, net):
    """Every parameter and buffer after each iteration, against NVIDIA's snapshot converted by `sgan import`'s
    converter: the G and D updates of each of their phases (the path-length penalty reaching the mapping network,
    R1 and path length scaled by their intervals, Adam's lazy-regularisation lr and betas, the noise strengths,
    w_avg moved by every pass), and the moving average with its ramp-up."""
    kind, _, snapshots, _ = parity
    for i in _compared(kind):
        theirs = asdict(convert.read(DATA / f"{kind}-after{i + 1}.pkl"))[net]
        ours = snapshots[i][net]
        assert set(ours) == set(theirs), (kind, net)
        for key, value in theirs.items():
            # Their files hold float32 values: the float64 result rounded once (and Adam's step on a gradient that
            # is zero up to rounding is not a definite sign, so the scale is the parameter's, not the step's).
            scale = max(1.0, value.abs().max().item())
            error = (ours[key].float() - value).abs()
            # Adam moves an element by lr * g / (sqrt(v) + eps): where |g| is within rounding of eps (1e-8), the
            # two codes' last-bit differences move it by different fractions of one step. A few such elements per
            # thousand may part by at most a step; everything else agrees to float32 precision.
            apart = error > 1e-6 * scale
            assert int(apart.sum()) <= max(1, value.numel() // 1000), (kind, i, net, key, error.max().item())
            assert error.max().item() <= SETTINGS["lr"], (kind, i, net, key, error.max().item())


def test_the_updates_are_not_trivially_equal(parity):
    """The check above compares something: the first iteration moved every parameter away from NVIDIA's start."""
    kind, _, snapshots, _ = parity
    before = asdict(convert.read(DATA / f"{kind.removesuffix('-ada')}-before.pkl"))
    # sgan's original design has a ToRGB/FromRGB per resolution for growing, NVIDIA's only the top one; the
    # lower ones are not in the file and a run without growing leaves them as they are.
    growing_only = r"blocks\.[0-1]\.to_rgb\.|from_rgb\.[0-1]\." if kind == "orig-orig" else None
    for net in ("G", "D"):
        unmoved = [k for k, v in before[net].items()
                   if not k.endswith("noise.const") and not (growing_only and re.match(growing_only, k))
                   and torch.allclose(snapshots[0][net][k].float(), v)]
        assert unmoved == [], (kind, net)
