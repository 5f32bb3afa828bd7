"""Adaptive discriminator augmentation (StyleGAN2-ADA, Karras et al. 2020; docs/design.md §14).

Every image the discriminator sees, real or generated, passes through the same pipeline of transforms, each
applied to an image with probability p (§2.2-2.3: augmentations that leak nothing into the generator as long as
p stays below about 0.8). The transforms, their parameter distributions (App. B.2) and their order are those of
NVIDIA's `training/augment.py`:

* pixel blitting: x-flip, 90-degree rotations, integer translation;
* general geometry: isotropic scaling, rotation (split in two around anisotropic scaling, each with probability
  1 - sqrt(1 - p) so that one or both happen with probability p), anisotropic scaling, fractional translation;
  all geometric transforms are composed into one inverse matrix and applied once: reflect padding, 2x
  upsampling with the 12-tap symlet-6 wavelet filter, bilinear resampling, 2x downsampling with the same filter;
* colour: brightness, contrast, luma flip, hue rotation, saturation, composed into one 4x4 matrix;
* image-space filtering: four frequency bands, each amplified by a log-normal gain, then the power renormalised;
* corruptions: additive RGB noise, cutout.

Every step is differentiable in the image, so R1 takes its gradient through the augmentation.

Random draws are made for the global batch in exactly NVIDIA's order (`draw`) and each process applies its share
of them (`AugmentPipe.forward`): so the augmentation is independent of the number of processes, a run resumes
bitwise, and a generator seeded like NVIDIA's global one gives their images.
As in their code, a group of transforms that the preset enables is executed even where no image draws it (the
geometric resampling at p = 0 is close to, not exactly, the identity).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from stylegan_cli.model.resample import upfirdn2d

# NVIDIA's --augpipe presets (StyleGAN2-ADA §3 and Figure 4: 'bgc' is the paper's default).
BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
PRESETS: dict[str, tuple[str, ...]] = {
    "blit": BLIT, "geom": GEOM, "color": COLOR, "filter": ("imgfilter",), "noise": ("noise",),
    "cutout": ("cutout",), "bg": BLIT + GEOM, "bgc": BLIT + GEOM + COLOR,
    "bgcf": BLIT + GEOM + COLOR + ("imgfilter",), "bgcfn": BLIT + GEOM + COLOR + ("imgfilter", "noise"),
    "bgcfnc": BLIT + GEOM + COLOR + ("imgfilter", "noise", "cutout"),
}
TRANSFORMS = BLIT + GEOM + COLOR + ("imgfilter", "noise", "cutout")

# The parameter distributions of App. B.2 (NVIDIA's AugmentPipe defaults).
XINT_MAX = 0.125  # integer translation: uniform within +-12.5% of the image size
SCALE_STD = 0.2  # isotropic scaling: log2-normal
ROTATE_MAX = 1.0  # rotation: uniform over this share of the full circle
ANISO_STD = 0.2  # anisotropic scaling: log2-normal
XFRAC_STD = 0.125  # fractional translation: normal, relative to the image size
BRIGHTNESS_STD = 0.2  # brightness: normal offset
CONTRAST_STD = 0.5  # contrast: log2-normal
HUE_MAX = 1.0  # hue rotation: uniform over this share of the full circle
SATURATION_STD = 1.0  # saturation: log2-normal
IMGFILTER_STD = 1.0  # image-space filter band gains: log2-normal
IMGFILTER_POWER = (10.0, 1.0, 1.0, 1.0)  # the expected power of the four bands (a 1/f spectrum), relative
NOISE_STD = 0.1  # additive noise: its sigma is half-normal with this scale
CUTOUT_SIZE = 0.5  # cutout: a square of half the image size

# Daubechies' symlet low-pass filters (PyWavelets' sym2 and sym6 decomposition coefficients).
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)


def filter_bank() -> np.ndarray:
    """The image-space filter's four bands (4, taps): band 0 is the low-pass residual after three octaves,
    bands 1-3 the high-pass details of each octave, built from sym2's half-band filters H(z)H(1/z)/2 and
    H(-z)H(-1/z)/2 by upsampling the bank one octave at a time."""
    lo = np.asarray(SYM2)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo2, hi2 = np.convolve(lo, lo[::-1]) / 2, np.convolve(hi, hi[::-1]) / 2
    bank = np.zeros((4, 1))
    bank[0, 0] = 1.0
    for band in range(1, 4):
        spread = np.zeros((4, bank.shape[1] * 2 - 1))  # one octave down: a zero between taps
        spread[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo2) for row in spread])
        start = (bank.shape[1] - hi2.size) // 2
        bank[band, start : start + hi2.size] += hi2
    return bank


# -- random draws --

# Each transform's draws in NVIDIA's order: (entry, transform, distribution of the value, the value's and the gate's
# shapes after the batch). Every value is followed by its gate, a uniform compared with p (the rotations' with
# 1 - sqrt(1 - p), so that one or both happen with probability p).
_DRAWS = (
    ("xflip", "xflip", "uniform", (), ()), ("rotate90", "rotate90", "uniform", (), ()),
    ("xint", "xint", "uniform", (2,), (1,)), ("scale", "scale", "normal", (), ()),
    ("rotate_pre", "rotate", "uniform", (), ()), ("aniso", "aniso", "normal", (), ()),
    ("rotate_post", "rotate", "uniform", (), ()), ("xfrac", "xfrac", "normal", (2,), (1,)),
    ("brightness", "brightness", "normal", (), ()), ("contrast", "contrast", "normal", (), ()),
    ("lumaflip", "lumaflip", "uniform", (1, 1), (1, 1)), ("hue", "hue", "uniform", (), ()),
    ("saturation", "saturation", "normal", (1, 1), (1, 1)),
    *((f"imgfilter{band}", "imgfilter", "normal", (), ()) for band in range(len(IMGFILTER_POWER))),
    ("noise", "noise", "normal", (1, 1, 1), (1, 1, 1)),
)


def draw(transforms: tuple[str, ...], p: torch.Tensor, shape: tuple[int, int, int, int],
         generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The random inputs of the pipeline for a batch of images of `shape` (N, C, H, W), drawn from `generator`
    in NVIDIA's order and sizes, as float32 on the generator's device: for each transform a value and whether
    the image takes it (`NAME_on`), then the noise images and cutout's gate and centre. Every entry has the batch
    as its first dimension."""
    n = shape[0]
    device = generator.device
    p = p.to(device)
    rotate_chance = 1 - torch.sqrt((1 - p).clamp(0, 1))
    sample = {"uniform": torch.rand, "normal": torch.randn}
    d: dict[str, torch.Tensor] = {}
    for entry, transform, distribution, size, gate in _DRAWS:
        if transform in transforms:
            d[entry] = sample[distribution]((n, *size), generator=generator, device=device)
            chance = rotate_chance if transform == "rotate" else p
            d[f"{entry}_on"] = torch.rand((n, *gate), generator=generator, device=device) < chance
    if "noise" in transforms:
        d["noise_image"] = torch.randn(shape, generator=generator, device=device)
    if "cutout" in transforms:
        d["cutout_on"] = torch.rand((n, 1, 1, 1, 1), generator=generator, device=device) < p
        d["cutout_center"] = torch.rand((n, 2, 1, 1, 1), generator=generator, device=device)
    return d


