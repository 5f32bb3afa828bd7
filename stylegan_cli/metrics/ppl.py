"""Perceptual path length (StyleGAN §4.1): how much the image changes, perceptually, per small step
along a latent interpolation path.

For a pair of latents and t in [0, 1], the generator makes the images at t and t + epsilon on the
path between them; their distance (LPIPS-VGG16) divided by epsilon^2 is one sample, and the metric is
the mean over many samples. In Z the path is a slerp between z0 and z1 ~ N(0, I), mapped to W; in W it
is a lerp between their mappings, the same w driving every style input. As in StyleGAN's reference
implementation: epsilon is 1e-4; 'full' sampling draws t ~ U(0, 1) and 'end' uses t = 0, where the
path starts (t = 1, its other end, has the same distribution since z0 and z1 are interchangeable);
the noise inputs stay fixed ('const'); images are cropped to the face and brought to at most
256x256 before the distance; samples outside the 1st..99th percentiles are dropped before averaging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation between the directions of a and b (rows of (N, D) tensors), at
    fraction t (a number or one per row) of the angle between them: a unit vector, a/|a| at t = 0
    and b/|b| at t = 1."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1, 1)
    towards_b = F.normalize(b - cos * a, dim=-1)  # the unit vector orthogonal to a in the plane of a and b
    angle = torch.as_tensor(t, dtype=a.dtype, device=a.device).reshape(-1, 1) * torch.acos(cos)
    return a * torch.cos(angle) + towards_b * torch.sin(angle)


def mean_without_outliers(values: np.ndarray) -> float:
    """The mean of the values between the 1st percentile (rounded down to a value that occurs) and
    the 99th (rounded up), both included, as StyleGAN's reference implementation averages path lengths."""
    low = np.percentile(values, 1, method="lower")
    high = np.percentile(values, 99, method="higher")
    return float(values[(values >= low) & (values <= high)].mean())


def prepare_images(images: torch.Tensor, crop: bool) -> torch.Tensor:
    """(N, C, H, W) images as the distance sees them: with `crop`, the face region of an FFHQ-aligned
    image (rows 3H/8..7H/8, columns 2W/8..6W/8, as StyleGAN's code crops); then, when 512 or more
    pixels tall, averaged over k x k blocks (k = H // 256) to about 256."""
    if crop:
        h, w = images.shape[2] // 8, images.shape[3] // 8
        images = images[:, :, 3 * h : 7 * h, 2 * w : 6 * w]
    factor = images.shape[2] // 256
    return F.avg_pool2d(images, factor) if factor > 1 else images


def perceptual_path_length(G, distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, space: str,
                           sampling: str, num_samples: int, epsilon: float = 1e-4, crop: bool = True,
                           batch: int = 32, seed: int = 0, device: torch.device | str | None = None,
                           progress=None) -> float:
    """The perceptual path length of generator G in `space` ('z' or 'w') with `sampling` ('full' or
    'end'): the outlier-free mean of `num_samples` values distance(img_t, img_t+eps) / eps^2.

    `distance` takes two (N, 3, H, W) batches in [-1, 1] (an LPIPS module); `batch` path segments
    are measured per step (2 * batch images). Latents are drawn on the CPU from `seed`, so the result
    depends only on the seed and the batch size. Everything runs in full float32 (autocast and TF32
    off): the two images of a pair differ by about eps, which reduced precision would drown."""
    if space not in SPACES:
        raise ValueError(f"the latent space must be one of {', '.join(SPACES)}, not {space!r}.")
    if sampling not in SAMPLINGS:
        raise ValueError(f"the sampling must be one of {', '.join(SAMPLINGS)}, not {sampling!r}.")
    if num_samples < 1:
        raise ValueError(f"the number of samples must be at least 1, not {num_samples}.")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    lengths = []
    with torch.no_grad(), _full_float32(device):
        for start in range(0, num_samples, batch):
            n = min(batch, num_samples - start)
            z0, z1 = torch.randn(2, n, G.z_dim, generator=rng).to(device)
            t = (torch.rand(n, generator=rng) if sampling == "full" else torch.zeros(n)).to(device)
            ws = _path_styles(G, z0, z1, t, epsilon, space)
            images = prepare_images(G.synthesis(ws, noise_mode="const"), crop)
            lengths.append((distance(images[:n], images[n:]).float() / epsilon**2).cpu())
            if progress is not None:
                progress.advance(n)
    return mean_without_outliers(torch.cat(lengths).double().numpy())


def _path_styles(G, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, epsilon: float,
                 space: str) -> torch.Tensor:
    """(2N, num_ws, w_dim) styles: the N points at t on the paths from z0 to z1, then the N at t + eps."""
    if space == "z":
        w = G.mapping(torch.cat([slerp(z0, z1, t), slerp(z0, z1, t + epsilon)]))
    else:
        w0, w1 = G.mapping(torch.cat([z0, z1])).chunk(2)
        t = t.unsqueeze(1)
        w = torch.cat([torch.lerp(w0, w1, t), torch.lerp(w0, w1, t + epsilon)])
    return w.unsqueeze(1).repeat(1, G.num_ws, 1)


@contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """Autocast off on `device`, and TF32 off for CUDA matmuls and convolutions, restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
