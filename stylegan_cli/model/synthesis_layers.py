"""The layers of the synthesis networks (docs/design.md §6): noise inputs, AdaIN, StyleGAN2's modulated
convolution, the network inputs, one conv layer per arch, and ToRGB. Paper sections are cited as PG
(Progressive GAN), SG (StyleGAN) and SG2 (StyleGAN2); `model/generator.py` assembles them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from stylegan_cli.model.layers import (
    CONV_CLAMP,
    LRELU_SLOPE,
    SQRT2,
    Blur,
    EqualizedConv2d,
    EqualizedLinear,
    PixelNorm,
    clamp_reduced,
)
from stylegan_cli.model.resample import fir_filter, upfirdn2d


class NoiseInjection(nn.Module):
    """Noise input of one layer (SG §2, Fig. 1b "B"): a single-channel Gaussian image broadcast to all
    feature maps with learned per-channel scales (initialised to zero, SG App. C), or one scale for the
    layer as StyleGAN2's networks have it (`per_channel=False`), added to the conv output. Modes:
    'random' a fresh image per sample, 'const' one fixed image, drawn at construction from `generator`
    and saved in checkpoints (an imported network brings its own), 'none' nothing added; an explicit
    `noise` tensor (N or 1, 1, H, W) overrides the mode."""

    def __init__(self, channels: int, resolution: int, generator: torch.Generator, per_channel: bool = True):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(channels if per_channel else ()))
        self.register_buffer("const", torch.randn(1, 1, resolution, resolution, generator=generator))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints of sgan 0.x before `sgan import` did not store the image: theirs is this same draw.
        state_dict.setdefault(prefix + "const", self.const)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, noise_mode: str, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            if noise_mode == "none":
                return x
            if noise_mode == "const":
                noise = self.const
            else:
                noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        assert noise.shape[1:] == (1, x.shape[2], x.shape[3]), (noise.shape, x.shape)
        return x + noise.to(x.dtype) * self.strength.to(x.dtype).view(1, -1, 1, 1)


class AdaIN(nn.Module):
    """Adaptive instance normalisation (SG §2, Eq. 1): AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i,
    each feature map normalised on its own, with y = (y_s, y_b) a learned affine transform of w whose
    y_s biases start at one and y_b biases at zero (SG App. C)."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, 2 * channels, bias_init=torch.cat([torch.ones(channels),
                                                                                torch.zeros(channels)]))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ys, yb = self.affine(w).float()[:, :, None, None].chunk(2, dim=1)
        xf = x.float()
        mean, var = xf.mean(dim=(2, 3), keepdim=True), xf.var(dim=(2, 3), unbiased=False, keepdim=True)
        return (ys * (xf - mean) * (var + 1e-8).rsqrt() + yb).to(x.dtype)


class ModulatedConv2d(nn.Module):
    """Weight modulation and demodulation (SG2 §2.2, Eq. 1-3): w'_ijk = s_i w_ijk with the style s a learned
    affine transform of w (biases start at one), then w''_ijk = w'_ijk / sqrt(sum_i,k w'_ijk^2 + 1e-8).
    Rather than building per-sample weights for a grouped conv, the input is scaled by s and the output
    by the demodulation factors around one shared conv: the same linear map, as a plain (channels_last-
    and autocast-friendly) convolution. The styles and factors are computed in fp32. The weight keeps
    the equalized-LR scale 1/sqrt(fan_in), which demodulation cancels and ToRGB (no demodulation) uses.
    With `fir_up`, the conv upsamples 2x as StyleGAN2's networks do: a stride-2 transposed conv, then the
    [1,3,3,1] filter (model/resample.py), with NVIDIA's paddings."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, demodulate: bool = True,
                 fir_up: bool = False):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.demodulate = demodulate
        self.fir_up = fir_up
        if fir_up:
            self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        N = x.shape[0]
        assert x.shape[1] == self.weight.shape[1] and w.shape[0] == N, (x.shape, w.shape, self.weight.shape)
        with torch.autocast(device_type=x.device.type, enabled=False):
            s = self.affine(w.to(self.weight.dtype))  # (N, in), fp32 unless the module itself was cast
            weight = self.weight * self.weight_gain
            if self.demodulate:  # 1 / sqrt(sum_i s_i^2 sum_k w_ijk^2 + eps): (N, out)
                d = (s.square() @ weight.square().sum(dim=(2, 3)).T + 1e-8).rsqrt()
        x = x * s.to(x.dtype).view(N, -1, 1, 1)
        if self.fir_up:
            x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
            x = upfirdn2d(x, self.fir, padding=(self.padding,) * 4, gain=4)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            x = x * d.to(x.dtype).view(N, -1, 1, 1)
        return x


class ConstantInput(nn.Module):
    """The learned 4x4 constant that starts SG's synthesis network (SG §2), initialised to one (App. C), or
    drawn from N(0, 1) as StyleGAN2's networks draw it (`random_init`)."""

    def __init__(self, channels: int, random_init: bool = False):
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, channels, 4, 4) if random_init else torch.ones(1, channels, 4, 4))

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.const.expand(ws.shape[0], -1, -1, -1)


