"""The truncation trick in W (StyleGAN §2.1, App. B, Figure 8; docs/design.md §6).

w' = w_avg + psi (w - w_avg), on the first `cutoff` style inputs only when a cutoff is given. w_avg,
the centre of mass of W, is tracked during training; `store_w_avg` re-estimates it as the mean of
w = f(z) over many z (drawn from a fixed seed, so the estimate is reproducible) and stores it beside
the checkpoint (`<ckpt>.w_avg.npy`, docs/design.md §11), where `load_generator` finds it for every
later stage. `sweep` draws the paper's Figure 8: a row per seed, a column per psi.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core import rundir
from stylegan_cli.core.console import err
from stylegan_cli.model.generator import Generator
from stylegan_cli.synthesis.generator import estimate_w_avg, w_avg_path
from stylegan_cli.synthesis.images import save_png, scaled_grid
from stylegan_cli.synthesis.latents import save_latents, seed_latent
from stylegan_cli.synthesis.render import synthesize, to_ws

AVG_SAMPLES = 100_000


def truncate(G: Generator, ws: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    """(N, num_ws, w_dim) styles truncated towards G's w_avg (StyleGAN §2.1, App. B); psi 1 changes
    nothing. `cutoff`, when given, is at most G.num_ws: the command layer checks it."""
    return ws if psi == 1 else G.truncate(ws, psi, cutoff)


def store_w_avg(G: Generator, ckpt: Path, samples: int) -> Path:
    """Estimates w_avg, writes it atomically as `<ckpt>.w_avg.npy` (float32, w_dim) and makes G use it."""
    w_avg = estimate_w_avg(G, samples)
    err.print(f"w_avg from {samples} samples: moved {torch.dist(w_avg, G.w_avg).item():.4g} from the previous "
              f"average (|w_avg| {w_avg.norm().item():.4g}).")
    buf = io.BytesIO()
    np.save(buf, w_avg.cpu().numpy().astype(np.float32))
    path = rundir.write_bytes(w_avg_path(ckpt), buf.getvalue())
    G.w_avg.copy_(w_avg)
    return path


def cell_name(seed: int, psi: float) -> str:
    """seed0001-psi0.70.png: psi with at least two decimals, more where needed to be exact."""
    return f"seed{seed:04d}-psi{np.format_float_positional(psi, min_digits=2)}.png"


def sweep(G: Generator, seeds: list[int], psis: list[float], cutoff: int | None, noise_mode: str, batch: int,
          out: Path, outputs: list[str], grid_scale: int | None = None) -> dict:
    """Renders the seeds x psis grid of StyleGAN Figure 8, row-major; a row's cells share the noise of
    its seed. Writes grid.png (enlarged by `images.enlarge`; `grid_scale` is --grid-scale), every cell as
    `cell_name`, and latents.npz (each seed's z and untruncated w) into `out`, appending each path to
    `outputs` as it is written; returns the JSON summary."""
    latents = [seed_latent(s, G.z_dim) for s in seeds]
    ws = to_ws(G, latents)
    cells = torch.stack([truncate(G, ws, p, cutoff) for p in psis], dim=1).flatten(0, 1)
    images = synthesize(G, cells, batch, noise_mode, noise_seeds=[s for s in seeds for _ in psis],
                        description="truncate")
    grid = save_png(out / "grid.png", scaled_grid(list(images), cols=len(psis), scale=grid_scale))
    outputs.append(str(grid))
    files = []
    for i, image in enumerate(images):
        seed, p = seeds[i // len(psis)], psis[i % len(psis)]
        path = save_png(out / cell_name(seed, p), image)
        outputs.append(str(path))
        files.append({"seed": seed, "psi": p, "path": str(path)})
    npz = save_latents(out / "latents.npz", latents, ws)
    outputs.append(str(npz))
    return {"grid": str(grid), "rows": seeds, "columns": psis, "trunc_cutoff": cutoff, "cells": files,
            "latents": str(npz)}
