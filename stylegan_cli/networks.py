"""The generators and the discriminator of the StyleGAN family, in plain PyTorch (DESIGN.md §6).

Paper sections are cited as PG (Progressive GAN, Karras 2018), SG (StyleGAN, Karras 2019) and
SG2 (StyleGAN2, Karras 2020).

- arch "pggan": PG's generator: latent -> 4x4 dense, 3x3 convs with pixelwise normalisation (§4.2),
  nearest-neighbour upsampling (Table 2).
- arch "stylegan": SG §2: mapping network, learned constant, noise inputs, AdaIN after every conv,
  bilinear resampling with the [1,2,1] binomial filter (App. C).
- arch "stylegan2": SG2 §2: AdaIN replaced by weight modulation/demodulation, bias and noise outside
  the style block, nothing applied to the constant; kept progressive so it grows like the others.
- `Discriminator`: PG's (§2-3, Table 2), shared by every arch as SG App. C does, with SG's blurred
  downsampling inside its blocks for all archs.

Growing (PG §2, Fig. 2; SG App. C grows "the same way"): every resolution has a ToRGB (G) and a
FromRGB (D), and while a new resolution fades in the image-space skip uses nearest-neighbour
upsampling in G and 2x2 average pooling in D, exactly as PG's Fig. 2, so at alpha 0 G's output is
the upsampled lower-resolution image bit for bit and D sees the pooled image through the lower
FromRGB. All layers use the equalized learning rate (PG §4.1). Normalisation and demodulation
statistics are computed in fp32 under autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("stylegan", "stylegan2", "pggan")
NOISE_MODES = ("random", "const", "none")
LRELU_SLOPE = 0.2
SQRT2 = math.sqrt(2.0)


def feature_maps(res: int, fmap_base: int = 8192, fmap_max: int = 512) -> int:
    """Feature maps at a resolution (PG App. A, SG App. C): min(fmap_base / 2^(log2(res)-1), fmap_max),
    i.e. 512 at 4..32, then 256, 128, 64, 32, 16 at 64..1024 with the defaults."""
    return min(int(fmap_base / 2 ** (_log2(res) - 1)), fmap_max)


def _log2(res: int) -> int:
    log2 = int(res).bit_length() - 1
    assert res >= 4 and res == 2**log2, f"resolution must be a power of two >= 4, not {res}"
    return log2


# ----------------------------------------------------------------------------------------------
# Shared building blocks.


class EqualizedLinear(nn.Module):
    """Dense layer with the equalized learning rate (PG §4.1): weights stored N(0, 1)/lr_mul and scaled at
    run time by lr_mul * gain / sqrt(fan_in), the bias by lr_mul. With Adam, lr_mul scales the layer's
    effective learning rate (SG App. C: 0.01 for the mapping network)."""

    def __init__(self, in_features: int, out_features: int, gain: float = 1.0, lr_mul: float = 1.0,
                 bias: bool = True, bias_init: float | torch.Tensor = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_features).add_(bias_init) / lr_mul) if bias else None
        self.weight_gain = lr_mul * gain / math.sqrt(in_features)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        return F.linear(x, self.weight * self.weight_gain, bias)


class EqualizedConv2d(nn.Module):
    """Same-padded convolution with the equalized learning rate (PG §4.1): weights N(0, 1) scaled at run
    time by gain / sqrt(in_channels * kernel_size^2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = 1.0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)


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


