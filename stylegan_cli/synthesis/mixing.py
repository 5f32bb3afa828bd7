"""Style mixing across scales (StyleGAN §3.1, Figure 3; docs/design.md §6).

Each style input of the synthesis network belongs to a resolution; the paper groups them as coarse
(4x4-8x8), middle (16x16-32x32) and fine (64x64 up to the output). Latents named for a group drive
that group's layers. A group not named takes its styles from the next coarser named group, and
groups coarser than the coarsest named one take theirs from it, so every layer has exactly one
source; explicit layer indices can replace the groups.

A group that lists several latents is an axis of the figure: the coarser of the two axes gives the
rows (its unmixed sources down the left edge), the finer the columns (its sources along the top).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.model.generator import Generator
from stylegan_cli.synthesis.images import save_png, scaled_grid
from stylegan_cli.synthesis.latents import Latent, save_latents
from stylegan_cli.synthesis.render import noise_seed, synthesize, to_ws
from stylegan_cli.synthesis.truncation import truncate

GROUPS = ("coarse", "middle", "fine")


def group_of(resolution: int) -> str:
    """The paper's group (StyleGAN §3.1) of a style input at `resolution`."""
    return "coarse" if resolution <= 8 else "middle" if resolution <= 32 else "fine"


def layer_sources(resolutions: list[int], named: list[str], styles: list[int] | None = None) -> list[str]:
    """The named group that supplies each style layer, given each layer's resolution.

    `named` lists the named groups, coarse to fine. Without `styles`, a layer takes its own group if
    named, else the next coarser named group, else (coarser than every named group) the coarsest one.
    With `styles` (exactly two named groups), the finer group supplies those layers, the coarser the rest.
    """
    if styles is not None:
        coarser, finer = named
        return [finer if i in styles else coarser for i in range(len(resolutions))]
    sources = []
    for res in resolutions:
        rank = GROUPS.index(group_of(res))
        at_or_coarser = [g for g in named if GROUPS.index(g) <= rank]
        sources.append(at_or_coarser[-1] if at_or_coarser else named[0])
    return sources


def mix_ws(ws: dict[str, torch.Tensor], sources: list[str]) -> torch.Tensor:
    """(num_ws, w_dim) styles whose layer i is layer i of `ws[sources[i]]` (each (num_ws, w_dim))."""
    return torch.stack([ws[group][i] for i, group in enumerate(sources)])


def grid_axes(named: list[str], counts: dict[str, int]) -> tuple[str, str]:
    """(rows, columns): the two named groups listing several latents (at most two may), coarse to fine;
    with one such group, it and the coarsest other named group; with none, the coarsest and the
    finest named groups."""
    listed = [g for g in named if counts[g] > 1]
    if len(listed) == 1:
        other = next(g for g in named if g != listed[0])
        listed = sorted([listed[0], other], key=GROUPS.index)
    return (listed[0], listed[1]) if len(listed) == 2 else (named[0], named[-1])


@dataclass
class MixGrid:
    """StyleGAN Figure 3 before rendering: its two axes and a mix for every (row, column)."""

    row_group: str
    col_group: str
    rows: list[Latent]  # the coarser axis: unmixed sources down the left edge
    cols: list[Latent]  # the finer axis: unmixed sources along the top
    row_ws: torch.Tensor
    col_ws: torch.Tensor
    mixes: torch.Tensor  # (rows x cols, num_ws, w_dim), row-major, before truncation
    names: list[str]  # each mix's sources, one latent per named group, coarse to fine, joined by '-'
    noise_sources: list[Latent]  # each mix's latent that supplies its first style layer: its seed or its own
    # noise maps give the mix's noise


def plan_grid(G: Generator, latents: dict[str, list[Latent]], sources: list[str]) -> MixGrid:
    """Every mix of the named groups' `latents` (coarse to fine; at most two listing several) whose
    layer i comes from group `sources[i]`. A group that is not an axis contributes its first latent."""
    named = list(latents)
    rows, cols = grid_axes(named, {g: len(latents[g]) for g in named})
    ws = {g: to_ws(G, latents[g]) for g in named}
    mixes, names, noise_sources = [], [], []
    for r, row in enumerate(latents[rows]):
        for c, col in enumerate(latents[cols]):
            picked = {**{g: latents[g][0] for g in named}, rows: row, cols: col}
            mixes.append(mix_ws({**{g: ws[g][0] for g in named}, rows: ws[rows][r], cols: ws[cols][c]}, sources))
            names.append("-".join(picked[g].label for g in named))
            noise_sources.append(picked[sources[0]])
    return MixGrid(row_group=rows, col_group=cols, rows=latents[rows], cols=latents[cols], row_ws=ws[rows],
                   col_ws=ws[cols], mixes=torch.stack(mixes), names=names, noise_sources=noise_sources)


def render_grid(G: Generator, grid: MixGrid, psi: float, cutoff: int | None, noise_mode: str,
                batch: int, grid_scale: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mixes, figure): each mix as an (R, R, 3) image, row-major, and the figure with the column
    sources along the top, the row sources down the left edge and a blank corner, enlarged by
    `images.enlarge` (`grid_scale`: --grid-scale)."""
    n_rows, n_cols = len(grid.rows), len(grid.cols)
    all_ws = truncate(G, torch.cat([grid.col_ws, grid.row_ws, grid.mixes]), psi, cutoff)
    noise_from = grid.cols + grid.rows + grid.noise_sources
    images = synthesize(G, all_ws, batch, noise_mode, [noise_seed(x) for x in noise_from],
                        own_noise=[x.noise for x in noise_from], description="mix")
    col_images, row_images, mixed = np.split(images, [n_cols, n_cols + n_rows])
    cells = [np.full_like(images[0], 255), *col_images]
    for r in range(n_rows):
        cells += [row_images[r], *mixed[r * n_cols : (r + 1) * n_cols]]
    return mixed, scaled_grid(cells, cols=n_cols + 1, scale=grid_scale)


def save_grid(out: Path, grid: MixGrid, mixed: np.ndarray, figure: np.ndarray) -> tuple[list[Path], Path, Path]:
    """Writes each mix as NAME.png, the figure as grid.png and latents.npz (the mixes' untruncated w
    and names) into `out`; returns (the mixes' paths, the figure's, the latents')."""
    paths = [out / f"{name}.png" for name in grid.names]
    for path, image in zip(paths, mixed):
        save_png(path, image)
    figure_path = save_png(out / "grid.png", figure)
    npz = save_latents(out / "latents.npz", [Latent(name) for name in grid.names], grid.mixes, names=True)
    return paths, figure_path, npz
