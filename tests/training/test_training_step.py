"""The passes of a training step and their random inputs, as NVIDIA's code makes them (the numbers themselves are
checked against NVIDIA's code in tests/nvidia/test_training_parity.py)."""

from pathlib import Path

import pytest
import torch

from stylegan_cli.training.config import TrainConfig
from stylegan_cli.training.distributed import Dist
from stylegan_cli.training.trainer import Trainer

SMALL = {"resolution": 16, "fmap_base": 256, "fmap_max": 32, "z_dim": 16, "w_dim": 16, "mapping_layers": 2,
         "mapping_width": 16, "batch": 8}


def _trainer(**settings) -> Trainer:
    cfg = TrainConfig(**{**SMALL, **settings}).resolved(torch.device("cpu"))
    return Trainer(cfg, Path("unused"), range(8), Dist(device=torch.device("cpu")))


@pytest.mark.parametrize("arch, first", [("stylegan2", ["G", "G_pl", "D", "D_r1"]), ("stylegan", ["D", "G"]),
                                         ("pggan", ["D", "G"])])
def test_each_step_runs_the_passes_nvidias_code_runs_in_its_order(arch, first):
    trainer = _trainer(arch=arch, **({"loss": "wgan-gp"} if arch == "pggan" else {}))
    assert trainer.phases() == first
    reals = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    seen = []
    for _ in range(5):
        seen.append(trainer.phases())
        stats = trainer.iteration(reals, None, 16, 1.0)
        assert {"loss_G", "loss_D"} <= set(stats)
    if arch == "stylegan2":  # path length every 4 steps, R1 every 16, each a pass of its own
        assert seen == [first, ["G", "D"], ["G", "D"], ["G", "D"], ["G", "G_pl", "D"]]
    else:  # R1 every step joins D's loss
        assert seen == [first] * 5


def test_style_mixing_is_drawn_per_batch_and_switches_every_sample_at_one_crossover():
    trainer = _trainer(arch="stylegan2", mixing=0.5)
    draws = [trainer.draw(8, 16) for _ in range(200)]
    mixed = [d for d in draws if d.mix_z is not None]
    assert 60 < len(mixed) < 140  # about half the batches
    assert {d.cutoff for d in mixed} == set(range(1, trainer.G.num_ws))  # every crossover among the inputs
    d = mixed[0]
    ws = trainer._ws(d)
    w1, w2 = trainer.G.mapping(d.z), trainer.G.mapping(d.mix_z)
    assert torch.equal(ws[:, : d.cutoff], w1.unsqueeze(1).expand(-1, d.cutoff, -1))
    assert torch.equal(ws[:, d.cutoff :], w2.unsqueeze(1).expand(-1, trainer.G.num_ws - d.cutoff, -1))


def test_only_the_first_latents_of_a_pass_move_w_avg():
    trainer = _trainer(arch="stylegan2", mixing=1.0)
    d = trainer.draw(8, 16)
    expected = trainer.G.mapping(d.z).detach().mean(0).lerp(trainer.G.w_avg, trainer.G.w_avg_beta)
    trainer._ws(d)
    assert torch.allclose(trainer.G.w_avg, expected)