class Upsample(nn.Module):
    """Bilinear 2x upsampling as SG App. C builds it: nearest neighbour, then the binomial blur."""

    def __init__(self, channels: int):
        super().__init__()
        self.blur = Blur(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(F.interpolate(x, scale_factor=2, mode="nearest"))


class Downsample(nn.Module):
    """Bilinear 2x downsampling as SG App. C builds it: the binomial blur, then 2x2 average pooling."""

    def __init__(self, channels: int):
        super().__init__()
        self.blur = Blur(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.blur(x), 2)


# ----------------------------------------------------------------------------------------------
# Generator parts.


class MappingNetwork(nn.Module):
    """The mapping network f: Z -> W (SG §2): pixel-normalised z through `num_layers` dense layers with
    leaky ReLU 0.2, their learning rate multiplied by `lr_mul` (SG App. C: 8 layers, 512 wide, 0.01)."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_mul: float):
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.norm = PixelNorm()
        self.layers = nn.ModuleList(EqualizedLinear(i, o, gain=SQRT2, lr_mul=lr_mul) for i, o in zip(dims, dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.norm(z)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), LRELU_SLOPE)
        return x


class NoiseInjection(nn.Module):
    """Noise input of one layer (SG §2, Fig. 1b "B"): a single-channel Gaussian image broadcast to all
    feature maps with learned per-channel scales (initialised to zero, SG App. C) and added to the conv
    output. Modes: 'random' a fresh image per sample, 'const' one image drawn at construction from
    `generator` (not saved in checkpoints: it is redrawn identically), 'none' nothing added; an explicit
    `noise` tensor (N or 1, 1, H, W) overrides the mode."""

    def __init__(self, channels: int, resolution: int, generator: torch.Generator):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(channels))
        self.register_buffer("const", torch.randn(1, 1, resolution, resolution, generator=generator), persistent=False)

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
    the equalized-LR scale 1/sqrt(fan_in), which demodulation cancels and ToRGB (no demodulation) uses."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        N = x.shape[0]
        assert x.shape[1] == self.weight.shape[1] and w.shape[0] == N, (x.shape, w.shape, self.weight.shape)
        with torch.autocast(device_type=x.device.type, enabled=False):
            s = self.affine(w.to(self.weight.dtype))  # (N, in), fp32 unless the module itself was cast
            weight = self.weight * self.weight_gain
            if self.demodulate:  # 1 / sqrt(sum_i s_i^2 sum_k w_ijk^2 + eps): (N, out)
                d = (s.square() @ weight.square().sum(dim=(2, 3)).T + 1e-8).rsqrt()
        x = F.conv2d(x * s.to(x.dtype).view(N, -1, 1, 1), weight, padding=self.padding)
        if self.demodulate:
            x = x * d.to(x.dtype).view(N, -1, 1, 1)
        return x


class ConstantInput(nn.Module):
    """The learned 4x4 constant that starts SG's synthesis network (SG §2), initialised to one (App. C)."""

    def __init__(self, channels: int):
        super().__init__()
        self.const = nn.Parameter(torch.ones(1, channels, 4, 4))

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
    """One layer of SG's synthesis network (SG §2, Fig. 1b): [2x upsample] 3x3 conv (none on the constant),
    noise, bias, leaky ReLU 0.2, then AdaIN with this layer's style."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, generator: torch.Generator,
                 up: bool = False, conv: bool = True):
        super().__init__()
        self.up = Upsample(in_channels) if up else None
        self.conv = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2, bias=False) if conv else None
        self.noise = NoiseInjection(out_channels, resolution, generator)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.adain = AdaIN(out_channels, w_dim)

    def forward(self, x, w, noise_mode: str, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.up is not None:
            x = self.up(x)
        if self.conv is not None:
            x = self.conv(x)
        x = self.noise(x, noise_mode, noise)
        x = F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), LRELU_SLOPE)
        return self.adain(x, w)


class ModulatedConvLayer(nn.Module):
    """One layer of SG2's synthesis network (SG2 §2.1-2.2, Fig. 2d): [2x upsample] modulated/demodulated 3x3
    conv (the style block), then noise and bias outside it, then leaky ReLU 0.2 scaled by sqrt(2) so it
    keeps the expected signal variance (SG2 §2.2: demodulation removes the He gain from the weights)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, generator: torch.Generator,
                 up: bool = False):
        super().__init__()
        self.up = Upsample(in_channels) if up else None
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, demodulate=True)
        self.noise = NoiseInjection(out_channels, resolution, generator)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x, w, noise_mode: str, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.up is not None:
            x = self.up(x)
        x = self.noise(self.conv(x, w), noise_mode, noise)
        return F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), LRELU_SLOPE) * SQRT2


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

    def __init__(self, in_channels: int, w_dim: int, modulated: bool):
        super().__init__()
        self.modulated = modulated
        self.conv = ModulatedConv2d(in_channels, 3, 1, w_dim, demodulate=False) if modulated else \
            EqualizedConv2d(in_channels, 3, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w) if self.modulated else self.conv(x)
        return x + self.bias.to(x.dtype).view(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
    """The layers of one resolution of the synthesis network and its ToRGB, so that any resolution can be
    the output while growing (PG §2). Which style input feeds which layer:
    - stylegan: two per resolution (SG Fig. 1: 18 at 1024), 4x4's first layer working on the constant;
    - stylegan2: 4x4 has one conv; at every resolution ToRGB and the next resolution's first conv share
      a style input, which keeps SG2's count of 2*log2(res)-2 (18 at 1024);
    - pggan: every layer ignores the styles but the input layer, which reads ws[:, 0]."""

    def __init__(self, arch: str, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 generator: torch.Generator):
        super().__init__()
        self.resolution = resolution
        k = _log2(resolution) - 2
        first, C = resolution == 4, out_channels
        self.input = (LatentInput(w_dim, C) if arch == "pggan" else ConstantInput(C)) if first else None
        if arch == "stylegan":
            self.layers = nn.ModuleList([
                StyleConvLayer(in_channels, C, w_dim, resolution, generator, up=not first, conv=not first),
                StyleConvLayer(C, C, w_dim, resolution, generator)])
            self.w_index, self.rgb_w_index = [2 * k, 2 * k + 1], 0
        elif arch == "stylegan2":
            self.layers = nn.ModuleList(
                ([] if first else [ModulatedConvLayer(in_channels, C, w_dim, resolution, generator, up=True)])
                + [ModulatedConvLayer(C, C, w_dim, resolution, generator)])
            self.w_index, self.rgb_w_index = [0] if first else [2 * k - 1, 2 * k], 2 * k + 1
        else:
            self.layers = nn.ModuleList(([] if first else [PGConvLayer(in_channels, C, up=True)]) + [PGConvLayer(C, C)])
            self.w_index, self.rgb_w_index = [0] * len(self.layers), 0
        self.num_noise = 0 if arch == "pggan" else len(self.layers)
        self.to_rgb = ToRGB(C, w_dim, modulated=arch == "stylegan2")

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
                noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        if self.input is not None:
            x = self.input(ws)
        for i, (layer, w_index) in enumerate(zip(self.layers, self.w_index)):
            x = layer(x, ws[:, w_index], noise_mode, None if not noise else noise[i])
        return x

    def rgb(self, x: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(x, ws[:, self.rgb_w_index])


class Generator(nn.Module):
    """The generator of each arch: `mapping` (z -> w), then `synthesis` (ws -> image), growable
    (PG §2) from `start_resolution` (SG App. C: 8 for the style-based archs; PG: 4) to `resolution`.
    pggan has no W space: its "mapping" only pixel-normalises z and w_dim must equal z_dim."""

    def __init__(self, arch: str, resolution: int, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 8,
                 fmap_base: int = 8192, fmap_max: int = 512, mapping_lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, not {arch!r}")
        if arch == "pggan" and w_dim != z_dim:
            raise ValueError(f"pggan has no mapping network, so w_dim ({w_dim}) must equal z_dim ({z_dim})")
        log2 = _log2(resolution)
        self.arch, self.resolution, self.z_dim, self.w_dim = arch, resolution, z_dim, w_dim
        self.start_resolution = 4 if arch == "pggan" else min(8, resolution)
        self.num_ws = 1 if arch == "pggan" else 2 * log2 - 2
        self.w_avg_beta = w_avg_beta
        self.mapping_network = PixelNorm() if arch == "pggan" else \
            MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_mul)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        noise_generator = torch.Generator().manual_seed(0)  # the 'const' noise images, the same in every G
        fmaps = [feature_maps(2**i, fmap_base, fmap_max) for i in range(2, log2 + 1)]
        self.blocks = nn.ModuleList(
            SynthesisBlock(arch, fmaps[max(i - 1, 0)], fmaps[i], w_dim, 2 ** (i + 2), noise_generator)
            for i in range(len(fmaps)))

    def mapping(self, z: torch.Tensor, update_w_avg: bool = False) -> torch.Tensor:
        """(N, z_dim) -> (N, w_dim). With `update_w_avg`, moves w_avg towards the batch mean (the centre of
        mass of W that truncation needs, SG App. B) by 1 - w_avg_beta."""
        assert z.ndim == 2 and z.shape[1] == self.z_dim, (z.shape, self.z_dim)
        w = self.mapping_network(z)
        if update_w_avg:
            self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return w

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        """The truncation trick in W (SG App. B): w' = w_avg + psi (w - w_avg) on the first `cutoff` style
        inputs of (N, num_ws, w_dim) ws, all of them when None; psi 0 gives w_avg, psi 1 changes nothing."""
        assert ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim), ws.shape
        cutoff = self.num_ws if cutoff is None else cutoff
        head = torch.lerp(self.w_avg.to(ws.dtype).expand_as(ws[:, :cutoff]), ws[:, :cutoff], psi)
        return torch.cat([head, ws[:, cutoff:]], dim=1)

    def style_layer_resolutions(self) -> list[int]:
        """The resolution each style input belongs to: [4, 4, 8, 8, ...] (SG §3.1's coarse/middle/fine);
        for stylegan2 the second input of a resolution also drives the next one's first conv (see
        SynthesisBlock); [4] for pggan, whose only input is the latent at 4x4."""
        return [4] if self.arch == "pggan" else [2 ** (2 + i // 2) for i in range(self.num_ws)]

    def make_noise(self, batch: int, res: int | None = None, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> list[torch.Tensor]:
        """One (batch, 1, r, r) Gaussian image per noise input up to `res`, for `synthesis(noise=...)`, drawn
        from `generator` (or the global RNG) on the generator's device, then moved to `device`."""
        n = self._block_index(res or self.resolution)
        source = generator.device if generator is not None else device
        return [torch.randn(batch, 1, b.resolution, b.resolution, generator=generator, device=source).to(device)
                for b in self.blocks[: n + 1] for _ in range(b.num_noise)]

    def synthesis(self, ws: torch.Tensor, res: int | None = None, alpha: float = 1.0, noise_mode: str = "random",
                  noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(N, num_ws, w_dim) -> (N, 3, res, res) images, nominally in [-1, 1] (no tanh), res defaulting to
        `resolution`. With alpha < 1 the newest resolution fades in (PG §2, Fig. 2): the output is
        lerp(nearest_upsample(ToRGB_{res/2}(x_{res/2})), ToRGB_res(x_res), alpha). `noise_mode` is
        'random', 'const' or 'none' (see NoiseInjection); `noise` (as from `make_noise`) overrides it."""
        res = res or self.resolution
        n = self._block_index(res)
        assert ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim), (ws.shape, self.num_ws, self.w_dim)
        assert noise_mode in NOISE_MODES, noise_mode
        assert 0.0 <= alpha <= 1.0 and (alpha == 1.0 or n > 0), f"cannot fade in {res}x{res} at alpha {alpha}"
        if noise is not None:
            assert len(noise) == sum(b.num_noise for b in self.blocks[: n + 1]), len(noise)
        x, previous, skip, offset = None, None, None, 0
        for block in self.blocks[: n + 1]:
            if block.resolution == res and alpha < 1:
                skip = F.interpolate(previous.rgb(x, ws), scale_factor=2, mode="nearest")
            block_noise = None if noise is None else noise[offset : offset + block.num_noise]
            x, previous, offset = block(x, ws, noise_mode, block_noise), block, offset + block.num_noise
        img = previous.rgb(x, ws)
        if skip is not None:
            img = torch.lerp(skip, img, alpha)
        assert img.shape == (ws.shape[0], 3, res, res), img.shape
        return img

    def forward(self, z: torch.Tensor, res: int | None = None, alpha: float = 1.0, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "random") -> torch.Tensor:
        """mapping -> the same w for every style input -> truncation (if psi != 1) -> synthesis."""
        ws = self.mapping(z).unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            ws = self.truncate(ws, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, res, alpha, noise_mode)

    def _block_index(self, res: int) -> int:
        assert 4 <= res <= self.resolution, f"res {res} outside 4..{self.resolution}"
        return _log2(res) - 2


# ----------------------------------------------------------------------------------------------
# Discriminator.


class FromRGB(nn.Module):
    """1x1 conv from RGB to features, leaky ReLU 0.2 (PG Table 2)."""

    def __init__(self, out_channels: int):
        super().__init__()
        self.conv = EqualizedConv2d(3, out_channels, 1, gain=SQRT2)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(img), LRELU_SLOPE)


class DiscriminatorBlock(nn.Module):
    """One resolution of PG's discriminator (Table 2): 3x3 conv, 3x3 conv to the next resolution's width,
    leaky ReLU 0.2 after each, then 2x downsampling (blurred, SG App. C, for every arch)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, gain=SQRT2)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2)
        self.down = Downsample(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv0(x), LRELU_SLOPE)
        return self.down(F.leaky_relu(self.conv1(x), LRELU_SLOPE))


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (PG §3): the std of every feature at every pixel over a group of samples,
    averaged into one value per group (per slice of channels when `num_features` > 1), appended as constant
    feature maps. The group size is the largest divisor of N not above `group_size` (PG: 4); groups are
    runs of consecutive samples (n // group size), so a batch split across processes in contiguous
    shares forms the same groups as on one process. Computed in fp32."""

    def __init__(self, group_size: int = 4, num_features: int = 1):
        super().__init__()
        self.group_size, self.num_features = group_size, num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = max(g for g in range(1, min(self.group_size, N) + 1) if N % g == 0)
        F_ = self.num_features
        y = x.float().reshape(N // G, G, F_, C // F_, H, W)
        y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (N/G, F)
        y = y.view(N // G, 1, F_, 1, 1).expand(-1, G, -1, H, W).reshape(N, F_, H, W)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 end of PG's discriminator (Table 2): minibatch std, 3x3 conv, the 4x4 'conv' to a 1x1 output
    (a dense layer on the flattened 4x4 maps), leaky ReLU after both, then a linear dense layer to 1."""

    def __init__(self, channels: int, mbstd_group_size: int, mbstd_num_features: int):
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_features)
        self.conv = EqualizedConv2d(channels + mbstd_num_features, channels, 3, gain=SQRT2)
        self.fc = EqualizedLinear(channels * 16, channels, gain=SQRT2)
        self.out = EqualizedLinear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv(self.mbstd(x)), LRELU_SLOPE)
        x = F.leaky_relu(self.fc(x.flatten(1)), LRELU_SLOPE)
        return self.out(x).squeeze(1)


class Discriminator(nn.Module):
    """PG's discriminator (§2-3, Table 2), used by every arch (SG App. C keeps it): FromRGB at the input
    resolution, a DiscriminatorBlock per resolution down to 8x8, then the 4x4 epilogue. With alpha < 1
    the newest resolution fades in (PG Fig. 2): after its block, the features are
    lerp(FromRGB_{res/2}(avg_pool_2x2(img)), block_res(FromRGB_res(img)), alpha)."""

    def __init__(self, resolution: int, fmap_base: int = 8192, fmap_max: int = 512, mbstd_group_size: int = 4,
                 mbstd_num_features: int = 1):
        super().__init__()
        log2 = _log2(resolution)
        fmaps = [feature_maps(2**i, fmap_base, fmap_max) for i in range(2, log2 + 1)]
        self.resolution = resolution
        self.from_rgb = nn.ModuleList(FromRGB(c) for c in fmaps)
        self.blocks = nn.ModuleList(DiscriminatorBlock(fmaps[i], fmaps[i - 1]) for i in range(1, len(fmaps)))
        self.epilogue = DiscriminatorEpilogue(fmaps[0], mbstd_group_size, mbstd_num_features)

    def forward(self, img: torch.Tensor, res: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """(N, 3, res, res) images -> (N,) scores."""
        res = res or self.resolution
        assert 4 <= res <= self.resolution and img.shape[1:] == (3, res, res), (img.shape, res)
        n = _log2(res) - 2
        assert 0.0 <= alpha <= 1.0 and (alpha == 1.0 or n > 0), f"cannot fade in {res}x{res} at alpha {alpha}"
        x = self.from_rgb[n](img)
        for i in range(n, 0, -1):
            x = self.blocks[i - 1](x)
            if i == n and alpha < 1:
                x = torch.lerp(self.from_rgb[n - 1](F.avg_pool2d(img, 2)), x, alpha)
        return self.epilogue(x)
