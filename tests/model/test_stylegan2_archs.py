"""StyleGAN2's skip and residual networks (SG2 Fig. 7, config F): NVIDIA's parameter counts, every G/D
combination's shapes, and the FIR resampling against independent formulations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from stylegan_cli.model import checkpoint
from stylegan_cli.model.discriminator import D_ARCHS, Discriminator, StyleGAN2Block
from stylegan_cli.model.generator import G_ARCHS, Generator
from stylegan_cli.model.resample import downsample2d, fir_filter, upfirdn2d, upsample2d
from stylegan_cli.model.synthesis_layers import ModulatedConv2d, NoiseInjection

SMALL = dict(z_dim=32, w_dim=32, fmap_base=256, fmap_max=64)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("resolution, g_params, d_params", [(256, 30_034_338, 28_864_129),
                                                           (1024, 30_370_060, 29_012_513)])
def test_config_f_has_nvidias_parameter_counts(resolution, g_params, d_params):
    """Counted with NVIDIA's own code: channel base 32768, at most 512 maps, 8 mapping layers; sgan's
    --fmap-base is half NVIDIA's channel base."""
    assert count(Generator("stylegan2", resolution, fmap_base=16384, g_arch="skip")) == g_params
    assert count(Discriminator(resolution, fmap_base=16384, d_arch="resnet")) == d_params


@pytest.mark.parametrize("g_arch", G_ARCHS)
@pytest.mark.parametrize("d_arch", D_ARCHS)
@pytest.mark.parametrize("resolution", [8, 32, 64])
def test_every_combination_runs_at_its_resolution(g_arch, d_arch, resolution):
    torch.manual_seed(0)
    G = Generator("stylegan2", resolution, g_arch=g_arch, **SMALL)
    D = Discriminator(resolution, fmap_base=256, fmap_max=64, d_arch=d_arch)
    assert G.num_ws == 2 * int(np.log2(resolution)) - 2
    ws = G.mapping(torch.randn(4, 32), broadcast=True)
    img = G.synthesis(ws, noise=G.make_noise(4))
    assert img.shape == (4, 3, resolution, resolution) and torch.isfinite(img).all()
    scores = D(img)
    assert scores.shape == (4,) and torch.isfinite(scores).all()
    scores.sum().backward()
    if d_arch != "orig":  # orig's lower FromRGB layers serve growing only
        assert all(p.grad is not None for p in D.parameters())


@pytest.mark.parametrize("g_arch", ["orig", "skip", "resnet"])
def test_every_stylegan2_design_has_stylegan2s_layers(g_arch):
    """StyleGAN2's code builds all its designs, the growing original of configs B-D included, from its own layers:
    one noise strength per layer, a constant drawn from N(0, 1), upsampling inside the conv with the [1,3,3,1]
    filter; StyleGAN keeps per-channel noise strengths."""
    G = Generator("stylegan2", 32, g_arch=g_arch, **SMALL)
    noise = [m for m in G.modules() if isinstance(m, NoiseInjection)]
    assert noise and all(m.strength.shape == () for m in noise)
    assert G.blocks[0].input.const.std() > 0.5  # the constant is drawn from N(0, 1), not set to one
    assert all(layer.conv.fir_up == (i == 0) for b in G.blocks[1:] for i, layer in enumerate(b.layers))
    stylegan = Generator("stylegan", 32, **SMALL)
    assert all(m.strength.ndim == 1 for m in stylegan.modules() if isinstance(m, NoiseInjection))  # per channel


def test_only_resnet_generators_drop_the_lower_torgb_layers():
    resnet = Generator("stylegan2", 32, g_arch="resnet", **SMALL)
    assert [b.to_rgb is not None for b in resnet.blocks] == [False, False, False, True]
    for g_arch in ("orig", "skip"):  # orig grows through them, skip sums them
        assert all(b.to_rgb is not None for b in Generator("stylegan2", 32, g_arch=g_arch, **SMALL).blocks)


def test_the_original_discriminator_takes_its_generators_layers():
    """Progressive GAN's blocks without blur, StyleGAN's with it, and StyleGAN2's own (the [1,3,3,1] filter before a
    stride-2 conv, gains after the biases) for stylegan2, as StyleGAN2's D_stylegan and ADA's 'orig' build it."""
    blocks = {arch: Discriminator(32, fmap_base=256, fmap_max=64, arch=arch).blocks[0]
              for arch in ("pggan", "stylegan", "stylegan2")}
    assert blocks["pggan"].blur is None and blocks["stylegan"].blur is not None
    assert isinstance(blocks["stylegan2"], StyleGAN2Block) and blocks["stylegan2"].skip is None
    assert blocks["stylegan2"].conv0.bias_gain == pytest.approx(2**0.5)


