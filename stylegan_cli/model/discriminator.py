"""The discriminator (docs/design.md §6): PG's (§2-3, Table 2), shared by every arch as SG App. C
does, with SG's blurred downsampling inside its blocks for stylegan, and StyleGAN2's layers (the [1,3,3,1]
filter, gains after the biases) for stylegan2, as StyleGAN2's code builds its original discriminator.

While a new resolution fades in (PG §2, Fig. 2), the image-space skip uses 2x2 average pooling, so D
sees the pooled image through the lower FromRGB, exactly as PG's Fig. 2.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from stylegan_cli.model.generator import MappingNetwork
from stylegan_cli.model.layers import (
    CONV_CLAMP,
    LRELU_SLOPE,
    SQRT2,
    SQRT_HALF,
    Blur,
    EqualizedConv2d,
    EqualizedLinear,
    FIRConv1x1,
    clamp_reduced,
    feature_maps,
    resolution_log2,
)
from stylegan_cli.model.resample import downsample2d, fir_filter, upfirdn2d

# The discriminators of StyleGAN2 Figure 7 (`d_arch`): "orig" is Progressive GAN's, which grows; "skip"
# reads the image at every resolution; "resnet" (config F's) has residual connections.
D_ARCHS = ("orig", "skip", "resnet")
# The blocks of the original ("orig") discriminator, by the generator's arch: Progressive GAN's own (no blur),
# StyleGAN's (blurred), StyleGAN2's (its layers, as in its configs B-D and Fig. 7a).
ARCHS = ("pggan", "stylegan", "stylegan2")
# The label mapping of a conditional discriminator: the depth and learning-rate multiplier of NVIDIA's PyTorch
# MappingNetwork defaults, which their training keeps for D (their TF code's D maps with 0 layers by default).
D_MAPPING_LAYERS, D_MAPPING_LR_MUL = 8, 0.01

class FromRGB(nn.Module):
    """1x1 conv from RGB to features, leaky ReLU 0.2 (PG Table 2); `gain_after_bias` for StyleGAN2's (see
    EqualizedLinear)."""

    def __init__(self, out_channels: int, gain_after_bias: bool = False):
        super().__init__()
        self.conv = EqualizedConv2d(3, out_channels, 1, gain=SQRT2, gain_after_bias=gain_after_bias)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(img), LRELU_SLOPE)


class DiscriminatorBlock(nn.Module):
    """One resolution of PG's discriminator (Table 2) as NVIDIA's StyleGAN and Progressive GAN code compute it:
    3x3 conv and leaky ReLU 0.2; then [the binomial blur (SG App. C)], a 3x3 conv to the next resolution's width
    and 2x2 average pooling (the fused conv + downscale of their code), then bias and leaky ReLU 0.2."""

    def __init__(self, in_channels: int, out_channels: int, blur: bool = True):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, gain=SQRT2)
        self.blur = Blur(in_channels) if blur else None
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv0(x), LRELU_SLOPE)
        if self.blur is not None:
            x = self.blur(x)
        x = F.avg_pool2d(F.conv2d(x, self.conv1.weight * self.conv1.weight_gain, padding=1), 2)
        return F.leaky_relu(x + self.conv1.scaled_bias().to(x.dtype).view(1, -1, 1, 1), LRELU_SLOPE)


class StyleGAN2Block(nn.Module):
    """One resolution of StyleGAN2's discriminators (SG2 Fig. 7a-c: original, skip, residual), as NVIDIA's code
    builds it: 3x3 conv, then a 3x3 conv to the next resolution's width that downsamples (the [1,3,3,1] filter,
    then stride 2), leaky ReLU 0.2 after each, activations clamped in reduced precision; for resnet, plus
    a 1x1 downsampled residual path, both paths scaled by 1/sqrt(2). Gains follow the biases, as in
    StyleGAN2's layers (`gain_after_bias`)."""

    def __init__(self, in_channels: int, out_channels: int, residual: bool):
        super().__init__()
        gain = SQRT_HALF if residual else 1.0
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, gain=SQRT2, gain_after_bias=True)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2 * gain, gain_after_bias=True)
        self.skip = FIRConv1x1(in_channels, out_channels, up=False) if residual else None
        self.register_buffer("fir", fir_filter(), persistent=False)
        self.clamps = (CONV_CLAMP, CONV_CLAMP * gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = None if self.skip is None else self.skip(x)
        x = clamp_reduced(F.leaky_relu(self.conv0(x), LRELU_SLOPE), self.clamps[0])
        x = F.conv2d(upfirdn2d(x, self.fir, padding=(2, 2, 2, 2)), self.conv1.weight * self.conv1.weight_gain,
                     self.conv1.scaled_bias(), stride=2)
        x = clamp_reduced(F.leaky_relu(x, LRELU_SLOPE), self.clamps[1])
        return x if residual is None else residual + x


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (PG §3): the std of every feature at every pixel over a group of samples,
    averaged into one value per group (per slice of channels when `num_features` > 1), appended as constant
    feature maps. The group size G is the largest divisor of N not above `group_size` (PG: 4). Groups are
    strided, as in NVIDIA's code: sample n is in group n mod (N / G), with samples N / G apart; the trainer
    splits a batch across processes by the same stride (sample n on process n mod world), so each process
    forms the groups one process would. Computed in fp32."""

    def __init__(self, group_size: int = 4, num_features: int = 1):
        super().__init__()
        self.group_size, self.num_features = group_size, num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = max(g for g in range(1, min(self.group_size, N) + 1) if N % g == 0)
        F_ = self.num_features
        y = x.float().reshape(G, N // G, F_, C // F_, H, W)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (N/G, F)
        y = y.view(1, N // G, F_, 1, 1).expand(G, -1, -1, H, W).reshape(N, F_, H, W)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 end of PG's discriminator (Table 2): minibatch std, 3x3 conv, the 4x4 'conv' to a 1x1 output
    (a dense layer on the flattened 4x4 maps), leaky ReLU after both, then a linear dense layer to 1;
    `gain_after_bias` for StyleGAN2's. Class-conditional (`cmap_dim` > 0): the projection discriminator of
    NVIDIA's StyleGAN2-ADA code (after Miyato & Koyama 2018): the last layer gives cmap_dim features, and the score
    is their dot product with the mapped label, scaled by 1/sqrt(cmap_dim)."""

    def __init__(self, channels: int, mbstd_group_size: int, mbstd_num_features: int, gain_after_bias: bool = False,
                 cmap_dim: int = 0):
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_features)
        self.conv = EqualizedConv2d(channels + mbstd_num_features, channels, 3, gain=SQRT2,
                                    gain_after_bias=gain_after_bias)
        self.fc = EqualizedLinear(channels * 16, channels, gain=SQRT2, gain_after_bias=gain_after_bias)
        self.out = EqualizedLinear(channels, cmap_dim or 1)
        self.cmap_dim = cmap_dim

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None = None) -> torch.Tensor:
        x = F.leaky_relu(self.conv(self.mbstd(x)), LRELU_SLOPE)
        x = self.out(F.leaky_relu(self.fc(x.flatten(1)), LRELU_SLOPE))
        if not self.cmap_dim:
            return x.squeeze(1)
        assert cmap is not None and cmap.shape == (x.shape[0], self.cmap_dim), (None if cmap is None else cmap.shape)
        return (x * cmap.to(x.dtype)).sum(dim=1) * (1 / math.sqrt(self.cmap_dim))


