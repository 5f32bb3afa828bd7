"""The generators of the StyleGAN family (docs/design.md §6), growable as Progressive GAN grows them.

Paper sections are cited as PG (Progressive GAN), SG (StyleGAN) and SG2 (StyleGAN2).

- arch "pggan": PG's generator: latent -> 4x4 dense, 3x3 convs with pixelwise normalisation (§4.2),
  nearest-neighbour upsampling (Table 2).
- arch "stylegan": SG §2: mapping network, learned constant, noise inputs, AdaIN after every conv,
  bilinear resampling with the [1,2,1] binomial filter (App. C).
- arch "stylegan2": SG2 §2: AdaIN replaced by weight modulation/demodulation, bias and noise outside
  the style block, nothing applied to the constant, StyleGAN2's [1,3,3,1] resampling; its original
  design grows like the others (SG2's configs B-D), its skip and resnet designs do not (Fig. 7).

Growing (PG §2, Fig. 2; SG App. C grows "the same way"): every resolution has a ToRGB, and while a
new resolution fades in the image-space skip uses nearest-neighbour upsampling, exactly as PG's
Fig. 2, so at alpha 0 the output is the upsampled lower-resolution image bit for bit.
Demodulation statistics are computed in fp32 under autocast.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stylegan_cli.model.layers import (
    CONV_CLAMP,
    LRELU_SLOPE,
    SQRT2,
    SQRT_HALF,
    EqualizedLinear,
    FIRConv1x1,
    PixelNorm,
    feature_maps,
    resolution_log2,
)
from stylegan_cli.model.resample import fir_filter, upsample2d
from stylegan_cli.model.synthesis_layers import (
    ConstantInput,
    LatentInput,
    ModulatedConvLayer,
    PGConvLayer,
    StyleConvLayer,
    ToRGB,
)

ARCHS = ("stylegan", "stylegan2", "pggan")
# The synthesis networks of StyleGAN2 Figure 7 (`g_arch`, stylegan2 only): "orig" grows progressively with a
# ToRGB per resolution as the other archs do; "skip" sums the upsampled RGB outputs of every resolution
# (config F's generator); "resnet" adds residual connections and has one ToRGB at the end.
G_ARCHS = ("orig", "skip", "resnet")
NOISE_MODES = ("random", "const", "none")


class MappingNetwork(nn.Module):
    """The mapping network f: Z -> W (SG §2): pixel-normalised z through `num_layers` dense layers with
    leaky ReLU 0.2, `width` wide but the last (w_dim), their learning rate multiplied by `lr_mul` (SG App. C:
    8 layers, 512 wide, 0.01). StyleGAN2's applies each layer's gain after its bias (`gain_after_bias`,
    see EqualizedLinear).

    Class-conditional (`c_dim` classes, docs/design.md §15), as NVIDIA's StyleGAN2-ADA mapping network: the one-hot
    label through a linear dense layer to w_dim (`embed`), pixel-normalised and joined to the normalised z, so the
    first layer reads z_dim + w_dim features. With z_dim 0 it maps the label alone (the projection
    discriminator's label mapping)."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_mul: float, width: int,
                 gain_after_bias: bool = False, c_dim: int = 0):
        super().__init__()
        assert z_dim > 0 or c_dim > 0, "a mapping network needs a latent or a label"
        dims = [z_dim + (w_dim if c_dim else 0)] + [width] * (num_layers - 1) + [w_dim]
        self.z_dim, self.c_dim = z_dim, c_dim
        self.norm = PixelNorm()
        self.embed = EqualizedLinear(c_dim, w_dim) if c_dim else None
        self.layers = nn.ModuleList(EqualizedLinear(i, o, gain=SQRT2, lr_mul=lr_mul, gain_after_bias=gain_after_bias)
                                    for i, o in list(zip(dims, dims[1:]))[:num_layers])  # none for 0 (the label alone)

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.norm(z)] if self.z_dim else []
        if self.embed is not None:
            assert c is not None and c.ndim == 2 and c.shape[1] == self.c_dim, (None if c is None else c.shape)
            parts.append(self.norm(self.embed(c.to(self.embed.weight.dtype))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = F.leaky_relu(layer(x), LRELU_SLOPE)
        return x


class LabelledPixelNorm(nn.Module):
    """Progressive GAN's conditional input (its code's `G_paper`): the one-hot label appended to z, the pair
    pixel-normalised together, so pggan's "w" has z_dim + c_dim features (docs/design.md §15)."""

    def __init__(self, c_dim: int):
        super().__init__()
        self.c_dim, self.norm = c_dim, PixelNorm()

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if not self.c_dim:
            return self.norm(z)
        assert c is not None and c.ndim == 2 and c.shape[1] == self.c_dim, (None if c is None else c.shape)
        return self.norm(torch.cat([z, c.to(z.dtype)], dim=1))


class SynthesisBlock(nn.Module):
    """The layers of one resolution of the synthesis network and its ToRGB, so that any resolution can be
    the output while growing (PG §2); for stylegan2, the blocks of StyleGAN2's own code in every design
    (`ModulatedConvLayer`, a learned constant drawn from N(0, 1)), with, for resnet (SG2 Fig. 7c), a 1x1
    residual path upsampled by the FIR filter and both paths scaled by 1/sqrt(2), and only the last block's
    ToRGB. Which style input feeds which layer:
    - stylegan: two per resolution (SG Fig. 1: 18 at 1024), 4x4's first layer working on the constant;
    - stylegan2: 4x4 has one conv; at every resolution ToRGB and the next resolution's first conv share
      a style input, which keeps SG2's count of 2*log2(res)-2 (18 at 1024);
    - pggan: every layer ignores the styles but the input layer, which reads ws[:, 0]."""

    def __init__(self, arch: str, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 generator: torch.Generator, g_arch: str = "orig", last: bool = False, layer_noise: bool = False):
        super().__init__()
        self.resolution = resolution
        k = resolution_log2(resolution) - 2
        first, C, stylegan2 = resolution == 4, out_channels, arch == "stylegan2"
        self.input = (LatentInput(w_dim, C) if arch == "pggan" else ConstantInput(C, random_init=stylegan2)) \
            if first else None
        residual = g_arch == "resnet" and not first
        self.skip = FIRConv1x1(in_channels, C, up=True) if residual else None
        if arch == "stylegan":
            self.layers = nn.ModuleList([
                StyleConvLayer(in_channels, C, w_dim, resolution, generator, up=not first, conv=not first,
                               layer_noise=layer_noise),
                StyleConvLayer(C, C, w_dim, resolution, generator, layer_noise=layer_noise)])
            self.w_index, self.rgb_w_index = [2 * k, 2 * k + 1], 0
        elif stylegan2:
            self.layers = nn.ModuleList(
                ([] if first else [ModulatedConvLayer(in_channels, C, w_dim, resolution, generator, up=True,
                                                      layer_noise=layer_noise)])
                + [ModulatedConvLayer(C, C, w_dim, resolution, generator, layer_noise=layer_noise,
                                      gain=SQRT_HALF if residual else 1.0)])
            self.w_index, self.rgb_w_index = [0] if first else [2 * k - 1, 2 * k], 2 * k + 1
        else:
            self.layers = nn.ModuleList(([] if first else [PGConvLayer(in_channels, C, up=True)]) + [PGConvLayer(C, C)])
            self.w_index, self.rgb_w_index = [0] * len(self.layers), 0
        self.num_noise = 0 if arch == "pggan" else len(self.layers)
        self.to_rgb = None if g_arch == "resnet" and not last else \
            ToRGB(C, w_dim, modulated=stylegan2, clamp=CONV_CLAMP if stylegan2 else None)

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
                noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        if self.input is not None:
            x = self.input(ws)
        residual = None if self.skip is None else self.skip(x)
        for i, (layer, w_index) in enumerate(zip(self.layers, self.w_index)):
            x = layer(x, ws[:, w_index], noise_mode, None if not noise else noise[i])
        return x if residual is None else residual + x

    def rgb(self, x: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        assert self.to_rgb is not None, f"this resnet generator has no ToRGB at {self.resolution}x{self.resolution}"
        return self.to_rgb(x, ws[:, self.rgb_w_index])


class Generator(nn.Module):
    """The generator of each arch: `mapping` (z -> w), then `synthesis` (ws -> image), growable
    (PG §2) from `start_resolution` (SG App. C: 8 for the style-based archs; PG: 4) to `resolution`.
    pggan has no W space: its "mapping" only pixel-normalises z and w_dim must equal z_dim. stylegan2
    takes the synthesis networks of SG2 Fig. 7 (`g_arch`); config F is "skip". `layer_noise`: one noise
    strength per layer, as StyleGAN2's networks have it, rather than one per channel (SG App. C); None:
    StyleGAN2's for stylegan2. `c_dim` > 0: class-conditional, `mapping` taking one-hot labels (docs/design.md §15;
    `bind_class` fixes one)."""

    def __init__(self, arch: str, resolution: int, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 8,
                 mapping_width: int = 512, fmap_base: int = 8192, fmap_max: int = 512, mapping_lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995, g_arch: str = "orig", layer_noise: bool | None = None, c_dim: int = 0):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, not {arch!r}")
        if g_arch not in G_ARCHS or (g_arch != "orig" and arch != "stylegan2"):
            raise ValueError(f"g_arch must be one of {', '.join(G_ARCHS)}, and orig unless arch is stylegan2, "
                             f"not {g_arch!r} with {arch!r}")
        if arch == "pggan" and w_dim != z_dim:
            raise ValueError(f"pggan has no mapping network, so w_dim ({w_dim}) must equal z_dim ({z_dim})")
        log2 = resolution_log2(resolution)
        if arch == "pggan":  # its "w" is the normalised latent, the label appended when conditional
            w_dim = z_dim + c_dim
        self.arch, self.g_arch, self.resolution, self.z_dim, self.w_dim = arch, g_arch, resolution, z_dim, w_dim
        self.c_dim, self.bound_class = c_dim, None
        self.start_resolution = 4 if arch == "pggan" else min(8, resolution)
        self.num_ws = 1 if arch == "pggan" else 2 * log2 - 2
        self.w_avg_beta = w_avg_beta
        self.mapping_network = LabelledPixelNorm(c_dim) if arch == "pggan" else \
            MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_mul, mapping_width,
                           gain_after_bias=arch == "stylegan2", c_dim=c_dim)
        layer_noise = arch == "stylegan2" if layer_noise is None else layer_noise
        self.register_buffer("w_avg", torch.zeros(w_dim))
        noise_generator = torch.Generator().manual_seed(0)  # the 'const' noise images, the same in every G
        fmaps = [feature_maps(2**i, fmap_base, fmap_max) for i in range(2, log2 + 1)]
        self.blocks = nn.ModuleList(
            SynthesisBlock(arch, fmaps[max(i - 1, 0)], fmaps[i], w_dim, 2 ** (i + 2), noise_generator, g_arch,
                           last=i == len(fmaps) - 1, layer_noise=layer_noise)
            for i in range(len(fmaps)))
        if g_arch == "skip":  # the RGB outputs are upsampled with StyleGAN2's filter before they are summed
            self.register_buffer("fir", fir_filter(), persistent=False)

    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, update_w_avg: bool = False,
                broadcast: bool = False) -> torch.Tensor:
        """(N, z_dim) -> (N, w_dim), or with `broadcast` (N, num_ws, w_dim): the same w for every style
        input, as synthesis takes it. `c`: (N, c_dim) one-hot labels, for a conditional generator only. With
        `update_w_avg`, moves w_avg towards the batch mean (the centre of mass of W that truncation needs,
        SG App. B) by 1 - w_avg_beta."""
        assert z.ndim == 2 and z.shape[1] == self.z_dim, (z.shape, self.z_dim)
        if c is None and self.bound_class is not None:
            c = F.one_hot(torch.full((len(z),), self.bound_class, device=z.device), self.c_dim).to(z.dtype)
        assert (c is None) == (self.c_dim == 0), f"labels {'missing' if c is None else 'given'} (c_dim {self.c_dim})"
        w = self.mapping_network(z, c)
        if update_w_avg:
            self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return w.unsqueeze(1).repeat(1, self.num_ws, 1) if broadcast else w

    def bind_class(self, label: int) -> None:
        """Makes a class-conditional generator one of its classes: `mapping` without labels maps with `label`."""
        assert 0 <= label < self.c_dim, (label, self.c_dim)
        self.bound_class = label

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
        x, previous, skip, offset, img = None, None, None, 0, None
        for block in self.blocks[: n + 1]:
            if block.resolution == res and alpha < 1:
                skip = F.interpolate(previous.rgb(x, ws) if img is None else img, scale_factor=2, mode="nearest")
            block_noise = None if noise is None else noise[offset : offset + block.num_noise]
            x, previous, offset = block(x, ws, noise_mode, block_noise), block, offset + block.num_noise
            if self.g_arch == "skip":  # SG2 Fig. 7b: the sum of every resolution's upsampled RGB output
                img = block.rgb(x, ws) if img is None else upsample2d(img, self.fir) + block.rgb(x, ws)
        img = previous.rgb(x, ws) if img is None else img
        if skip is not None:
            img = torch.lerp(skip, img, alpha)
        assert img.shape == (ws.shape[0], 3, res, res), img.shape
        return img

    def forward(self, z: torch.Tensor, res: int | None = None, alpha: float = 1.0, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "random",
                c: torch.Tensor | None = None) -> torch.Tensor:
        """mapping -> the same w for every style input -> truncation (if psi != 1) -> synthesis."""
        ws = self.mapping(z, c, broadcast=True)
        if truncation_psi != 1:
            ws = self.truncate(ws, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, res, alpha, noise_mode)

    def _block_index(self, res: int) -> int:
        assert 4 <= res <= self.resolution, f"res {res} outside 4..{self.resolution}"
        return resolution_log2(res) - 2
