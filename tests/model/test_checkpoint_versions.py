"""Checkpoints written by earlier versions of sgan load as the networks they held."""

import pytest
import torch
from conftest import sgan

from stylegan_cli.core.errors import UsageError
from stylegan_cli.model import checkpoint
from stylegan_cli.model.discriminator import Discriminator
from stylegan_cli.model.generator import Generator

CONFIG = {"resolution": 16, "fmap_base": 256, "fmap_max": 32, "z_dim": 16, "w_dim": 16, "mapping_layers": 2,
          "mapping_width": 16}


def _version_1(G: Generator, D: Discriminator, config: dict) -> dict:
    """The state sgan's version 1 wrote: every bias of a layer whose gain follows it (StyleGAN2's) stored
    multiplied by that gain, and no `layer_noise` in the configuration."""
    def scaled(net):
        state = {k: v.clone() for k, v in net.state_dict().items()}
        for name, module in net.named_modules():
            if getattr(module, "bias_gain", 1.0) != 1.0:
                state[f"{name}.bias"] *= module.bias_gain
        return state
    return {"format": checkpoint.FORMAT, "version": 1, "config": config, "nimg": 0, "step": 0,
            "G": scaled(G), "G_ema": scaled(G), "D": scaled(D)}


@pytest.mark.parametrize("g_arch, d_arch", [("skip", "resnet"), ("resnet", "skip")])
def test_a_version_1_stylegan2_checkpoint_computes_what_it_computed(tmp_path, g_arch, d_arch):
    torch.manual_seed(0)
    config = {**CONFIG, "arch": "stylegan2", "g_arch": g_arch, "d_arch": d_arch}
    G = Generator("stylegan2", 16, z_dim=16, w_dim=16, mapping_layers=2, mapping_width=16, fmap_base=256, fmap_max=32,
                  g_arch=g_arch, layer_noise=True)
    D = Discriminator(16, fmap_base=256, fmap_max=32, d_arch=d_arch)
    with torch.no_grad():
        for p in [*G.parameters(), *D.parameters()]:
            p.add_(0.3 * torch.randn_like(p))  # biases and noise strengths away from their zero start
    path = tmp_path / "ckpt-0000000.pt"
    torch.save(_version_1(G, D, config), path)

    state = checkpoint.load_training_state(path)
    assert state["version"] == checkpoint.VERSION
    G2, D2 = checkpoint.build_generator(state["config"]), checkpoint.build_discriminator(state["config"])
    G2.load_state_dict(state["G_ema"])
    D2.load_state_dict(state["D"])
    z = torch.randn(4, 16)
    images = torch.nn.functional.interpolate(torch.randn(4, 3, 4, 4), size=16, mode="bilinear")
    with torch.no_grad():
        assert torch.allclose(G2(z, noise_mode="const"), G(z, noise_mode="const"), atol=1e-5)
        assert torch.allclose(D2(images), D(images), atol=1e-5)


@pytest.mark.parametrize("version, g_arch, d_arch", [(1, "orig", "orig"), (2, "orig", "orig"), (2, "skip", "orig")])
def test_a_stylegan2_original_design_from_before_version_3_is_refused_and_kept(tmp_path, version, g_arch, d_arch):
    """Before version 3 sgan's stylegan2 original design resampled as StyleGAN does; its weights would compute other
    images in StyleGAN2's own layers, so resuming or sampling it is a usage error naming the file, and the file is
    neither changed nor set aside as damaged."""
    config = {**CONFIG, "arch": "stylegan2", "g_arch": g_arch, "d_arch": d_arch}
    G = checkpoint.build_generator(config)
    D = checkpoint.build_discriminator(config)
    run = tmp_path / "run"
    path = run / "checkpoints" / "ckpt-0000004.pt"
    path.parent.mkdir(parents=True)
    torch.save({**_version_1(G, D, config), "version": version}, path)
    before = path.read_bytes()

    with pytest.raises(UsageError, match="original design from sgan before checkpoint version 3"):
        checkpoint.load_training_state(path)
    with pytest.raises(UsageError, match=str(path)):
        checkpoint.newest_readable(run)
    assert path.read_bytes() == before and not list(path.parent.glob("*.damaged*"))
    result = sgan("sample", "-r", run, "--seeds", "0")
    assert result.returncode == 2 and "train again" in result.stderr, result.stderr
