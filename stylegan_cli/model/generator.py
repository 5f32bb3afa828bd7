"""The generators of the StyleGAN family (docs/design.md §6), growable as Progressive GAN grows them.

Paper sections are cited as PG (Progressive GAN), SG (StyleGAN) and SG2 (StyleGAN2).

- arch "pggan": PG's generator: latent -> 4x4 dense, 3x3 convs with pixelwise normalisation (§4.2),
  nearest-neighbour upsampling (Table 2).
- arch "stylegan": SG §2: mapping network, learned constant, noise inputs, AdaIN after every conv,
  bilinear resampling with the [1,2,1] binomial filter (App. C).
- arch "stylegan2": SG2 §2: AdaIN replaced by weight modulation/demodulation, bias and noise outside
  the style block, nothing applied to the constant; kept progressive so it grows like the others.

Growing (PG §2, Fig. 2; SG App. C grows "the same way"): every resolution has a ToRGB, and while a
new resolution fades in the image-space skip uses nearest-neighbour upsampling, exactly as PG's
Fig. 2, so at alpha 0 the output is the upsampled lower-resolution image bit for bit.
Demodulation statistics are computed in fp32 under autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from stylegan_cli.model.layers import (
    LRELU_SLOPE,
    SQRT2,
    EqualizedConv2d,
    EqualizedLinear,
    PixelNorm,
    Upsample,
    feature_maps,
    resolution_log2,
)

ARCHS = ("stylegan", "stylegan2", "pggan")
NOISE_MODES = ("random", "const", "none")


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
        k = resolution_log2(resolution) - 2
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
        log2 = resolution_log2(resolution)
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

    def mapping(self, z: torch.Tensor, update_w_avg: bool = False, broadcast: bool = False) -> torch.Tensor:
        """(N, z_dim) -> (N, w_dim), or with `broadcast` (N, num_ws, w_dim): the same w for every style
        input, as synthesis takes it. With `update_w_avg`, moves w_avg towards the batch mean (the centre
        of mass of W that truncation needs, SG App. B) by 1 - w_avg_beta."""
        assert z.ndim == 2 and z.shape[1] == self.z_dim, (z.shape, self.z_dim)
        w = self.mapping_network(z)
        if update_w_avg:
            self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return w.unsqueeze(1).repeat(1, self.num_ws, 1) if broadcast else w

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
        ws = self.mapping(z, broadcast=True)
        if truncation_psi != 1:
            ws = self.truncate(ws, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, res, alpha, noise_mode)

    def _block_index(self, res: int) -> int:
        assert 4 <= res <= self.resolution, f"res {res} outside 4..{self.resolution}"
        return resolution_log2(res) - 2
