"""`sgan noise`: stochastic variation from the per-layer noise inputs (StyleGAN §3.2, Figures 4, 5).

One image (a seed's w, untruncated as in the paper) is rendered `--n` times with noise mode
`random` and noise seeds 0..n-1. Each figure is a row: the first `--show` renderings, then the
per-pixel standard deviation across all n, as NVIDIA's figure script computes it: the std over the
n images of the channel mean in 0-255 units, times 4, rounded and clipped to [0, 255]
(so black is no variation, white a std of 64 or more).

Without `--layers` (Figure 4), noise enters every layer: seedSSSS-variation.png and
seedSSSS-std.png. With `--layers` (Figure 5), noise enters only some layers, each panel written as
seedSSSS-layers-<which>.png and seedSSSS-layers-<which>-std.png; coarse is the noise inputs below
`--fine-from` (64: the paper's 4x4-32x32), fine those at 64x64 and up. Several `--layers` (repeated,
or a comma list) also make seedSSSS-layers.png, one row per panel in the order given:
`--layers all,none,fine,coarse` is the paper's Figure 5 (a)-(d). Files go to RUN/noise/, with
latents.npz holding each seed's z and w.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import numpy as np
import typer

from stylegan_cli import generate, rundir
from stylegan_cli.cli import JsonOption, RunOption
from stylegan_cli.console import err, results
from stylegan_cli.errors import UsageError
from stylegan_cli.generate import BatchOption, CkptOption
from stylegan_cli.grid import image_grid, save_png
from stylegan_cli.latents import parse_seeds, seed_latent
from stylegan_cli.networks import Generator

STD_SCALE = 4  # NVIDIA's draw_noise_detail_figure: std (0-255 units) x 4


class Layers(str, Enum):
    all = "all"
    none = "none"
    coarse = "coarse"
    fine = "fine"


def command(
    seed: Annotated[str, typer.Option("--seed", help="Seed of the image; a list (1,7 or 0-3) makes one figure "
                                                     "per seed.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Noise realisations the standard deviation is taken "
                                                      "over.")] = 100,
    show: Annotated[int, typer.Option("--show", min=0, help="Realisations shown before the std image.")] = 4,
    layers: Annotated[Optional[list[str]], typer.Option(
        "--layers", show_default=False,
        help="Noise only in these layers: all, none, coarse (below --fine-from: 4x4-32x32) or fine (64x64 and "
             "up); repeat it or give a comma list for one figure of several panels, a row each "
             "(all,none,fine,coarse is Figure 5).")] = None,
    fine_from: Annotated[int, typer.Option("--fine-from", min=1, help="Noise inputs at this resolution and up "
                                                                      "are fine, the rest coarse.")] = 64,
    batch: BatchOption = 32,
    ckpt: CkptOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stochastic variation (StyleGAN Figures 4, 5): one image under many noise realisations and
    its per-pixel std (x4, 0-255 units); --layers puts noise in some layers only.

    Writes RUN/noise/seedSSSS-variation.png and -std.png, or with --layers
    seedSSSS-layers-<which>.png and -std.png per panel, plus seedSSSS-layers.png for several."""
    seeds = parse_seeds(seed)
    panels = _parse_layers(layers)
    run_dir = rundir.resolve_run(run)
    loaded = generate.load_generator(run_dir, ckpt)
    G = loaded.G
    if G.arch == "pggan":
        raise UsageError(f"{loaded.ckpt} is a Progressive GAN generator, which has no noise inputs to vary.")
    masks = {p: layer_mask(G, p, fine_from) for p in panels or [Layers.all]}
    for p, mask in masks.items():
        if p in (Layers.coarse, Layers.fine) and not any(mask):
            err.print(f"Note: with --fine-from {fine_from}, this {G.resolution}x{G.resolution} generator has no "
                      f"{p.value} noise inputs, so '{p.value}' adds no noise.")
    with rundir.stage(run_dir) as record:
        latents = [seed_latent(s, G.z_dim) for s in seeds]
        ws = generate.to_ws(G, latents)
        out = run_dir / "noise"
        figures = []
        for s, w in zip(seeds, ws):
            rows = []
            for p, mask in masks.items():
                images = generate.synthesize(G, w.expand(n, -1, -1), batch, "random", noise_seeds=list(range(n)),
                                             noise_layers=mask, description=f"seed {s} noise {p.value}")
                std = pixel_std(images)
                shown = [*images[:show], std_image(std)]
                rows.append(image_grid(shown, cols=len(shown)))
                stem = f"seed{s:04d}-" + ("variation" if panels is None else f"layers-{p.value}")
                figure = save_png(out / f"{stem}.png", rows[-1])
                std_path = save_png(out / (f"seed{s:04d}-std.png" if panels is None else f"{stem}-std.png"), shown[-1])
                record.outputs += [str(figure), str(std_path)]
                used = [r for r, keep in zip(generate.noise_resolutions(G), mask) if keep]
                err.print(f"seed {s}, noise at {_describe(used)}: mean per-pixel std {std.mean():.3f} (0-255 units).")
                figures.append({"seed": s, "layers": p.value, "noise_resolutions": sorted(set(used)),
                                "figure": str(figure), "std": str(std_path), "mean_std": float(std.mean())})
            if len(rows) > 1:
                record.outputs.append(str(save_png(out / f"seed{s:04d}-layers.png", image_grid(rows, cols=1))))
        npz = generate.save_latents(out / "latents.npz", latents, ws)
        record.outputs.append(str(npz))
        summary = {"outputs": record.outputs, "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg, "n": n,
                   "fine_from": fine_from, "figures": figures, "latents": str(npz)}
        results(record.outputs, summary if as_json else None)


def _parse_layers(values: list[str] | None) -> list[Layers] | None:
    """--layers given as repeats and/or comma lists, in order, without repeats."""
    if not values:
        return None
    panels: list[Layers] = []
    for part in (p.strip() for v in values for p in v.split(",")):
        try:
            layer = Layers(part)
        except ValueError:
            raise UsageError(f"--layers {part!r} is not one of all, none, coarse, fine.") from None
        if layer not in panels:
            panels.append(layer)
    return panels


def layer_mask(G: Generator, layers: Layers, fine_from: int) -> list[bool]:
    """Which of G's noise inputs (coarse to fine) keep their noise: coarse below `fine_from`, fine at
    or above it (StyleGAN Figure 5 splits at 64x64)."""
    keep = {Layers.all: lambda r: True, Layers.none: lambda r: False,
            Layers.coarse: lambda r: r < fine_from, Layers.fine: lambda r: r >= fine_from}[layers]
    return [keep(r) for r in generate.noise_resolutions(G)]


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