def share(draws: dict[str, torch.Tensor], rank: int, world: int) -> dict[str, torch.Tensor]:
    """One process's share of draws made for the global batch: every world-th image from its rank on, as the
    trainer shares latents and reals."""
    return {k: v[rank::world] for k, v in draws.items()}


def parameters(draws: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Each transform's parameter per image (its identity value where the image does not take it), computed
    from the draws in `dtype`: flips and quarter turns as 0/1 and 0..3, translations as fractions of the image
    size, scales and gains as factors, angles in radians, noise sigmas, cutout sizes and centres."""
    d = {k: v.to(dtype) for k, v in draws.items()}

    def gated(name, value, identity):
        return torch.where(draws[f"{name}_on"], value, torch.full_like(value, identity))

    out = {}
    if "xflip" in d:
        out["xflip"] = gated("xflip", torch.floor(d["xflip"] * 2), 0)
    if "rotate90" in d:
        out["rotate90"] = gated("rotate90", torch.floor(d["rotate90"] * 4), 0)
    if "xint" in d:
        out["xint"] = gated("xint", (d["xint"] * 2 - 1) * XINT_MAX, 0)
    if "scale" in d:
        out["scale"] = gated("scale", torch.exp2(d["scale"] * SCALE_STD), 1)
    if "rotate_pre" in d:
        for name in ("rotate_pre", "rotate_post"):
            out[name] = gated(name, (d[name] * 2 - 1) * math.pi * ROTATE_MAX, 0)
    if "aniso" in d:
        out["aniso"] = gated("aniso", torch.exp2(d["aniso"] * ANISO_STD), 1)
    if "xfrac" in d:
        out["xfrac"] = gated("xfrac", d["xfrac"] * XFRAC_STD, 0)
    if "brightness" in d:
        out["brightness"] = gated("brightness", d["brightness"] * BRIGHTNESS_STD, 0)
    if "contrast" in d:
        out["contrast"] = gated("contrast", torch.exp2(d["contrast"] * CONTRAST_STD), 1)
    if "lumaflip" in d:
        out["lumaflip"] = gated("lumaflip", torch.floor(d["lumaflip"] * 2), 0)
    if "hue" in d:
        out["hue"] = gated("hue", (d["hue"] * 2 - 1) * math.pi * HUE_MAX, 0)
    if "saturation" in d:
        out["saturation"] = gated("saturation", torch.exp2(d["saturation"] * SATURATION_STD), 1)
    for band in range(len(IMGFILTER_POWER)):
        if f"imgfilter{band}" in d:
            out[f"imgfilter{band}"] = gated(f"imgfilter{band}", torch.exp2(d[f"imgfilter{band}"] * IMGFILTER_STD), 1)
    if "noise" in d:
        out["noise"] = gated("noise", d["noise"].abs() * NOISE_STD, 0)
        out["noise_image"] = d["noise_image"]
    if "cutout_on" in d:
        size = torch.full((d["cutout_on"].shape[0], 2, 1, 1, 1), CUTOUT_SIZE, dtype=dtype, device=d["cutout_on"].device)
        out["cutout_size"] = gated("cutout", size, 0)
        out["cutout_center"] = d["cutout_center"]
    return out


# -- homogeneous matrices, one per image --


def _matrix(rows: list[list], like: torch.Tensor) -> torch.Tensor:
    """(N, R, C) from rows of per-image tensors (N,) and constants."""
    return torch.stack([torch.stack([e if torch.is_tensor(e) else torch.full_like(like, e) for e in row], -1)
                        for row in rows], -2)


def translate2d(tx, ty):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale2d(sx, sy):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate2d(theta):
    return _matrix([[torch.cos(theta), -torch.sin(theta), 0], [torch.sin(theta), torch.cos(theta), 0], [0, 0, 1]],
                   theta)


def translate3d(t):
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], t)


def scale3d(s):
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], s)


def rotate3d(axis: torch.Tensor, theta):
    """Rotation by theta about the unit `axis` (Rodrigues' formula)."""
    x, y, z = axis[0], axis[1], axis[2]
    s, c = torch.sin(theta), torch.cos(theta)
    k = 1 - c
    return _matrix([[x * x * k + c, x * y * k - z * s, x * z * k + y * s, 0],
                    [y * x * k + z * s, y * y * k + c, y * z * k - x * s, 0],
                    [z * x * k - y * s, z * y * k + x * s, z * z * k + c, 0],
                    [0, 0, 0, 1]], theta)


def geometric_inverse(params: dict[str, torch.Tensor], n: int, width: int, height: int,
                      dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(N, 3, 3): the composed geometric transforms, inverted (output pixel -> input pixel, in pixels from the
    image centre), in NVIDIA's order: x-flip, quarter turns, integer translation, scaling, rotation,
    anisotropic scaling, rotation, fractional translation."""
    G = torch.eye(3, dtype=dtype, device=device).expand(n, 3, 3)
    one = torch.ones(n, dtype=dtype, device=device)
    if "xflip" in params:
        G = G @ scale2d(1 / (1 - 2 * params["xflip"]), one)
    if "rotate90" in params:
        G = G @ rotate2d(math.pi / 2 * params["rotate90"])
    if "xint" in params:
        t = params["xint"]
        G = G @ translate2d(-torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height))
    if "scale" in params:
        G = G @ scale2d(1 / params["scale"], 1 / params["scale"])
    if "rotate_pre" in params:
        G = G @ rotate2d(params["rotate_pre"])
    if "aniso" in params:
        G = G @ scale2d(1 / params["aniso"], 1 / (1 / params["aniso"]))
    if "rotate_post" in params:
        G = G @ rotate2d(params["rotate_post"])
    if "xfrac" in params:
        t = params["xfrac"]
        G = G @ translate2d(-t[:, 0] * width, -t[:, 1] * height)
    return G


def color_matrix(params: dict[str, torch.Tensor], n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(N, 4, 4): the composed colour transforms on homogeneous RGB, in NVIDIA's order: brightness, contrast,
    luma flip (a reflection across the plane normal to the luma axis), hue (a rotation about it), saturation
    (a scaling away from it)."""
    C = torch.eye(4, dtype=dtype, device=device).expand(n, 4, 4)
    luma = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=dtype, device=device) / math.sqrt(3)
    along = torch.outer(luma, luma)
    eye = torch.eye(4, dtype=dtype, device=device)
    if "brightness" in params:
        C = translate3d(params["brightness"]) @ C
    if "contrast" in params:
        C = scale3d(params["contrast"]) @ C
    if "lumaflip" in params:
        C = (eye - 2 * along * params["lumaflip"]) @ C
    if "hue" in params:
        C = rotate3d(luma, params["hue"]) @ C
    if "saturation" in params:
        C = (along + (eye - along) * params["saturation"]) @ C
    return C


# -- the pipeline --


def _warp(images: torch.Tensor, G: torch.Tensor, lowpass: torch.Tensor, G_batch: torch.Tensor) -> torch.Tensor:
    """Resample every image through its inverse matrix G (pixels from the image centre) as NVIDIA's pipeline
    does (ADA App. B.2): reflect-pad by what the transformed corners of the whole batch's images (`G_batch`, all
    processes') need, at most the image size less one, upsample 2x with the wavelet low-pass, sample bilinearly,
    downsample 2x with the same filter and crop. (NVIDIA's processes pad by their own images' needs, which moves
    pixels near the border by up to about 1e-4; one padding for the whole batch keeps sgan's result independent
    of the number of processes.)"""
    n, c, height, width = images.shape
    taps = lowpass.shape[0]
    margin_filter = taps // 4
    cx, cy = (width - 1) / 2, (height - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dtype=G.dtype,
                           device=G.device)
    reached = (G_batch @ corners.t())[:, :2, :].permute(1, 0, 2).flatten(1)  # (xy, N * corners)
    margin = torch.cat([-reached, reached]).max(dim=1).values  # how far left, up, right, down
    margin = margin + torch.tensor([margin_filter * 2 - cx, margin_filter * 2 - cy] * 2, dtype=G.dtype,
                                   device=G.device)
    limit = torch.tensor([width - 1, height - 1] * 2, dtype=G.dtype, device=G.device)
    mx0, my0, mx1, my1 = (int(m) for m in margin.clamp(min=0).minimum(limit).ceil().tolist())
    images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
    one = torch.ones(n, dtype=G.dtype, device=G.device)

    def shift(tx, ty):
        return translate2d(one * tx, one * ty)

    def zoom(sx, sy):
        return scale2d(one * sx, one * sy)

    G = shift((mx0 - mx1) / 2, (my0 - my1) / 2) @ G
    f = lowpass.to(images.dtype)
    pad_up = ((taps + 1) // 2, (taps - 2) // 2) * 2  # NVIDIA's upsample2d padding for an even filter
    images = upfirdn2d(images, f, up=2, padding=pad_up, gain=4)
    G = zoom(2, 2) @ G @ zoom(1 / 2, 1 / 2)
    G = shift(-0.5, -0.5) @ G @ shift(0.5, 0.5)
    out_h, out_w = (height + margin_filter * 2) * 2, (width + margin_filter * 2) * 2
    G = zoom(2 / images.shape[3], 2 / images.shape[2]) @ G @ zoom(1 / (2 / out_w), 1 / (2 / out_h))
    grid = F.affine_grid(G[:, :2, :], [n, c, out_h, out_w], align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Downsampling as a correlation (NVIDIA's flip_filter=True): upfirdn2d convolves, so the filter goes in flipped.
    crop = ((taps - 1) // 2 - margin_filter * 2, (taps - 2) // 2 - margin_filter * 2) * 2
    return upfirdn2d(images, f.flip(0), down=2, padding=crop)


class AugmentPipe(torch.nn.Module):
    """The `transforms` (names from TRANSFORMS, e.g. a preset's) at probability `p`, a buffer that the ADA
    controller moves and checkpoints keep."""

    def __init__(self, transforms: tuple[str, ...], p: float = 0.0):
        super().__init__()
        assert set(transforms) <= set(TRANSFORMS), transforms
        self.transforms = tuple(transforms)
        self.register_buffer("p", torch.tensor(float(p)))
        lowpass = torch.tensor(SYM6)
        self.register_buffer("lowpass", lowpass / lowpass.sum(), persistent=False)
        self.register_buffer("bank", torch.tensor(filter_bank(), dtype=torch.float32), persistent=False)

    def draw(self, shape: tuple[int, int, int, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The random inputs for a batch of `shape` at the current p (see `draw`)."""
        return draw(self.transforms, self.p, shape, generator)

    def forward(self, images: torch.Tensor, draws: dict[str, torch.Tensor], rank: int = 0,
                world: int = 1) -> torch.Tensor:
        """This process's `images` (N, 3, H, W) augmented by its share of `draws`, which were drawn for the global
        batch of N * world images; computed in float32 (float64 for float64 images)."""
        n, channels, height, width = images.shape
        assert channels == 3, images.shape
        dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        device = images.device
        everyone = parameters({k: v.to(device) for k, v in draws.items()}, dtype)
        assert all(v.shape[0] == n * world for v in everyone.values()), "draws for another batch"
        params = share(everyone, rank, world)
        with torch.autocast(device.type, enabled=False):  # in full precision, as NVIDIA's pipeline computes
            return self._augment(images.to(dtype), params, everyone, rank, world)

    def _augment(self, x: torch.Tensor, params: dict[str, torch.Tensor], everyone: dict[str, torch.Tensor], rank: int,
               world: int) -> torch.Tensor:
        n, _, height, width = x.shape
        dtype, device = x.dtype, x.device
        if any(t in self.transforms for t in BLIT + GEOM):
            G_batch = geometric_inverse(everyone, n * world, width, height, dtype, device)
            x = _warp(x, G_batch[rank::world], self.lowpass, G_batch)
        if any(t in self.transforms for t in COLOR):
            C = color_matrix(params, n, dtype, device)
            x = (C[:, :3, :3] @ x.reshape(n, 3, height * width) + C[:, :3, 3:]).reshape(n, 3, height, width)
        if "imgfilter" in self.transforms and min(height, width) > self.bank.shape[1] // 2:
            x = self._filter(x, params)  # (its reflect padding needs 22 pixels or more: left out at 8 and 16)
        if "noise" in self.transforms:
            x = x + params["noise_image"] * params["noise"]
        if "cutout" in self.transforms:
            size, centre = params["cutout_size"], params["cutout_center"]
            xs = (torch.arange(width, device=device).reshape(1, 1, 1, -1) + 0.5) / width
            ys = (torch.arange(height, device=device).reshape(1, 1, -1, 1) + 0.5) / height
            keep = ((xs - centre[:, 0]).abs() >= size[:, 0] / 2) | ((ys - centre[:, 1]).abs() >= size[:, 1] / 2)
            x = x * keep.to(dtype)
        return x

    def _filter(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Amplify each of the four bands by its gain, keeping the expected power of a 1/f spectrum: one
        separable filter per image, applied with reflect padding."""
        n, c, height, width = x.shape
        bands = self.bank.shape[0]
        power = torch.tensor([v / sum(IMGFILTER_POWER) for v in IMGFILTER_POWER], dtype=x.dtype, device=x.device)
        gain = torch.ones(n, bands, dtype=x.dtype, device=x.device)
        for band in range(bands):
            t = torch.ones(n, bands, dtype=x.dtype, device=x.device)
            t[:, band] = params[f"imgfilter{band}"]
            gain = gain * (t / (power * t.square()).sum(dim=-1, keepdim=True).sqrt())
        taps = (gain @ self.bank.to(x.dtype)).repeat_interleave(c, dim=0).reshape(n * c, 1, -1)
        pad = self.bank.shape[1] // 2
        x = F.pad(x.reshape(1, n * c, height, width), [pad] * 4, mode="reflect")
        x = F.conv2d(x, taps.unsqueeze(2), groups=n * c)
        x = F.conv2d(x, taps.unsqueeze(3), groups=n * c)
        return x.reshape(n, c, height, width)
