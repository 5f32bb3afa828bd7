"""Stochastic variation from the per-layer noise inputs (StyleGAN §3.2, Figures 4, 5).

One image (a w, untruncated as in the paper) is rendered n times with noise mode `random` and noise
seeds 0..n-1. A panel is a row: the first renderings, then the per-pixel standard deviation across
all n, as NVIDIA's figure script computes it: the std over the n images of the channel mean in 0-255
units, times 4, rounded and clipped to [0, 255] (so black is no variation, white a std of 64 or
more). Noise can be kept in some layers only (Figure 5): coarse are the noise inputs below a
resolution (the paper's 64: 4x4-32x32), fine those at it and up.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core.console import err
from stylegan_cli.model.generator import Generator
from stylegan_cli.synthesis.images import enlarge, image_grid, save_png
from stylegan_cli.synthesis.render import noise_resolutions, synthesize

STD_SCALE = 4  # NVIDIA's draw_noise_detail_figure: std (0-255 units) x 4


class Layers(str, Enum):
    """Where a Figure 5 panel keeps its noise."""

    all = "all"
    none = "none"
    coarse = "coarse"
    fine = "fine"


def layer_mask(G: Generator, layers: Layers, fine_from: int) -> list[bool]:
    """Which of G's noise inputs (coarse to fine) keep their noise: coarse below `fine_from`, fine at
    or above it (StyleGAN Figure 5 splits at 64x64)."""
    keep = {Layers.all: lambda r: True, Layers.none: lambda r: False,
            Layers.coarse: lambda r: r < fine_from, Layers.fine: lambda r: r >= fine_from}[layers]
    return [keep(r) for r in noise_resolutions(G)]


def pixel_std(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (H, W) float: the std over N of each pixel's channel mean, in 0-255 units."""
    return np.std(images.astype(np.float64).mean(axis=3), axis=0)


def std_image(std: np.ndarray) -> np.ndarray:
    """A pixel_std map for display (StyleGAN Figure 4c as NVIDIA's script draws it): times STD_SCALE,
    rounded and clipped to uint8, as an (H, W, 3) grey image."""
    grey = np.clip(std * STD_SCALE + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _describe(resolutions: list[int]) -> str:
    """[4, 4, 8, 8] -> '4x4-8x8'."""
    if not resolutions:
        return "no layer"
    lo, hi = min(resolutions), max(resolutions)
    return f"{lo}x{lo}" if lo == hi else f"{lo}x{lo}-{hi}x{hi}"


def variation_panels(G: Generator, seed: int, w: torch.Tensor, masks: dict[Layers, list[bool]], by_layers: bool,
                     n: int, show: int, batch: int, out: Path, outputs: list[str],
                     grid_scale: int | None = None) -> list[dict]:
    """The panels of one seed's image `w` (num_ws, w_dim), one per mask, written into `out` and appended
    to `outputs` as they are written; returns a JSON summary per panel.

    Without `by_layers` (Figure 4, noise everywhere) the panel is seedSSSS-variation.png and its std
    seedSSSS-std.png; with it (Figure 5) seedSSSS-layers-<which>.png and seedSSSS-layers-<which>-std.png,
    and several panels also make seedSSSS-layers.png, a row per panel. The panels and that figure are enlarged
    by `images.enlarge` (`grid_scale`: --grid-scale); the std images keep the network's resolution."""
    rows, summary = [], []
    for p, mask in masks.items():
        images = synthesize(G, w.expand(n, -1, -1), batch, "random", noise_seeds=list(range(n)),
                            noise_layers=mask, description=f"seed {seed} noise {p.value}")
        std = pixel_std(images)
        shown = [*images[:show], std_image(std)]
        rows.append(image_grid(shown, cols=len(shown)))
        stem = f"seed{seed:04d}-" + (f"layers-{p.value}" if by_layers else "variation")
        figure = save_png(out / f"{stem}.png", enlarge(rows[-1], G.resolution, grid_scale))
        std_path = save_png(out / (f"{stem}-std.png" if by_layers else f"seed{seed:04d}-std.png"), shown[-1])
        outputs.extend([str(figure), str(std_path)])
        used = [r for r, keep in zip(noise_resolutions(G), mask) if keep]
        err.print(f"seed {seed}, noise at {_describe(used)}: mean per-pixel std {std.mean():.3f} (0-255 units).")
        summary.append({"seed": seed, "layers": p.value, "noise_resolutions": sorted(set(used)),
                        "figure": str(figure), "std": str(std_path), "mean_std": float(std.mean())})
    if len(rows) > 1:
        outputs.append(str(save_png(out / f"seed{seed:04d}-layers.png", enlarge(image_grid(rows, cols=1), G.resolution,
                                                                                         grid_scale))))
    return summary
