"""`sgan project` over many targets (docs/design.md §13): each target aligned, projected, written and
committed in turn, so an interrupted run keeps every finished target and the same command continues.

The folder holds per target NAME.png (the reconstruction), NAME-target.png (the aligned target) and
NAME-steps.mp4 or .gif (the search, beside the target; small images enlarged as grids are), and for all
finished targets latents.npz (w and noise maps, docs/design.md §11) and project.json (the settings, each
target's scores, the targets that could not be used). A target counts as finished once both of those name it; they are
rewritten, atomically, after every target. A run with other settings projects every target again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core import rundir, signals
from stylegan_cli.core.console import err, progress
from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.data.images import Rejected
from stylegan_cli.projection.projector import Projector
from stylegan_cli.projection.targets import Aligner, Target
from stylegan_cli.synthesis.animation import write_animation
from stylegan_cli.synthesis.images import enlarge, image_grid, save_png
from stylegan_cli.synthesis.latents import Latent, parse_latents, save_latents
from stylegan_cli.synthesis.render import synthesize, to_ws

FPS = 10


@dataclass
class Finished:
    summary: dict  # name, source, scores, timing and file names (in the folder), as project.json lists it
    latent: Latent  # its w and noise maps, as latents.npz holds them


def project_targets(projector: Projector, aligner: Aligner, targets: list[Target], folder: Path,
                    settings: dict) -> tuple[list[Finished], list[dict]]:
    """Projects every target not already finished with these `settings` into `folder`; returns the
    finished targets in target order and the ones that could not be used (source, reason, detail)."""
    done = _finished(folder, settings, targets, projector.G.z_dim)
    if done:
        err.print(f"Resuming: {len(done)} of {len(targets)} targets are projected already.")
    failed: list[dict] = []
    try:
        for target in targets:
            if target.name in done:
                continue
            try:
                image = aligner(target)
            except Rejected as r:
                err.print(f"{target.rel}: {r.detail}; not projected.", markup=False)
                failed.append({"source": target.rel, "reason": r.reason, "detail": r.detail})
                continue
            done[target.name] = _project_one(projector, target, image, folder)
            _commit(folder, settings, targets, done, failed)
    except signals.INTERRUPTS:
        err.print(f"Interrupted after {len(done)} of {len(targets)} targets; run the same command again to resume.")
        raise
    if not done:
        reasons = "; ".join(f"{f['source']}: {f['detail']}" for f in failed)
        raise SganError(f"No target could be projected ({reasons}).")
    _commit(folder, settings, targets, done, failed)
    return [done[t.name] for t in targets if t.name in done], failed


def _project_one(projector: Projector, target: Target, image: np.ndarray, folder: Path) -> Finished:
    G, steps = projector.G, projector.cfg.steps
    start = time.perf_counter()
    with progress(f"project {target.name}", steps) as bar:
        found = projector.project(image, on_step=bar.advance)
    seconds = time.perf_counter() - start
    latent = Latent(target.name, w=found.w.numpy(), noise=found.noise)
    # Rendered as every synthesis stage renders a latents file's row, so `sgan sample --seeds latents.npz:i`
    # gives this image byte for byte.
    result = synthesize(G, to_ws(G, [latent]), 1, own_noise=[latent.noise], description="render")[0]
    lpips, psnr = projector.score(result, image)
    lpips_start, psnr_start = projector.score(found.frames[0], image)
    frames = enlarge(np.stack([image_grid([image, f], cols=2, gap=0) for f in found.frames]), G.resolution)
    result_path, target_path = rundir.projection_images(folder, target.name)
    files = [save_png(result_path, result), save_png(target_path, image),
             write_animation(folder / f"{target.name}-steps", frames, FPS)]
    err.print(f"{target.rel}: LPIPS {lpips:.4f} (from {lpips_start:.4f}), PSNR {_db(psnr)} (from {_db(psnr_start)}) "
              f"after {steps} steps in {seconds:.1f} s ({steps / seconds:.3g} steps/s).", markup=False)
    summary = {"name": target.name, "source": target.rel, "lpips": lpips, "psnr": psnr, "lpips_start": lpips_start,
               "psnr_start": psnr_start, "steps": steps, "seconds": round(seconds, 3),
               "steps_per_s": float(f"{steps / seconds:.4g}"), "files": [f.name for f in files]}
    return Finished(summary, latent)


def _db(psnr: float | None) -> str:
    return "inf" if psnr is None else f"{psnr:.2f} dB"


def _commit(folder: Path, settings: dict, targets: list[Target], done: dict[str, Finished], failed: list[dict]):
    """latents.npz first, then project.json, which names the finished targets: a target is finished only
    once both hold it (the rows of latents.npz are project.json's targets, in order)."""
    finished = [done[t.name] for t in targets if t.name in done]
    ws = torch.from_numpy(np.stack([f.latent.w for f in finished]))
    save_latents(folder / rundir.PROJECT_LATENTS, [f.latent for f in finished], ws, names=True)
    rundir.write_json(folder / rundir.PROJECT_STATE,
                      {"settings": settings, "targets": [f.summary for f in finished], "failed": failed})


def _finished(folder: Path, settings: dict, targets: list[Target], z_dim: int) -> dict[str, Finished]:
    """The targets an earlier run with the same settings finished, whose files are all still there."""
    try:
        state = json.loads((folder / rundir.PROJECT_STATE).read_text())
        latents = parse_latents(str(folder / rundir.PROJECT_LATENTS), z_dim)
    except (OSError, ValueError, UsageError):
        return {}
    if not isinstance(state, dict) or state.get("settings") != settings or \
            len(state.get("targets", [])) != len(latents):
        return {}
    names = {t.name for t in targets}
    return {s["name"]: Finished(s, latent) for s, latent in zip(state["targets"], latents)
            if s["name"] in names and all((folder / f).is_file() for f in s["files"])}
