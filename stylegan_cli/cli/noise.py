"""`sgan noise`: stochastic variation from the per-layer noise inputs (StyleGAN §3.2, Figures 4, 5),
rendered by `synthesis/noise.py`.

One image per seed (its w, untruncated as in the paper) is rendered `--n` times with random noise;
each figure is a row: the first `--show` renderings, then the per-pixel standard deviation across all n.

Without `--layers` (Figure 4), noise enters every layer: seedSSSS-variation.png and
seedSSSS-std.png. With `--layers` (Figure 5), noise enters only some layers, each panel written as
seedSSSS-layers-<which>.png and seedSSSS-layers-<which>-std.png; coarse is the noise inputs below
`--fine-from` (64: the paper's 4x4-32x32), fine those at 64x64 and up. Several `--layers` (repeated,
or a comma list) also make seedSSSS-layers.png, one row per panel in the order given:
`--layers all,none,fine,coarse` is the paper's Figure 5 (a)-(d). Files go to RUN/noise/ (or --out), with
latents.npz holding each seed's z and w.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from stylegan_cli.cli.options import (
    BatchOption,
    CkptOption,
    ClassOption,
    GridScaleOption,
    JsonOption,
    OutOption,
    RunOption,
    out_dir,
)
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.latents import parse_seeds, save_latents, seed_latent
from stylegan_cli.synthesis.noise import Layers, layer_mask, variation_panels
from stylegan_cli.synthesis.render import to_ws


def noise(
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
    label: ClassOption = None,
    out: OutOption = None,
    grid_scale: GridScaleOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stochastic variation (StyleGAN Figures 4, 5): one image under many noise realisations and
    its per-pixel std (x4, 0-255 units); --layers puts noise in some layers only.

    Writes into RUN/noise/ (or --out) seedSSSS-variation.png and -std.png, or with --layers
    seedSSSS-layers-<which>.png and -std.png per panel, plus seedSSSS-layers.png for several."""
    seeds = parse_seeds(seed)
    panels = _parse_layers(layers)
    run_dir = rundir.resolve_run(run)
    folder = out_dir(run_dir, out, "noise")
    loaded = load_generator(run_dir, ckpt, label)
    G = loaded.G
    if G.arch == "pggan":
        raise UsageError(f"{loaded.ckpt} is a Progressive GAN generator, which has no noise inputs to vary.")
    masks = {p: layer_mask(G, p, fine_from) for p in panels or [Layers.all]}
    for p, mask in masks.items():
        if p in (Layers.coarse, Layers.fine) and not any(mask):
            err.print(f"Note: with --fine-from {fine_from}, this {G.resolution}x{G.resolution} generator has no "
                      f"{p.value} noise inputs, so '{p.value}' adds no noise.")
    with rundir.stage(run_dir, writes=folder) as record:
        latents = [seed_latent(s, G.z_dim) for s in seeds]
        ws = to_ws(G, latents)
        panel_summaries = []
        for s, w in zip(seeds, ws):
            panel_summaries += variation_panels(G, s, w, masks, panels is not None, n, show, batch, folder,
                                                record.outputs, grid_scale)
        npz = save_latents(folder / "latents.npz", latents, ws)
        record.outputs.append(str(npz))
        summary = {"outputs": record.outputs, "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg, "n": n,
                   "fine_from": fine_from, "figures": panel_summaries, "latents": str(npz)}
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

