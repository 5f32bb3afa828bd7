"""`sgan mix`: style mixing across scales (StyleGAN §3.1, Figure 3).

Each style input of the synthesis network belongs to a resolution; the paper groups them as coarse
(4x4-8x8), middle (16x16-32x32) and fine (64x64 up to the output). `--coarse`, `--middle` and `--fine`
name the latents whose styles drive those layers. A group not named takes its styles from the next
coarser named group, and groups coarser than the coarsest named one take theirs from it, so every
layer has exactly one source. `--styles` replaces the groups by explicit layer indices.

A group that lists several latents is an axis of the grid: the coarser of the two axes gives the
rows (its unmixed sources down the left edge), the finer the columns (its sources along the top).
"""

from __future__ import annotations

import io
from typing import Annotated, Optional

import numpy as np
import torch
import typer

from stylegan_cli import rundir
from stylegan_cli.cli import JsonOption, RunOption
from stylegan_cli.console import err, results
from stylegan_cli.errors import UsageError
from stylegan_cli.generate import (BatchOption, CkptOption, CutoffOption, NoiseMode, NoiseOption, TruncOption,
                                   load_generator, synthesize, to_ws, truncate)
from stylegan_cli.grid import image_grid, png_bytes
from stylegan_cli.latents import Latent, parse_latents, parse_seeds

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


def parse_layers(text: str, num_ws: int) -> list[int]:
    """`--styles 0-3,8` -> sorted layer indices, each below `num_ws`."""
    try:
        layers = sorted(set(parse_seeds(text)))
    except UsageError:
        raise UsageError(f"--styles {text!r} is not a list of style layers like 0-3 or 4,5,8.") from None
    if layers[-1] >= num_ws:
        raise UsageError(f"--styles {text!r} names layer {layers[-1]}, but this generator has {num_ws} style "
                         f"layers (0-{num_ws - 1}).")
    return layers


def _axes(named: list[str], counts: dict[str, int]) -> tuple[str, str]:
    """(rows, columns): the two named groups listing several latents, coarse to fine; with one such
    group, it and the coarsest other named group; with none, the coarsest and the finest named groups."""
    listed = [g for g in named if counts[g] > 1]
    if len(listed) > 2:
        raise UsageError("At most two of --coarse, --middle and --fine may list more than one latent "
                         "(they are the grid's rows and columns).")
    if len(listed) == 1:
        other = next(g for g in named if g != listed[0])
        listed = sorted([listed[0], other], key=GROUPS.index)
    return (listed[0], listed[1]) if len(listed) == 2 else (named[0], named[-1])


def noise_seed(latent: Latent) -> int:
    """A seed's own number, so that random noise matches `sgan sample`; 0 for latents without one."""
    return latent.seed if latent.seed is not None else 0


