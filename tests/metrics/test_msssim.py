"""Multi-scale SSIM as Progressive GAN uses it for diversity (stylegan_cli.metrics.msssim)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image

from stylegan_cli.metrics.msssim import C1, C2, WEIGHTS, mean_pairwise_ms_ssim, ms_ssim


@pytest.fixture(scope="session")
def faces(faces_dir) -> torch.Tensor:
    """The 8 example photos of different people at 192x192 (5 scales: 192 down to 12, so the 11x11 window
    never shrinks), as a uint8 NCHW batch."""
    photos = [Image.open(path).convert("RGB").resize((192, 192), Image.LANCZOS)
              for path in sorted(faces_dir.glob("*.jpg"))]
    return torch.from_numpy(np.stack([np.asarray(p) for p in photos])).permute(0, 3, 1, 2).contiguous()


def noisy(images: torch.Tensor, sigma: float) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1)) * sigma
    return (images + noise).round().clamp(0, 255).to(torch.uint8)


def numpy_ms_ssim(a: np.ndarray, b: np.ndarray, weights=WEIGHTS) -> np.ndarray:
    """An independent float64 MS-SSIM for images large enough that the 11x11 window never shrinks:
    SciPy's Gaussian filter (sigma 1.5, radius 5), keeping only the pixels where the window lies
    wholly inside the image (the reference's 'valid' convolution)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    result = np.ones(len(a))
    for scale, weight in enumerate(weights):
        def window_mean(x):
            return scipy.ndimage.gaussian_filter(x, sigma=(0, 0, 1.5, 1.5), truncate=5 / 1.5)[:, :, 5:-5, 5:-5]
        mu_a, mu_b = window_mean(a), window_mean(b)
        var_a = window_mean(a * a) - mu_a**2
        var_b = window_mean(b * b) - mu_b**2
        cov = window_mean(a * b) - mu_a * mu_b
        contrast = (2 * cov + C2) / (var_a + var_b + C2)
        ssim = (2 * mu_a * mu_b + C1) / (mu_a**2 + mu_b**2 + C1) * contrast
        last = scale == len(weights) - 1
        result *= np.maximum((ssim if last else contrast).mean(axis=(1, 2, 3)), 0) ** weight
        a, b = [(x[:, :, 0::2, 0::2] + x[:, :, 1::2, 0::2] + x[:, :, 0::2, 1::2] + x[:, :, 1::2, 1::2]) / 4
                for x in (a, b)]
    return result


def test_an_image_is_fully_similar_to_itself(faces):
    assert torch.allclose(ms_ssim(faces, faces), torch.ones(len(faces)))


def test_it_is_symmetric(faces):
    a, b = faces[:4], faces[4:]
    assert torch.allclose(ms_ssim(a, b), ms_ssim(b, a))


def test_it_falls_as_noise_grows(faces):
    face = faces[:1]
    values = [ms_ssim(face, noisy(face, sigma)).item() for sigma in (2, 8, 24, 64)]
    assert 1 > values[0] > values[1] > values[2] > values[3], values


def test_different_images_score_far_below_near_identical_ones(faces):
    near_identical = ms_ssim(faces, noisy(faces, 4))
    different_people = ms_ssim(faces, faces.roll(1, dims=0))
    generator = torch.Generator().manual_seed(0)
    random_a, random_b = (torch.randint(0, 256, (4, 3, 64, 64), generator=generator, dtype=torch.uint8) for _ in "ab")
    assert near_identical.min() > 0.95
    assert different_people.max() < 0.8  # same studio, pose and framing: still clearly below
    assert ms_ssim(random_a, random_b).max() < 0.2


def test_five_scales_match_an_independent_numpy_implementation(faces):
    a, b = faces[:4], noisy(faces[4:], 10)
    expected = numpy_ms_ssim(a.numpy(), b.numpy())
    assert np.allclose(ms_ssim(a, b).numpy(), expected, rtol=1e-4)


def test_one_scale_is_plain_ssim(faces):
    a, b = faces[:4], noisy(faces[:4], 30)
    expected = numpy_ms_ssim(a.numpy(), b.numpy(), weights=(1.0,))
    assert np.allclose(ms_ssim(a, b, weights=(1.0,)).numpy(), expected, rtol=1e-4)


def test_a_constant_pair_reduces_to_the_luminance_term():
    """Flat images have no contrast or structure to compare, so only the coarsest scale's luminance
    term (2ab + C1) / (a^2 + b^2 + C1) is left, raised to that scale's weight."""
    a, b = torch.full((1, 3, 64, 64), 100.0), torch.full((1, 3, 64, 64), 180.0)
    expected = ((2 * 100 * 180 + C1) / (100**2 + 180**2 + C1)) ** WEIGHTS[-1]
    assert ms_ssim(a, b).item() == pytest.approx(expected, rel=1e-4)


def test_windows_shrink_to_small_images_as_in_the_reference():
    """At 8x8 the window is 8 pixels wide (centred between pixels, sigma 1.5 * 8 / 11) and covers the
    whole image once: SSIM is then a single Gaussian-weighted comparison per channel."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, 256, (1, 3, 8, 8), generator=generator).double() for _ in "ab")
    x = np.arange(8) - 3.5
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (1.5 * 8 / 11) ** 2))
    window /= window.sum()
    a_np, b_np = a[0].numpy(), b[0].numpy()

    def weighted_mean(values):
        return (values * window).sum(axis=(1, 2))

    mu_a, mu_b = weighted_mean(a_np), weighted_mean(b_np)
    var_a, var_b = weighted_mean(a_np**2) - mu_a**2, weighted_mean(b_np**2) - mu_b**2
    cov = weighted_mean(a_np * b_np) - mu_a * mu_b
    per_channel = (2 * mu_a * mu_b + C1) * (2 * cov + C2) / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2))
    assert ms_ssim(a, b, weights=(1.0,)).item() == pytest.approx(max(per_channel.mean(), 0), rel=1e-4)


def test_small_images_still_get_five_scales(faces):
    """32x32 images: windows of 11, 11, 8, 4 and 2 pixels."""
    small = torch.nn.functional.interpolate(faces.float(), size=32, mode="area")
    assert torch.allclose(ms_ssim(small, small), torch.ones(len(faces)))
    assert (ms_ssim(small, small.roll(1, dims=0)) < 0.9).all()


def test_diversity_pairs_consecutive_images_across_batches(faces):
    stream = [faces[:3], faces[3:5]]  # pairs (0, 1) and (2, 3); image 4 has no partner
    expected = ms_ssim(faces[[0, 2]], faces[[1, 3]]).mean().item()
    assert mean_pairwise_ms_ssim(stream) == pytest.approx(expected, rel=1e-6)


def test_a_collapsed_generator_scores_one_and_a_diverse_one_far_lower(faces):
    collapsed = faces[:1].expand(4, -1, -1, -1)
    assert mean_pairwise_ms_ssim([collapsed[:3], collapsed[3:]]) == pytest.approx(1.0)
    assert mean_pairwise_ms_ssim([faces]) < 0.8


@pytest.mark.parametrize(
    "a, b, message",
    [
        (torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 32), "one shape"),
        (torch.zeros(2, 3, 64, 64), torch.zeros(3, 3, 64, 64), "one shape"),
        (torch.zeros(3, 64, 64), torch.zeros(3, 64, 64), "NCHW"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), "at least 16x16"),
    ],
)
def test_bad_shapes_are_usage_errors(a, b, message):
    with pytest.raises(ValueError, match=message):
        ms_ssim(a, b)


@pytest.mark.parametrize("stream", [[], [torch.zeros(1, 3, 32, 32)]])
def test_diversity_needs_a_pair(stream):
    with pytest.raises(ValueError, match="at least two images"):
        mean_pairwise_ms_ssim(stream)
