"""The networks against the papers' facts (docs/design.md §6): small models except for the parameter count."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from stylegan_cli.model.discriminator import Discriminator, MinibatchStd
from stylegan_cli.model.generator import ARCHS, Generator
from stylegan_cli.model.layers import Blur, EqualizedConv2d, EqualizedLinear, PixelNorm, feature_maps
from stylegan_cli.model.synthesis_layers import AdaIN, ModulatedConv2d, NoiseInjection

SMALL = dict(z_dim=32, w_dim=32, fmap_base=256, fmap_max=64)


def small_G(arch: str, resolution: int = 32, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(arch, resolution, **SMALL)


def small_D(resolution: int = 32, seed: int = 0) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(resolution, fmap_base=256, fmap_max=64)


def ws_for(G: Generator, n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(seed))


def test_feature_maps_follow_progressive_gan():
    assert [feature_maps(2**i) for i in range(2, 11)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert feature_maps(32, fmap_base=256, fmap_max=64) == 16


def test_equalized_lr_stores_unit_weights_and_scales_them_by_the_he_constant():
    torch.manual_seed(0)
    conv = EqualizedConv2d(64, 128, 3, gain=math.sqrt(2))
    assert conv.weight.std().item() == pytest.approx(1.0, rel=0.02)
    assert (conv.weight * conv.weight_gain).std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)
    fc = EqualizedLinear(512, 256, gain=math.sqrt(2), lr_mul=0.01, bias_init=0.5)
    assert fc.weight.std().item() == pytest.approx(100.0, rel=0.02)
    assert (fc.weight * fc.weight_gain).std().item() == pytest.approx(math.sqrt(2 / 512), rel=0.02)
    assert torch.allclose(fc.scaled_bias(), torch.full((256,), 0.5))


def test_a_gain_after_the_bias_is_stylegan2s_bias_act_and_its_bias_is_stored_unscaled():
    """StyleGAN2's layers compute lrelu(W x + b) * gain; the same layer stores NVIDIA's b."""
    torch.manual_seed(0)
    x = torch.randn(4, 16)
    for lr_mul in (1.0, 0.01):
        fc = EqualizedLinear(16, 8, gain=math.sqrt(2), lr_mul=lr_mul, gain_after_bias=True)
        torch.nn.init.normal_(fc.bias)
        w, b = fc.weight * lr_mul / math.sqrt(16), fc.bias * lr_mul
        expected = torch.nn.functional.leaky_relu(x @ w.T + b, 0.2) * math.sqrt(2)
        assert torch.allclose(torch.nn.functional.leaky_relu(fc(x), 0.2), expected, atol=1e-5)


def test_lr_mul_scales_the_effective_adam_step_and_the_mapping_uses_0_01():
    x = torch.randn(16, 8)
    steps = []
    for lr_mul in (1.0, 0.01):
        torch.manual_seed(0)
        layer = EqualizedLinear(8, 8, lr_mul=lr_mul)
        before = (layer.weight * layer.weight_gain).detach().clone()
        opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
        layer(x).square().sum().backward()
        opt.step()
        steps.append(((layer.weight * layer.weight_gain).detach() - before).abs().mean().item())
    assert steps[1] / steps[0] == pytest.approx(0.01, rel=0.01)
    G = small_G("stylegan")
    assert len(G.mapping_network.layers) == 8
    assert {layer.lr_mul for layer in G.mapping_network.layers} == {0.01}


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    y = PixelNorm()(torch.randn(2, 16, 5, 5) * 7)
    assert torch.allclose(y.square().mean(dim=1), torch.ones(2, 5, 5), atol=1e-5)


def test_blur_is_the_normalised_121_binomial_filter():
    impulse = torch.zeros(1, 2, 5, 5)
    impulse[:, :, 2, 2] = 1
    k = torch.tensor([1.0, 2.0, 1.0])
    expected = torch.outer(k, k) / 16
    out = Blur(2)(impulse)
    assert torch.allclose(out[0, 0, 1:4, 1:4], expected) and torch.allclose(out[0, 1, 1:4, 1:4], expected)
    assert out.sum().item() == pytest.approx(2.0)


def test_adain_normalises_each_channel_then_applies_the_styles_scale_and_bias():
    torch.manual_seed(0)
    adain = AdaIN(8, 16)
    assert torch.equal(adain.affine.bias.detach(), torch.cat([torch.ones(8), torch.zeros(8)]))
    torch.nn.init.normal_(adain.affine.bias)
    x = torch.randn(3, 8, 6, 6) * torch.rand(1, 8, 1, 1) * 5 + torch.randn(1, 8, 1, 1) * 3
    w = torch.randn(3, 16)
    ys, yb = adain.affine(w).chunk(2, dim=1)
    y = adain(x, w)
    assert torch.allclose(y.mean(dim=(2, 3)), yb, atol=1e-5)
    assert torch.allclose(y.std(dim=(2, 3), unbiased=False), ys.abs(), atol=1e-4)


def test_modulated_conv_equals_the_papers_per_sample_demodulated_weights():
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, w_dim=8)
    torch.nn.init.normal_(conv.affine.bias)
    x, w = torch.randn(3, 6, 7, 7), torch.randn(3, 8)
    s = conv.affine(w)
    for n in range(3):
        w1 = conv.weight * s[n].view(1, -1, 1, 1)  # SG2 Eq. 1
        w2 = w1 / (w1.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()  # SG2 Eq. 3
        assert torch.allclose(conv(x, w)[n : n + 1], F.conv2d(x[n : n + 1], w2, padding=1), atol=1e-5)


def test_demodulated_output_has_unit_std_for_unit_variance_input():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 32, 3, w_dim=16)
    torch.nn.init.normal_(conv.affine.bias)  # styles far from one, differing per channel
    y = conv(torch.randn(8, 64, 32, 32), torch.randn(8, 16))
    std = y[:, :, 1:-1, 1:-1].std(dim=(0, 2, 3))  # away from the zero padding
    assert torch.allclose(std, torch.ones(32), atol=0.06)


@pytest.mark.parametrize("arch", ARCHS)
def test_generator_fade_in_blends_the_upsampled_lower_resolution_output(arch):
    G = small_G(arch)
    ws = ws_for(G)
    low = G.synthesis(ws, res=16, noise_mode="const")
    full = G.synthesis(ws, res=32, noise_mode="const")
    skip = F.interpolate(low, scale_factor=2, mode="nearest")
    assert torch.equal(G.synthesis(ws, res=32, alpha=0.0, noise_mode="const"), skip)
    assert torch.allclose(G.synthesis(ws, res=32, alpha=0.25, noise_mode="const"), 0.75 * skip + 0.25 * full,
                          atol=1e-5)
    assert torch.equal(G.synthesis(ws, res=32, alpha=1.0, noise_mode="const"), full)
    assert not torch.allclose(full, skip, atol=1e-3)


def test_discriminator_fade_in_reads_the_pooled_image_at_alpha_0():
    D = small_D()
    img = torch.randn(4, 3, 32, 32)
    pooled = D(F.avg_pool2d(img, 2), res=16)
    assert torch.equal(D(img, res=32, alpha=0.0), pooled)
    assert torch.equal(D(img, res=32, alpha=1.0), D(img))
    half = D(img, res=32, alpha=0.5)  # the features blend, so the scores lie in neither end
    assert not torch.allclose(half, pooled) and not torch.allclose(half, D(img))


def test_truncation_psi_0_gives_w_avg_and_psi_1_is_a_no_op():
    G = small_G("stylegan")
    z = torch.randn(5, G.z_dim)
    G.mapping(torch.randn(64, G.z_dim), update_w_avg=True)
    assert G.w_avg.abs().sum() > 0
    ws = G.mapping(z, broadcast=True)
    assert torch.equal(G.truncate(ws, 0.0), G.w_avg.expand_as(ws))
    assert torch.equal(G.truncate(ws, 1.0), ws)
    assert torch.equal(G(z, truncation_psi=1.0, noise_mode="const"), G(z, noise_mode="const"))
    assert torch.equal(G(z, truncation_psi=0.0, noise_mode="const"),
                       G.synthesis(G.w_avg.expand_as(ws), noise_mode="const"))


def test_truncation_cutoff_changes_only_the_first_style_inputs():
    G = small_G("stylegan")
    G.w_avg.normal_()
    z = torch.randn(3, G.z_dim)
    ws = G.mapping(z, broadcast=True)
    t = G.truncate(ws, 0.5, cutoff=2)
    assert torch.allclose(t[:, :2], G.w_avg + 0.5 * (ws[:, :2] - G.w_avg), atol=1e-6)
    assert torch.equal(t[:, 2:], ws[:, 2:])
    assert torch.equal(G(z, truncation_psi=0.5, truncation_cutoff=2, noise_mode="const"),
                       G.synthesis(t, noise_mode="const"))


def test_w_avg_is_a_moving_average_of_mapping_outputs():
    G = small_G("stylegan")
    z = torch.randn(16, G.z_dim)
    w = G.mapping(z, update_w_avg=True)
    assert torch.allclose(G.w_avg, (1 - 0.995) * w.mean(dim=0), atol=1e-7)
    G.mapping(z)
    assert torch.allclose(G.w_avg, (1 - 0.995) * w.mean(dim=0), atol=1e-7)


@pytest.mark.parametrize("arch", ["stylegan", "stylegan2"])
def test_noise_modes_differ_only_through_the_noise(arch):
    G = small_G(arch, 16)
    ws = ws_for(G)
    out = {mode: G.synthesis(ws, noise_mode=mode) for mode in ("const", "random", "none")}
    assert torch.equal(out["const"], out["random"]) and torch.equal(out["const"], out["none"])  # strengths start at 0
    set_noise_strength(G, 0.5)
    assert torch.equal(G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))
    assert not torch.allclose(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
    assert not torch.allclose(G.synthesis(ws, noise_mode="none"), G.synthesis(ws, noise_mode="const"))
    other = set_noise_strength(small_G(arch, 16, seed=0), 0.5)  # same weights, global RNG elsewhere now
    assert torch.equal(G.synthesis(ws, noise_mode="const"), other.synthesis(ws, noise_mode="const"))
    noise = G.make_noise(4, generator=torch.Generator().manual_seed(3))
    again = G.make_noise(4, generator=torch.Generator().manual_seed(3))
    assert len(noise) == (2 * 3 if arch == "stylegan" else 2 * 3 - 1)
    assert torch.equal(G.synthesis(ws, noise=noise), G.synthesis(ws, noise=again))
    assert not torch.allclose(G.synthesis(ws, noise=noise), G.synthesis(ws, noise_mode="const"))


def test_const_noise_images_are_saved_and_older_checkpoints_without_them_load_the_seed_0_draw():
    G = set_noise_strength(small_G("stylegan", 16), 0.5)
    ws = ws_for(G)
    imported = set_noise_strength(small_G("stylegan", 16, seed=1), 0.5)
    imported.load_state_dict(G.state_dict())
    assert torch.equal(imported.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))
    state = {k: v.clone() for k, v in G.state_dict().items()}
    noise_keys = [k for k in state if k.endswith("noise.const")]
    assert len(noise_keys) == 6
    for k in noise_keys:
        state[k] = torch.randn_like(state[k])  # an imported network's own noise images
    G.load_state_dict(state)
    changed = G.synthesis(ws, noise_mode="const")
    assert not torch.allclose(changed, imported.synthesis(ws, noise_mode="const"))
    old = {k: v for k, v in state.items() if k not in noise_keys}  # a checkpoint from before they were saved
    rebuilt = small_G("stylegan", 16, seed=2)
    rebuilt.load_state_dict(old)
    assert torch.equal(rebuilt.synthesis(ws, noise_mode="const"), imported.synthesis(ws, noise_mode="const"))


def test_stylegan_blurs_after_the_upsampling_conv_and_pggan_d_does_not_blur():
    G = small_G("stylegan", 8)
    layer = G.blocks[1].layers[0]
    x = torch.randn(1, layer.conv.weight.shape[1], 4, 4)
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    expected = layer.blur(F.conv2d(up, layer.conv.weight * layer.conv.weight_gain, padding=1))
    blurred_first = F.conv2d(Blur(up.shape[1])(up), layer.conv.weight * layer.conv.weight_gain,
                             padding=1)
    layer.noise.strength.data.zero_()
    w = torch.zeros(1, G.w_dim)
    got = layer(x, w, "none")
    assert torch.allclose(got, layer.adain(F.leaky_relu(expected + layer.bias.view(1, -1, 1, 1), 0.2), w), atol=1e-6)
    assert not torch.allclose(expected, blurred_first, atol=1e-4)  # the order matters at the borders
    assert all(b.blur is not None for b in small_D(16).blocks)
    torch.manual_seed(0)
    assert all(b.blur is None for b in Discriminator(16, fmap_base=256, fmap_max=64, arch="pggan").blocks)


def set_noise_strength(G: Generator, value: float) -> Generator:
    for m in G.modules():
        if isinstance(m, NoiseInjection):
            m.strength.data.fill_(value)
    return G


def test_minibatch_std_is_zero_for_identical_images_and_the_group_std_otherwise():
    layer = MinibatchStd(group_size=4)
    same = layer(torch.randn(1, 8, 4, 4).repeat(8, 1, 1, 1))
    assert same.shape == (8, 9, 4, 4)
    assert torch.allclose(same[:, -1], torch.zeros(8, 4, 4), atol=2e-4)  # sqrt(1e-8) = 1e-4
    x = torch.randn(6, 8, 4, 4)  # 6 is not divisible by 4: groups of 3 samples, 2 apart (NVIDIA's strided groups)
    out = layer(x)
    for g in range(2):
        expected = x[g::2].std(dim=0, unbiased=False).mean()
        assert torch.allclose(out[g::2, -1], expected.expand(3, 4, 4), atol=1e-5)
    assert torch.equal(out[:, :8], x)


def test_stylegan_generator_has_26_2m_parameters_and_18_style_inputs():
    G = Generator("stylegan", 1024)
    assert sum(p.numel() for p in G.parameters()) == pytest.approx(26.2e6, rel=0.02)  # SG Fig. 1
    assert G.num_ws == 18 and G.start_resolution == 8
    assert G.style_layer_resolutions() == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512,
                                           1024, 1024]
    pggan = Generator("pggan", 1024)
    assert sum(p.numel() for p in pggan.parameters()) == pytest.approx(23.1e6, rel=0.02)  # SG Fig. 1 "traditional"
    assert pggan.num_ws == 1 and pggan.start_resolution == 4


@pytest.mark.parametrize("arch", ARCHS)
def test_every_resolution_from_start_gives_images_and_d_gives_scores(arch):
    G, D = small_G(arch), small_D()
    res = G.start_resolution
    while res <= G.resolution:
        z = torch.randn(4, G.z_dim)
        alpha = 0.5 if res > 4 else 1.0
        img = G(z, res=res, alpha=alpha)
        assert img.shape == (4, 3, res, res) and torch.isfinite(img).all()
        assert D(img, res=res, alpha=alpha).shape == (4,)
        res *= 2


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_backward_under_bf16_autocast_gives_finite_grads(arch):
    G, D = small_G(arch, 16), small_D(16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = G(torch.randn(4, G.z_dim), alpha=0.5)
        loss = F.softplus(-D(img, alpha=0.5)).mean()
    loss.float().backward()
    for net in (G, D):
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    assert G.blocks[-1].to_rgb.bias.grad.abs().sum() > 0


def test_discriminator_accepts_channels_last_input():
    D = small_D(16)
    img = torch.randn(4, 3, 16, 16)
    out = D(img.contiguous(memory_format=torch.channels_last), alpha=0.5)
    assert torch.allclose(out, D(img, alpha=0.5), atol=1e-5)


def test_construction_and_random_noise_are_reproducible_from_seeds():
    ws = ws_for(small_G("stylegan2", 16))
    images = []
    for _ in range(2):
        G = small_G("stylegan2", 16, seed=7)
        torch.manual_seed(11)
        images.append(G.synthesis(ws))
    assert torch.equal(*images)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        Generator("stylegan3", 32)
    with pytest.raises(ValueError):
        Generator("pggan", 32, z_dim=64, w_dim=32)
    with pytest.raises(AssertionError):
        small_G("stylegan").synthesis(torch.zeros(1, 8, 32), res=64)


def test_synthesis_and_discriminator_compile_as_one_graph():
    """torch.compile(fullgraph=True) fails on any graph break; aot_eager traces forward and backward."""
    G, D = small_G("stylegan", 16), small_D(16)
    ws = ws_for(G)
    img = torch.compile(G.synthesis, backend="aot_eager", fullgraph=True)(ws, alpha=0.5, noise_mode="const")
    assert torch.allclose(img, G.synthesis(ws, alpha=0.5, noise_mode="const"), atol=1e-5)
    scores = torch.compile(D, backend="aot_eager", fullgraph=True)(img, alpha=0.5)
    assert torch.allclose(scores, D(img, alpha=0.5), atol=1e-5)
    scores.sum().backward()


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="no C++ compiler for inductor on CPU")
def test_inductor_compiled_synthesis_matches_eager():
    G = small_G("stylegan2", 8)
    ws = ws_for(G, 2)
    out = torch.compile(G.synthesis, fullgraph=True)(ws, res=8, noise_mode="const")
    assert torch.allclose(out, G.synthesis(ws, res=8, noise_mode="const"), atol=1e-4)
