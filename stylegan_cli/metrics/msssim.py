"""Multi-scale structural similarity, MS-SSIM (Wang, Simoncelli & Bovik 2003), as Progressive GAN
uses it to measure the diversity of generated images (§5; after Odena et al. 2017).

SSIM compares two images through local means, variances and their covariance under an 11x11 Gaussian
window (sigma 1.5), with the stabilising constants C1 = (0.01 * 255)^2 and C2 = (0.03 * 255)^2. MS-SSIM
evaluates it at 5 scales, halving the images by 2x2 averaging between scales, and multiplies the
contrast-structure term of the 4 finer scales with the full SSIM of the coarsest, each raised to its
weight (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). Each term is averaged over the image (pixels and
channels) first and clipped at 0 before the powers.

Facts of the reference (progressive_growing_of_gans, metrics/ms_ssim.py, itself from TensorFlow's
image-compression msssim.py) kept here: the window is applied without padding ('valid'); where an
image at some scale is smaller than 11 pixels the window shrinks to the image's size and its sigma in
proportion (1.5 * size / 11); an even-sized window is centred between pixels; the arithmetic is float32.
Where the reference needs even sizes, this 2x2 averaging drops the last row or column of an odd one.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # per scale, finest first, as published
WINDOW = 11
SIGMA = 1.5
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def _gaussian(size: int, like: Tensor) -> Tensor:
    """The normalised 1-D Gaussian taps of a `size`-wide window; the 2-D window is their outer product."""
    sigma = SIGMA * size / WINDOW
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    return taps / taps.sum()


def _window_means(images: Tensor, taps: Tensor) -> Tensor:
    """Gaussian-weighted means of an NCHW batch at every window position wholly inside the image."""
    n, c, h, w = images.shape
    size, planes = len(taps), n * c
    x = images.reshape(1, planes, h, w)  # each plane its own channel: one depthwise convolution per axis
    x = F.conv2d(x, taps.view(1, 1, size, 1).expand(planes, 1, size, 1), groups=planes)
    x = F.conv2d(x, taps.view(1, 1, 1, size).expand(planes, 1, 1, size), groups=planes)
    return x.view(n, c, h - size + 1, w - size + 1)


def _ssim_and_contrast(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, the mean SSIM and the mean contrast-structure term at one scale."""
    taps = _gaussian(min(WINDOW, *a.shape[2:]), a)
    means = _window_means(torch.cat([a, b, a * a, b * b, a * b]), taps)
    mean_a, mean_b, mean_aa, mean_bb, mean_ab = means.chunk(5)
    var_a = mean_aa - mean_a**2
    var_b = mean_bb - mean_b**2
    covariance = mean_ab - mean_a * mean_b
    contrast = (2 * covariance + C2) / (var_a + var_b + C2)
    luminance = (2 * mean_a * mean_b + C1) / (mean_a**2 + mean_b**2 + C1)
    return (luminance * contrast).mean(dim=(1, 2, 3)), contrast.mean(dim=(1, 2, 3))


def image_problem(height: int, width: int, scales: int = len(WEIGHTS)) -> str | None:
    """Why MS-SSIM over `scales` scales cannot compare images of height x width, as one sentence; None when
    it can: each scale halves the images, and the coarsest must still hold a pixel."""
    smallest = 2 ** (scales - 1)
    if min(height, width) < smallest:
        return (f"MS-SSIM over {scales} scales needs images of at least {smallest}x{smallest} pixels, "
                f"got {height}x{width}.")
    return None


def ms_ssim(a: Tensor, b: Tensor, weights: tuple[float, ...] = WEIGHTS) -> Tensor:
    """MS-SSIM of each pair of images in two NCHW batches of one shape, uint8 or float in 0..255:
    a tensor of N values, 1 for identical images. `weights` gives one weight per scale (finest first);
    a single weight of 1 gives plain single-scale SSIM."""
    if a.shape != b.shape:
        raise ValueError(f"MS-SSIM compares batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    if a.ndim != 4:
        raise ValueError(f"MS-SSIM takes NCHW batches of images, got shape {tuple(a.shape)}.")
    problem = image_problem(a.shape[2], a.shape[3], len(weights))
    if problem:
        raise ValueError(problem)
    a, b = a.float(), b.float()
    result = torch.ones(len(a), device=a.device)
    for scale, weight in enumerate(weights):
        ssim, contrast = _ssim_and_contrast(a, b)
        if scale == len(weights) - 1:
            result *= ssim.clamp_min(0) ** weight
        else:
            result *= contrast.clamp_min(0) ** weight
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return result


def mean_pairwise_ms_ssim(batches: Iterable[Tensor]) -> float:
    """Average MS-SSIM over consecutive pairs of a stream of generated images (image 0 with 1, 2 with
    3, ..., across batch boundaries): Progressive GAN's diversity measure, where lower means more
    diverse. The paper's numbers are "averaged from 10000 pairs of generated images" (§6.1; the
    reference configuration 'msssim-20k' feeds 20,000 images). An odd last image is left out."""
    total, pairs = 0.0, 0
    unpaired = None
    for batch in batches:
        if unpaired is not None:
            batch = torch.cat([unpaired, batch])
        paired = len(batch) - len(batch) % 2
        if paired:
            total += ms_ssim(batch[0:paired:2], batch[1:paired:2]).double().sum().item()
            pairs += paired // 2
        unpaired = batch[paired:]
    if pairs == 0:
        raise ValueError("Mean MS-SSIM needs at least two images, one pair, to compare.")
    return total / pairs