def test_stylegan_and_pggan_keep_their_own_blocks():
    for arch in ("stylegan", "pggan"):
        with pytest.raises(ValueError, match="g_arch"):
            Generator(arch, 32, g_arch="skip", **SMALL)
    with pytest.raises(ValueError, match="d_arch"):
        Discriminator(32, d_arch="residual")


def test_skip_and_resnet_discriminators_do_not_grow():
    D = Discriminator(32, fmap_base=256, fmap_max=64, d_arch="resnet")
    with pytest.raises(AssertionError, match="does not grow"):
        D(torch.randn(2, 3, 16, 16), res=16)


def test_checkpoints_written_before_the_new_archs_rebuild_the_original_networks():
    old_config = {"arch": "stylegan2", "resolution": 16, "fmap_base": 256, "fmap_max": 64}
    G, D = checkpoint.build_generator(old_config), checkpoint.build_discriminator(old_config)
    assert G.g_arch == "orig" and D.d_arch == "orig"
    new = Generator("stylegan2", 16, fmap_base=256, fmap_max=64)
    assert G.state_dict().keys() == new.state_dict().keys()


def _numpy_upfirdn(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int],
                   gain: float) -> np.ndarray:
    """The definition, one image plane at a time: insert zeros, pad, convolve (true convolution), decimate."""
    h, w = x.shape
    z = np.zeros((h * up, w * up))
    z[::up, ::up] = x
    x0, x1, y0, y1 = pad
    z = np.pad(z, ((y0, y1), (x0, x1)))
    return convolve2d(z, f * gain, mode="valid")[::down, ::down]


def test_fir_resampling_matches_its_definition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8))
    f = fir_filter().numpy()
    assert np.allclose(f, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)
    up = upsample2d(torch.from_numpy(x), fir_filter().double()).numpy()
    down = downsample2d(torch.from_numpy(x), fir_filter().double()).numpy()
    assert up.shape == (2, 3, 16, 16) and down.shape == (2, 3, 4, 4)
    for n in range(2):
        for c in range(3):
            assert np.allclose(up[n, c], _numpy_upfirdn(x[n, c], f, 2, 1, (2, 1, 2, 1), 4.0))
            assert np.allclose(down[n, c], _numpy_upfirdn(x[n, c], f, 1, 2, (1, 1, 1, 1), 1.0))
    # an asymmetric filter is applied as a true convolution, not a correlation
    g = torch.arange(1.0, 5.0).view(2, 2)
    ones = upfirdn2d(torch.from_numpy(x[:1, :1]).float(), g, padding=(1, 1, 1, 1)).numpy()[0, 0]
    assert np.allclose(ones, convolve2d(np.pad(x[0, 0], 1), g.numpy(), mode="valid"), atol=1e-5)


def test_fir_upsampling_conv_equals_the_generic_formulation():
    """The stride-2 transposed conv then filter equals NVIDIA's generic reference: upsample by zero insertion,
    pad 3/2, filter, then a valid 3x3 convolution with the flipped kernel."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(8, 5, 3, w_dim=4, fir_up=True).double()
    x, w = torch.randn(2, 8, 6, 6, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    s = conv.affine(w)
    weight = conv.weight * conv.weight_gain
    d = (s.square() @ weight.square().sum(dim=(2, 3)).T + 1e-8).rsqrt()
    generic = upfirdn2d(x * s.view(2, -1, 1, 1), fir_filter().double(), up=2, padding=(3, 2, 3, 2), gain=4)
    generic = F.conv2d(generic, weight.flip([2, 3])) * d.view(2, -1, 1, 1)
    assert torch.allclose(conv(x, w), generic, atol=1e-10)


def test_activations_are_clamped_in_reduced_precision_only():
    torch.manual_seed(0)
    G = Generator("stylegan2", 16, g_arch="skip", **SMALL)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("layers.0.bias") or name.endswith("layers.1.bias"):
                p.fill_(1e4)  # activations far beyond the clamp
    ws = G.mapping(torch.randn(2, 32), broadcast=True)
    layer = G.blocks[1].layers[1]
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        assert layer(x, ws[:, 3], "none").abs().max() > 1e3
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer(x.bfloat16(), ws[:, 3], "none").abs().max() <= 256.0
