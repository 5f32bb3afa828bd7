"""`sgan truncate`: the truncation trick in W (StyleGAN §2.1, App. B, Figure 8).

`--seeds S --psi P` draws the sweep: a row per seed, a column per psi, each cell
w' = w_avg + psi (w - w_avg) (on the first `--trunc-cutoff` style inputs only, when given).
Files in RUN/truncate/: grid.png, every cell as seedSSSS-psiP.png (P printed with at least two
decimals and as many as it takes to be exact: seed0001-psi0.70.png, seed0001-psi-0.50.png), and
latents.npz holding each seed's z and untruncated w.

`--compute-avg` re-estimates the centre of mass of W as the mean of w = f(z) over `--samples` z
(drawn from a fixed seed, so the estimate is reproducible) and stores it beside the checkpoint
(`<ckpt>.w_avg.npy`), where every later stage finds it instead of the average tracked in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer

from stylegan_cli import generate, rundir
from stylegan_cli.cli import JsonOption, RunOption
from stylegan_cli.console import err, progress, results
from stylegan_cli.errors import UsageError
from stylegan_cli.generate import BatchOption, CkptOption, CutoffOption, NoiseMode, NoiseOption
from stylegan_cli.grid import image_grid, save_png
from stylegan_cli.latents import parse_floats, parse_seeds, seed_latent
from stylegan_cli.networks import Generator

FIGURE8_PSI = "1,0.7,0.5,0,-0.5,-1"
AVG_SAMPLES = 100_000
AVG_SEED = 0
AVG_BATCH = 4096  # z per mapping pass: the mapping network is cheap, so larger than --batch


def command(
    seeds: Annotated[Optional[str], typer.Option("--seeds", show_default=False,
                                                 help="Seeds, one grid row each: 1-6, 1,5,9 or 0-3,10.")] = None,
    psi: Annotated[str, typer.Option("--psi", help="Truncation psi values, one grid column each; the "
                                                   "default is the paper's Figure 8.")] = FIGURE8_PSI,
    trunc_cutoff: CutoffOption = None,
    compute_avg: Annotated[bool, typer.Option("--compute-avg", help="Re-estimate the centre of mass of W and "
                                              "store it beside the checkpoint for every later stage.")] = False,
    samples: Annotated[Optional[int], typer.Option("--samples", min=1, show_default=False,
                                                   help=f"Latents to average with --compute-avg "
                                                        f"(default {AVG_SAMPLES}).")] = None,
    noise_mode: NoiseOption = NoiseMode.const,
    batch: BatchOption = 32,
    ckpt: CkptOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Truncation sweep (StyleGAN Figure 8): a row per seed, a column per psi; or --compute-avg.

    Cells are written as seedSSSS-psiP.png (seed0001-psi0.70.png, seed0001-psi-0.50.png) next to
    grid.png and latents.npz in RUN/truncate/."""
    if seeds is None and not compute_avg:
        raise UsageError("Give --seeds (and --psi) to draw a truncation sweep, --compute-avg to re-estimate "
                         "the average w, or both.")
    if samples is not None and not compute_avg:
        raise UsageError("--samples only applies with --compute-avg.")
    seed_list = parse_seeds(seeds) if seeds is not None else []
    psis = [p + 0.0 for p in parse_floats(psi, "--psi")]  # + 0.0 turns -0.0 into 0.0 for file names
    run_dir = rundir.resolve_run(run)
    loaded = generate.load_generator(run_dir, ckpt)
    G = loaded.G
    if trunc_cutoff is not None and trunc_cutoff > G.num_ws:
        raise UsageError(f"--trunc-cutoff {trunc_cutoff} is beyond this generator's {G.num_ws} style inputs.")
    with rundir.stage(run_dir) as record:
        summary: dict = {"outputs": record.outputs, "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg}
        if compute_avg:
            path = store_w_avg(G, loaded.ckpt, samples or AVG_SAMPLES)
            record.outputs.append(str(path))
            summary["w_avg"] = str(path)
        if seed_list:
            summary.update(_sweep(G, seed_list, psis, trunc_cutoff, noise_mode.value, batch,
                                  run_dir / "truncate", record.outputs))
            err.print(f"{len(seed_list)} seeds x {len(psis)} psi at {G.resolution}x{G.resolution} from "
                      f"{loaded.ckpt} (kimg {loaded.kimg:.1f}).")
        results(record.outputs, summary if as_json else None)


def estimate_w_avg(G: Generator, samples: int) -> torch.Tensor:
    """The mean of w = f(z) over `samples` z ~ N(0, I) drawn from seed AVG_SEED (StyleGAN App. B's
    centre of mass of W), accumulated in float64."""
    device = G.w_avg.device
    generator = torch.Generator().manual_seed(AVG_SEED)
    total = torch.zeros(G.w_dim, dtype=torch.float64, device=device)
    with torch.no_grad(), progress("w_avg", samples) as bar:
        for start in range(0, samples, AVG_BATCH):
            n = min(AVG_BATCH, samples - start)
            z = torch.randn(n, G.z_dim, generator=generator).to(device)
            total += G.mapping(z).double().sum(dim=0)
            bar.advance(n)
    return (total / samples).float()


def store_w_avg(G: Generator, ckpt: Path, samples: int) -> Path:
    """Estimates w_avg, writes it atomically as `<ckpt>.w_avg.npy` and makes G use it."""
    w_avg = estimate_w_avg(G, samples)
    err.print(f"w_avg from {samples} samples: moved {torch.dist(w_avg, G.w_avg).item():.4g} from the previous "
              f"average (|w_avg| {w_avg.norm().item():.4g}).")
    path = generate.w_avg_path(ckpt)
    with rundir.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, w_avg.cpu().numpy().astype(np.float32))
    G.w_avg.copy_(w_avg)
    return path


def cell_name(seed: int, psi: float) -> str:
    """seed0001-psi0.70.png: psi with at least two decimals, more where needed to be exact."""
    return f"seed{seed:04d}-psi{np.format_float_positional(psi, min_digits=2)}.png"


def _sweep(G: Generator, seeds: list[int], psis: list[float], cutoff: int | None, noise_mode: str, batch: int,
           out: Path, outputs: list[str]) -> dict:
    """Renders the seeds x psis grid, row-major; a row's cells share the noise of its seed."""
    latents = [seed_latent(s, G.z_dim) for s in seeds]
    ws = generate.to_ws(G, latents)
    cells = torch.stack([generate.truncate(G, ws, p, cutoff) for p in psis], dim=1).flatten(0, 1)
    images = generate.synthesize(G, cells, batch, noise_mode, noise_seeds=[s for s in seeds for _ in psis],
                                 description="truncate")
    grid = save_png(out / "grid.png", image_grid(list(images), cols=len(psis)))
    outputs.append(str(grid))
    files = []
    for i, image in enumerate(images):
        seed, p = seeds[i // len(psis)], psis[i % len(psis)]
        path = save_png(out / cell_name(seed, p), image)
        outputs.append(str(path))
        files.append({"seed": seed, "psi": p, "path": str(path)})
    npz = generate.save_latents(out / "latents.npz", latents, ws)
    outputs.append(str(npz))
    return {"grid": str(grid), "rows": seeds, "columns": psis, "trunc_cutoff": cutoff, "cells": files,
            "latents": str(npz)}
