"""`sgan mix`: style mixing across scales (StyleGAN §3.1, Figure 3), mixed and drawn by
`synthesis/mixing.py`.

`--coarse`, `--middle` and `--fine` name the latents whose styles drive those groups of layers;
`--styles` replaces the groups by explicit layer indices. A group that lists several latents is an
axis of the grid: the coarser gives the rows, the finer the columns.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from stylegan_cli.cli.options import (
    BatchOption,
    CkptOption,
    ClassOption,
    CutoffOption,
    GridScaleOption,
    JsonOption,
    NoiseMode,
    NoiseOption,
    OutOption,
    RunOption,
    TruncOption,
    check_cutoff,
    out_dir,
)
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.synthesis import mixing
from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.latents import parse_latents, parse_seeds


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


def mix(
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
    label: ClassOption = None,
    out: OutOption = None,
    grid_scale: GridScaleOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Style mixing (StyleGAN §3.1, Fig. 3): each group's layers take their styles from that group's latents.

    A group not named takes its styles from the next coarser named group (--coarse A --fine B: middle \
from A); groups coarser than the coarsest named one take theirs from it (--middle A --fine B: coarse \
from A). Name at least two groups; at most two may list several latents. The coarser listing group \
gives the grid's rows, the finer its columns: --coarse 1,2,3 --fine 4,5,6,7 draws 3x4 mixes with the \
unmixed sources along the top (columns) and down the left edge (rows).

    Writes into RUN/mix/ (or --out) grid.png; each mix as SOURCES.png, SOURCES naming the latent of every named \
group, coarse to fine, joined by '-' (seed0001-seed0004.png); and latents.npz: w (one row per \
mix, row-major over the grid, before truncation, as sgan sample saves them) and names. Random \
noise is drawn from the seed whose latent supplies an image's first style layer; a latent that carries its \
own noise maps (from sgan project) gives them to its image and to the mixes whose first style layer it supplies.
    """
    texts = dict(zip(mixing.GROUPS, (coarse, middle, fine)))
    named = [g for g in mixing.GROUPS if texts[g] is not None]
    run_dir = rundir.resolve_run(run)
    folder = out_dir(run_dir, out, "mix")
    with rundir.stage(run_dir, writes=folder) as record:
        if len(named) < 2:
            raise UsageError("Name at least two of --coarse, --middle and --fine to mix their styles.")
        if styles is not None and len(named) != 2:
            raise UsageError(f"--styles mixes exactly two groups' latents, but {len(named)} groups are named.")
        if sum(texts[g] == "-" for g in named) > 1:
            raise UsageError("Only one group can read its latents from stdin ('-').")
        loaded = load_generator(run_dir, ckpt, label)
        G = loaded.G
        layers = parse_layers(styles, G.num_ws) if styles is not None else None
        latents = {g: parse_latents(texts[g], G.z_dim) for g in named}
        if sum(len(latents[g]) > 1 for g in named) > 2:
            raise UsageError("At most two of --coarse, --middle and --fine may list more than one latent "
                             "(they are the grid's rows and columns).")
        sources = mixing.layer_sources(G.style_layer_resolutions(), named, layers)
        for g in named:
            if g not in sources:
                err.print(f"note: this generator has no {g} style layers, so --{g} supplies no styles.",
                          markup=False)

        grid = mixing.plan_grid(G, latents, sources)
        check_cutoff(G, trunc_cutoff)
        mixed, figure = mixing.render_grid(G, grid, trunc, trunc_cutoff, noise_mode.value, batch,
                                           grid_scale)
        paths, grid_path, npz = mixing.save_grid(folder, grid, mixed, figure)
        record.outputs += [*dict.fromkeys(map(str, paths)), str(grid_path), str(npz)]
        summary = {
            "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg, "grid": str(grid_path), "latents": str(npz),
            "rows": {"group": grid.row_group, "latents": [x.label for x in grid.rows]},
            "columns": {"group": grid.col_group, "latents": [x.label for x in grid.cols]},
            "layer_sources": sources, "trunc": trunc, "trunc_cutoff": trunc_cutoff, "noise_mode": noise_mode.value,
            "images": [str(p) for p in paths],
        }
        err.print(f"{len(mixed)} mixes at {G.resolution}x{G.resolution} from {loaded.ckpt} (kimg {loaded.kimg:.1f}).",
                  markup=False)
        results(record.outputs, summary if as_json else None)
