"""StyleGAN2's FIR resampling in plain PyTorch (docs/design.md §6): upsample by inserting zeros, pad,
filter with the separable [1,3,3,1] kernel, downsample by dropping samples.

StyleGAN2 resamples with this 4-tap binomial filter where StyleGAN used [1,2,1] (StyleGAN2 App. B
keeps StyleGAN's "bilinear" resampling, implemented in NVIDIA's code as the filter below). The
paddings are those of NVIDIA's `upfirdn2d` as its layers use it, so that a network ported from their
files computes the same images; padding tuples are (x0, x1, y0, y1) as theirs are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FIR_TAPS = (1.0, 3.0, 3.0, 1.0)  # NVIDIA's resample_filter for StyleGAN2 and StyleGAN2-ADA


def fir_filter(taps: tuple[float, ...] = FIR_TAPS) -> torch.Tensor:
    """The 2-D filter: the outer product of the taps with themselves, normalised to unit gain."""
    f = torch.tensor(taps)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1,
              padding: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample `x` (N, C, H, W) by zero insertion, pad (negative values crop), convolve every channel
    with the filter `f` times `gain`, and keep every `down`-th sample. A 1-D `f` is separable: it filters
    the rows, then the columns, each with the square root of the gain."""
    N, C, H, W = x.shape
    if up > 1:
        x = F.pad(x.reshape(N, C, H, 1, W, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(N, C, H * up, W * up)
    x0, x1, y0, y1 = padding
    x = F.pad(x, [x0, x1, y0, y1])
    # A true convolution flips the filter; FIR_TAPS is symmetric, but the flip keeps this right for any taps.
    if f.ndim == 1:
        taps = (f * gain**0.5).flip(0).to(x.dtype).expand(C, 1, f.shape[0])
        x = F.conv2d(F.conv2d(x, taps.unsqueeze(2), groups=C), taps.unsqueeze(3), groups=C)
    else:
        x = F.conv2d(x, (f * gain).flip([0, 1]).to(x.dtype).expand(C, 1, *f.shape), groups=C)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling with the filter, as NVIDIA's `upsample2d` (gain 4 keeps the mean)."""
    taps = f.shape[-1]
    return upfirdn2d(x, f, up=2, padding=((taps + 1) // 2, (taps - 2) // 2) * 2, gain=4)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x downsampling with the filter, as NVIDIA's `downsample2d`."""
    taps = f.shape[-1]
    return upfirdn2d(x, f, down=2, padding=((taps - 1) // 2, (taps - 2) // 2) * 2)