class Discriminator(nn.Module):
    """PG's discriminator (§2-3, Table 2), used by every arch (SG App. C keeps it): FromRGB at the input
    resolution, a DiscriminatorBlock per resolution down to 8x8, then the 4x4 epilogue. With alpha < 1
    the newest resolution fades in (PG Fig. 2): after its block, the features are
    lerp(FromRGB_{res/2}(avg_pool_2x2(img)), block_res(FromRGB_res(img)), alpha).

    `d_arch` "skip" or "resnet" gives StyleGAN2's discriminators (SG2 Fig. 7b-c; config F's is resnet),
    which work at their full resolution only: resnet reads the image once, through the top FromRGB; skip
    reads it at every resolution, downsampled with the [1,3,3,1] filter, and adds each FromRGB's features,
    the epilogue's too. `arch` chooses the original design's blocks: Progressive GAN's own D has no blur
    ("pggan"), StyleGAN's blurs ("stylegan"), StyleGAN2's are its own layers ("stylegan2"; skip and resnet
    always are).

    Class-conditional (`c_dim` classes, docs/design.md §15) as NVIDIA's StyleGAN2-ADA discriminator, for every
    arch: the one-hot label through a mapping network of its own (z_dim 0, `mapping_layers` layers, as wide as the
    4x4 features, cmap_dim) into the projection epilogue."""

    def __init__(self, resolution: int, fmap_base: int = 8192, fmap_max: int = 512, mbstd_group_size: int = 4,
                 mbstd_num_features: int = 1, d_arch: str = "orig", arch: str = "stylegan", c_dim: int = 0,
                 mapping_layers: int = D_MAPPING_LAYERS):
        super().__init__()
        if d_arch not in D_ARCHS or arch not in ARCHS:
            raise ValueError(f"d_arch must be one of {', '.join(D_ARCHS)} and arch one of {', '.join(ARCHS)}, "
                             f"not {d_arch!r} and {arch!r}")
        log2 = resolution_log2(resolution)
        fmaps = [feature_maps(2**i, fmap_base, fmap_max) for i in range(2, log2 + 1)]
        self.resolution, self.d_arch = resolution, d_arch
        stylegan2 = d_arch != "orig" or arch == "stylegan2"
        self.from_rgb = nn.ModuleList(FromRGB(c, gain_after_bias=stylegan2)
                                      for c in (fmaps[-1:] if d_arch == "resnet" else fmaps))
        self.blocks = nn.ModuleList(
            StyleGAN2Block(fmaps[i], fmaps[i - 1], residual=d_arch == "resnet") if stylegan2 else
            DiscriminatorBlock(fmaps[i], fmaps[i - 1], blur=arch == "stylegan") for i in range(1, len(fmaps)))
        cmap_dim = fmaps[0] if c_dim else 0  # NVIDIA's default cmap_dim: the 4x4 features' width
        self.c_dim = c_dim
        self.mapping = MappingNetwork(0, cmap_dim, mapping_layers, D_MAPPING_LR_MUL, cmap_dim,
                                      gain_after_bias=stylegan2, c_dim=c_dim) if c_dim else None
        self.epilogue = DiscriminatorEpilogue(fmaps[0], mbstd_group_size, mbstd_num_features, gain_after_bias=stylegan2,
                                              cmap_dim=cmap_dim)
        if d_arch == "skip":
            self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, img: torch.Tensor, res: int | None = None, alpha: float = 1.0,
                c: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, res, res) images [with (N, c_dim) one-hot labels when conditional] -> (N,) scores."""
        res = res or self.resolution
        assert 4 <= res <= self.resolution and img.shape[1:] == (3, res, res), (img.shape, res)
        assert (c is None) == (self.c_dim == 0), f"labels {'missing' if c is None else 'given'} (c_dim {self.c_dim})"
        cmap = None if c is None else self.mapping(None, c)
        if self.d_arch != "orig":
            assert res == self.resolution and alpha == 1.0, f"a {self.d_arch} discriminator does not grow"
            return self._forward_stylegan2(img, cmap)
        n = resolution_log2(res) - 2
        assert 0.0 <= alpha <= 1.0 and (alpha == 1.0 or n > 0), f"cannot fade in {res}x{res} at alpha {alpha}"
        x = self.from_rgb[n](img)
        for i in range(n, 0, -1):
            x = self.blocks[i - 1](x)
            if i == n and alpha < 1:
                x = torch.lerp(self.from_rgb[n - 1](F.avg_pool2d(img, 2)), x, alpha)
        return self.epilogue(x, cmap)

    def _forward_stylegan2(self, img: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        x = self.from_rgb[-1](img)
        for i in range(len(self.blocks), 0, -1):
            x = self.blocks[i - 1](x)
            if self.d_arch == "skip":
                img = downsample2d(img, self.fir)
                x = x + self.from_rgb[i - 1](img)
        return self.epilogue(x, cmap)
