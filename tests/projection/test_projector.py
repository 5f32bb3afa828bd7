"""StyleGAN2's projector, piece by piece (StyleGAN2 §5, App. D): the schedules, the noise regulariser and
what one projection finds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import small_stylegan2

from stylegan_cli.metrics.lpips import load_lpips
from stylegan_cli.model.generator import Generator
from stylegan_cli.projection.projector import (
    ProjectConfig,
    Projector,
    learning_rate,
    noise_regularizer,
    w_noise_std,
    w_statistics,
)
from stylegan_cli.synthesis.images import to_uint8

CFG = ProjectConfig()


def test_the_learning_rate_ramps_up_over_5_percent_and_down_with_a_cosine_over_the_last_quarter():
    assert learning_rate(CFG, 0.0) == 0.0
    assert learning_rate(CFG, 0.025) == pytest.approx(0.05)  # halfway up the linear ramp
    assert learning_rate(CFG, 0.05) == learning_rate(CFG, 0.5) == learning_rate(CFG, 0.75) == pytest.approx(0.1)
    assert learning_rate(CFG, 0.875) == pytest.approx(0.05)  # halfway down the cosine
    assert learning_rate(CFG, 0.999) < 1e-5


def test_the_noise_added_to_w_falls_quadratically_to_zero_at_three_quarters():
    assert w_noise_std(CFG, 0.0, 2.0) == pytest.approx(0.1)  # 0.05 sigma_w
    assert w_noise_std(CFG, 0.375, 2.0) == pytest.approx(0.1 / 4)
    assert w_noise_std(CFG, 0.75, 2.0) == w_noise_std(CFG, 0.9, 2.0) == 0.0


def test_the_noise_regulariser_tells_white_noise_from_noise_that_carries_a_picture():
    white = torch.randn(128, 128, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(-1.7, 1.7, 128)
    smooth = (ramp[:, None] + ramp[None, :]) / 1.7  # about unit variance, strongly correlated
    assert noise_regularizer([white]) < 1e-3
    assert noise_regularizer([smooth]) > 1.0
    assert noise_regularizer([white, smooth]) == pytest.approx((noise_regularizer([white]) +
                                                                noise_regularizer([smooth])).item())
    # every level of the map's pyramid (128, 64, 32, 16, 8) counts: the value computed by hand
    x, expected = smooth[None, None], 0.0
    for _ in range(5):
        expected += (x * x.roll(1, 3)).mean() ** 2 + (x * x.roll(1, 2)).mean() ** 2
        x = torch.nn.functional.avg_pool2d(x, 2)
    assert noise_regularizer([smooth]).item() == pytest.approx(expected.item())


def test_w_statistics_are_the_centre_and_rms_spread_of_mapped_latents():
    G = Generator("stylegan2", 16, z_dim=8, w_dim=8, mapping_layers=2, mapping_width=8, fmap_base=64, fmap_max=16)
    centre, spread = w_statistics(G, 5000, seed=1)
    with torch.no_grad():
        w = G.mapping(torch.randn(5000, 8, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(centre, w.mean(0))
    assert spread == pytest.approx(math.sqrt(((w - w.mean(0)) ** 2).sum(1).mean().item()), rel=1e-5)


@pytest.fixture(scope="module")
def small_G() -> Generator:
    return small_stylegan2()[0]


@pytest.mark.slow
def test_a_projection_finds_a_generated_image_and_its_w_again(small_G):
    G = small_G
    w_true = G.mapping(torch.randn(1, 16, generator=torch.Generator().manual_seed(5)))[0]
    with torch.no_grad():
        target = to_uint8(G.synthesis(w_true.expand(1, G.num_ws, -1), noise_mode="const"))[0]
    projector = Projector(G, load_lpips(), ProjectConfig(steps=150), seed=0)
    found = projector.project(target)

    (lpips_start, psnr_start), (lpips_end, psnr_end) = (projector.score(f, target) for f in (found.frames[0],
                                                                                           found.frames[-1]))
    assert lpips_end < 0.5 * lpips_start and psnr_end > psnr_start + 6
    assert (found.w - w_true).norm(dim=1).max() < 0.6 * (projector.w_avg - w_true).norm()
    assert found.w.shape == (G.num_ws, 16) and torch.equal(found.w[0].expand_as(found.w), found.w)  # one w in W
    for maps, r in zip(found.noise, [4, 8, 8, 16, 16, 32, 32]):  # renormalised noise maps, one per noise input
        assert maps.shape == (r, r) and abs(maps.mean()) < 1e-5 and maps.std() == pytest.approx(1, abs=1e-4)
    assert len(found.frames) == 1 + CFG.frames and len(found.losses) == CFG.frames
    assert found.losses[-1] < found.losses[0]


def test_a_projection_depends_only_on_its_seed_and_wplus_has_a_w_per_style_input(small_G):
    target = np.random.RandomState(0).randint(0, 256, (32, 32, 3)).astype(np.uint8)
    lpips = load_lpips()
    a, b = (Projector(small_G, lpips, ProjectConfig(steps=6), seed=3).project(target) for _ in range(2))
    assert torch.equal(a.w, b.w) and all(np.array_equal(x, y) for x, y in zip(a.noise, b.noise))
    other = Projector(small_G, lpips, ProjectConfig(steps=6), seed=4).project(target)
    assert not torch.equal(a.w, other.w)
    plus = Projector(small_G, lpips, ProjectConfig(steps=6, space="wplus"), seed=3).project(target)
    assert plus.w.shape == (small_G.num_ws, 16) and not torch.equal(plus.w[0], plus.w[-1])


def test_a_progressive_gan_generator_cannot_be_projected_into():
    G = Generator("pggan", 16, z_dim=16, w_dim=16, fmap_base=64, fmap_max=16)
    with pytest.raises(ValueError, match="mapping network"):
        Projector(G, load_lpips(), CFG, seed=0)