def command(
    coarse: Annotated[Optional[str], typer.Option(
        "--coarse", show_default=False,
        help="Latents for the coarse styles (4x4-8x8): seeds (1,5,9 or 0-3), file.npz, file.npz:N, or - for "
             "an .npz on stdin.")] = None,
    middle: Annotated[Optional[str], typer.Option(
        "--middle", show_default=False, help="Latents for the middle styles (16x16-32x32), as for --coarse.")] = None,
    fine: Annotated[Optional[str], typer.Option(
        "--fine", show_default=False,
        help="Latents for the fine styles (64x64 up to the output resolution), as for --coarse.")] = None,
    styles: Annotated[Optional[str], typer.Option(
        "--styles", show_default=False,
        help="Name style layers instead of resolutions: with exactly two groups named, the finer group's "
             "latents supply these layers (indices 0 to num_ws-1, e.g. 0-3 or 4,5; layer i is at resolution "
             "2^(2 + i//2)) and the coarser group's all others.")] = None,
    trunc: TruncOption = 1.0,
    trunc_cutoff: CutoffOption = None,
    noise_mode: NoiseOption = NoiseMode.const,
    batch: BatchOption = 32,
    ckpt: CkptOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Style mixing (StyleGAN §3.1, Fig. 3): each group's layers take their styles from that group's latents.

    A group not named takes its styles from the next coarser named group (--coarse A --fine B: middle \
from A); groups coarser than the coarsest named one take theirs from it (--middle A --fine B: coarse \
from A). Name at least two groups; at most two may list several latents. The coarser listing group \
gives the grid's rows, the finer its columns: --coarse 1,2,3 --fine 4,5,6,7 draws 3x4 mixes with the \
unmixed sources along the top (columns) and down the left edge (rows).

    Writes RUN/mix/grid.png; each mix as RUN/mix/SOURCES.png, SOURCES naming the latent of every named \
group, coarse to fine, joined by '-' (seed0001-seed0004.png); and RUN/mix/latents.npz: w (one row per \
mix, row-major over the grid, before truncation, as sgan sample saves them) and names. Random \
noise is drawn from the seed whose latent supplies an image's first style layer.
    """
    texts = dict(zip(GROUPS, (coarse, middle, fine)))
    named = [g for g in GROUPS if texts[g] is not None]
    run_dir = rundir.resolve_run(run)
    with rundir.stage(run_dir) as record:
        if len(named) < 2:
            raise UsageError("Name at least two of --coarse, --middle and --fine to mix their styles.")
        if styles is not None and len(named) != 2:
            raise UsageError(f"--styles mixes exactly two groups' latents, but {len(named)} groups are named.")
        if sum(texts[g] == "-" for g in named) > 1:
            raise UsageError("Only one group can read its latents from stdin ('-').")
        loaded = load_generator(run_dir, ckpt)
        G = loaded.G
        layers = parse_layers(styles, G.num_ws) if styles is not None else None
        latents = {g: parse_latents(texts[g], G.z_dim) for g in named}
        rows, cols = _axes(named, {g: len(latents[g]) for g in named})
        sources = layer_sources(G.style_layer_resolutions(), named, layers)
        for g in named:
            if g not in sources:
                err.print(f"note: this generator has no {g} style layers, so --{g} supplies no styles.",
                          markup=False)

        ws = {g: to_ws(G, latents[g]) for g in named}
        mixes, names, noise_seeds = [], [], []
        for r, row in enumerate(latents[rows]):
            for c, col in enumerate(latents[cols]):
                picked = {**{g: latents[g][0] for g in named}, rows: row, cols: col}
                mixes.append(mix_ws({**{g: ws[g][0] for g in named}, rows: ws[rows][r], cols: ws[cols][c]}, sources))
                names.append("-".join(picked[g].label for g in named))
                noise_seeds.append(noise_seed(picked[sources[0]]))
        n_rows, n_cols = len(latents[rows]), len(latents[cols])
        raw = torch.stack(mixes)
        all_ws = truncate(G, torch.cat([ws[cols], ws[rows], raw]), trunc, trunc_cutoff)
        seeds = [noise_seed(x) for x in latents[cols] + latents[rows]] + noise_seeds
        images = synthesize(G, all_ws, batch, noise_mode.value, seeds, description="mix")
        col_images, row_images, mixed = np.split(images, [n_cols, n_cols + n_rows])
        cells = [np.full_like(images[0], 255), *col_images]
        for r in range(n_rows):
            cells += [row_images[r], *mixed[r * n_cols : (r + 1) * n_cols]]

        out = run_dir / "mix"
        paths = [out / f"{name}.png" for name in names]
        for path, image in zip(paths, mixed):
            rundir.write_bytes(path, png_bytes(image))
        grid = rundir.write_bytes(out / "grid.png", png_bytes(image_grid(cells, cols=n_cols + 1)))
        buf = io.BytesIO()
        np.savez(buf, w=raw.cpu().numpy().astype(np.float32), names=np.array(names))
        npz = rundir.write_bytes(out / "latents.npz", buf.getvalue())
        record.outputs += [*dict.fromkeys(map(str, paths)), str(grid), str(npz)]
        summary = {
            "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg, "grid": str(grid), "latents": str(npz),
            "rows": {"group": rows, "latents": [x.label for x in latents[rows]]},
            "columns": {"group": cols, "latents": [x.label for x in latents[cols]]},
            "layer_sources": sources, "trunc": trunc, "trunc_cutoff": trunc_cutoff, "noise_mode": noise_mode.value,
            "images": [str(p) for p in paths],
        }
        err.print(f"{len(mixed)} mixes at {G.resolution}x{G.resolution} from {loaded.ckpt} (kimg {loaded.kimg:.1f}).",
                  markup=False)
        results(record.outputs, summary if as_json else None)
