"""The layers the generators and the discriminator share, in plain PyTorch (docs/design.md §6).

Paper sections are cited as PG (Progressive GAN, Karras 2018), SG (StyleGAN, Karras 2019) and
SG2 (StyleGAN2, Karras 2020). All layers use the equalized learning rate (PG §4.1): weights drawn
from N(0, 1) and scaled at run time by the He constant. Resampling uses the [1,2,1] binomial filter
(SG App. C). Normalisation statistics are computed in fp32 under autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from stylegan_cli.model.resample import downsample2d, fir_filter, upsample2d

LRELU_SLOPE = 0.2
SQRT2 = math.sqrt(2.0)
SQRT_HALF = math.sqrt(0.5)  # the scale of both paths of StyleGAN2's residual blocks (SG2 Fig. 7c)
# StyleGAN2-ADA's conv_clamp: with reduced precision its layers clip activations to +-256 (times the
# layer's gain) so fp16 cannot overflow; sgan's StyleGAN2 skip/residual networks do the same under autocast.
CONV_CLAMP = 256.0


def feature_maps(res: int, fmap_base: int = 8192, fmap_max: int = 512) -> int:
    """Feature maps at a resolution (PG App. A, SG App. C): min(fmap_base / 2^(log2(res)-1), fmap_max),
    i.e. 512 at 4..32, then 256, 128, 64, 32, 16 at 64..1024 with the defaults."""
    return min(int(fmap_base / 2 ** (resolution_log2(res) - 1)), fmap_max)


def resolution_log2(res: int) -> int:
    """log2 of a resolution, checked to be a power of two of at least 4."""
    log2 = int(res).bit_length() - 1
    assert res >= 4 and res == 2**log2, f"resolution must be a power of two >= 4, not {res}"
    return log2


# ----------------------------------------------------------------------------------------------
# Shared building blocks.


def scaled(bias: torch.Tensor | None, gain: float) -> torch.Tensor | None:
    """`bias` times `gain`, without an operation (two with its gradient) when the gain is one."""
    return bias if bias is None or gain == 1 else bias * gain


class EqualizedLinear(nn.Module):
    """Dense layer with the equalized learning rate (PG §4.1): weights stored N(0, 1)/lr_mul and scaled at
    run time by lr_mul * gain / sqrt(fan_in), the bias by lr_mul. With Adam, lr_mul scales the layer's
    effective learning rate (SG App. C: 0.01 for the mapping network).

    `gain_after_bias`: StyleGAN2's layers apply their gain after the bias and the activation,
    act(W x + b) * gain, where PG's and SG's fold it into the weights, act(gain W x + b). Leaky ReLU
    commutes with a positive scale, so the first is act(gain W x + gain b): the bias is scaled by the gain
    too (see `scaled_bias`). The stored bias is then the one NVIDIA's StyleGAN2 networks store, and Adam
    moves it by the same steps as theirs."""

    def __init__(self, in_features: int, out_features: int, gain: float = 1.0, lr_mul: float = 1.0,
                 bias: bool = True, bias_init: float | torch.Tensor = 0.0, gain_after_bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_features).add_(bias_init) / lr_mul) if bias else None
        self.weight_gain = lr_mul * gain / math.sqrt(in_features)
        self.lr_mul, self.bias_gain = lr_mul, gain if gain_after_bias else 1.0
        self.bias_mul = lr_mul * self.bias_gain

    def scaled_bias(self) -> torch.Tensor | None:
        return scaled(self.bias, self.bias_mul)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_gain, self.scaled_bias())


class EqualizedConv2d(nn.Module):
    """Same-padded convolution with the equalized learning rate (PG §4.1): weights N(0, 1) scaled at run
    time by gain / sqrt(in_channels * kernel_size^2); `gain_after_bias` as in EqualizedLinear."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = 1.0, bias: bool = True,
                 gain_after_bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size**2)
        self.bias_gain = self.bias_mul = gain if gain_after_bias else 1.0
        self.padding = kernel_size // 2

    def scaled_bias(self) -> torch.Tensor | None:
        return scaled(self.bias, self.bias_mul)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.scaled_bias(), padding=self.padding)


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalisation (PG §4.2): b = a / sqrt(mean_channels(a^2) + 1e-8), over dim 1.
    Also normalises z before the mapping network (SG §2 follows PG here)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * (xf.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()).to(x.dtype)


class Blur(nn.Module):
    """Low-pass filter with the separable 2nd-order binomial kernel [1,2,1] (SG App. C, after Zhang 2019),
    normalised to unit gain, applied per channel with zero padding."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = torch.outer(k, k) / 16
        self.register_buffer("kernel", k.expand(channels, 1, 3, 3).clone(), persistent=False)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel, padding=1, groups=self.channels)


def clamp_reduced(x: torch.Tensor, limit: float | None) -> torch.Tensor:
    """`x` clipped to +-limit when it is in reduced precision (fp16/bf16); fp32 and limit None pass unchanged."""
    return x.clamp(-limit, limit) if limit is not None and x.dtype != torch.float32 else x


class FIRConv1x1(nn.Module):
    """The residual path of StyleGAN2's resnet blocks (SG2 Fig. 7c): a 1x1 conv without bias and with the
    equalized-LR scale, resampled 2x with the [1,3,3,1] filter (upsampled after the conv in G, downsampled
    before it in D, as NVIDIA's code orders them) and scaled by 1/sqrt(2), the other path's scale too."""

    def __init__(self, in_channels: int, out_channels: int, up: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.weight_gain = SQRT_HALF / math.sqrt(in_channels)
        self.up = up
        self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = (self.weight * self.weight_gain).to(x.dtype)
        if self.up:
            return upsample2d(F.conv2d(x, weight), self.fir)
        return F.conv2d(downsample2d(x, self.fir), weight)