class LatentInput(nn.Module):
    """PG's input layer (Table 2): the (pixel-normalised) latent through a 4x4 conv on a 1x1 input, i.e. a
    dense layer to 4x4xC with per-channel bias and that conv's He constant (fan-in 16 * z_dim, so gain
    sqrt(2)/4 on the dense fan-in), then leaky ReLU and pixel norm."""

    def __init__(self, z_dim: int, channels: int):
        super().__init__()
        self.dense = EqualizedLinear(z_dim, 16 * channels, gain=SQRT2 / 4, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.norm = PixelNorm()

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = self.dense(ws[:, 0]).view(ws.shape[0], -1, 4, 4)
        return self.norm(F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), LRELU_SLOPE))


class StyleConvLayer(nn.Module):
    """One layer of SG's synthesis network (SG §2, Fig. 1b): [2x nearest-neighbour upsample] 3x3 conv [then the
    binomial blur, which with the upsampling makes SG's bilinear upsampling (App. C) in the order NVIDIA's
    code applies them] (no conv on the constant), noise, bias, leaky ReLU 0.2, then AdaIN with this layer's style."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, generator: torch.Generator,
                 up: bool = False, conv: bool = True, layer_noise: bool = False):
        super().__init__()
        self.up = up
        self.conv = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2, bias=False) if conv else None
        self.blur = Blur(out_channels) if up else None
        self.noise = NoiseInjection(out_channels, resolution, generator, per_channel=not layer_noise)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.adain = AdaIN(out_channels, w_dim)

    def forward(self, x, w, noise_mode: str, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.conv is not None:
            x = self.conv(x)
        if self.blur is not None:
            x = self.blur(x)
        x = self.noise(x, noise_mode, noise)
        x = F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), LRELU_SLOPE)
        return self.adain(x, w)


class ModulatedConvLayer(nn.Module):
    """One layer of SG2's synthesis network (SG2 §2.1-2.2, Fig. 2d), built as StyleGAN2's code builds it for every
    design (configs B-F, Table 1; Fig. 7): [2x upsample] modulated/demodulated 3x3 conv (the style block), the
    upsampling inside the conv with the [1,3,3,1] filter, then noise and bias outside it, then leaky ReLU 0.2 scaled
    by sqrt(2) so it keeps the expected signal variance (SG2 §2.2: demodulation removes the He gain from the
    weights) and by an extra `gain` (1/sqrt(2) on a residual branch), activations clamped to +-CONV_CLAMP * gain in
    reduced precision. Noise has one strength per layer with `layer_noise` (StyleGAN2's), else one per channel."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, generator: torch.Generator,
                 up: bool = False, gain: float = 1.0, layer_noise: bool = True):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, demodulate=True, fir_up=up)
        self.noise = NoiseInjection(out_channels, resolution, generator, per_channel=not layer_noise)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.gain, self.clamp = SQRT2 * gain, CONV_CLAMP * gain

    def forward(self, x, w, noise_mode: str, noise: torch.Tensor | None = None) -> torch.Tensor:
        x = self.noise(self.conv(x, w), noise_mode, noise)
        return clamp_reduced(F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), LRELU_SLOPE) * self.gain,
                             self.clamp)


class PGConvLayer(nn.Module):
    """One layer of PG's generator (Table 2, §4.2): [2x nearest-neighbour upsample] 3x3 conv, leaky ReLU 0.2,
    pixelwise feature normalisation. Takes no style or noise."""

    def __init__(self, in_channels: int, out_channels: int, up: bool = False):
        super().__init__()
        self.up = up
        self.conv = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2)
        self.norm = PixelNorm()

    def forward(self, x, w, noise_mode: str, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.norm(F.leaky_relu(self.conv(x), LRELU_SLOPE))


class ToRGB(nn.Module):
    """1x1 conv to RGB with a linear output (PG Table 2, SG Fig. 1); for SG2 a modulated conv without
    demodulation, driven by its own style input like SG2's tRGB layers (Fig. 7)."""

    def __init__(self, in_channels: int, w_dim: int, modulated: bool, clamp: float | None = None):
        super().__init__()
        self.modulated, self.clamp = modulated, clamp
        self.conv = ModulatedConv2d(in_channels, 3, 1, w_dim, demodulate=False) if modulated else \
            EqualizedConv2d(in_channels, 3, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w) if self.modulated else self.conv(x)
        return clamp_reduced(x + self.bias.to(x.dtype).view(1, -1, 1, 1), self.clamp)
