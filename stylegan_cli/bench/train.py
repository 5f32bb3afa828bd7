"""`sgan bench train`: steady-state speed of the trainer's own iteration (docs/design.md §8).

One iteration is a D step and a G step with R1 and path length at their schedule, so it is timed
over whole periods of the lazy regularisers; FLOPs, operators and host synchronisations are counted on
the same work run eagerly (bench/timing.py `count_work`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from stylegan_cli.bench.timing import count_work, device_name, profile_table, seconds_per_call, sig
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err
from stylegan_cli.core.device import peak_memory_gib
from stylegan_cli.training.config import TrainConfig
from stylegan_cli.training.distributed import Dist
from stylegan_cli.training.trainer import Trainer


def train_figures(cfg: TrainConfig, device: torch.device, iters: int, warmup: int, profile: Path | None = None) -> dict:
    """s/kimg, img/s, peak memory, achieved TFLOP/s, and operators and host synchronisations per iteration of
    `cfg` (resolved, with a fixed resolution and batch) on synthetic reals: `warmup` untimed iterations, then at
    least `iters` timed ones; with `profile`, torch.profiler's table of one more iteration written there. With
    augmentation, the same iteration is also timed without it, and `augment_share` is the share of the step that
    augmenting (its draws, its forward and backward passes) takes."""
    resolution, batch = cfg.resolution, cfg.batch
    # The trainer needs only the dataset's size here: the loader is measured by `bench data`.
    trainer = Trainer(cfg, Path("."), range(batch), Dist(device=device))
    period = max(cfg.r1_every, cfg.pl_every if cfg.pl_weight > 0 else 1)
    iters = -(-iters // period) * period
    reals = torch.randint(0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8, device=device)
    step = lambda: trainer.iteration(reals, None, resolution, 1.0)  # noqa: E731
    err.print(f"{cfg.arch} ({cfg.g_arch} G, {cfg.d_arch} D) {resolution}x{resolution}, batch {batch}, "
              f"{cfg.precision}{', compiled' if cfg.compile else ''} on {device}: {warmup} warm-up + {iters} timed "
              f"iterations")
    seconds = seconds_per_call(step, warmup, iters, device)
    compiled = trainer.synthesis, trainer.D_plain
    trainer.synthesis, trainer.D_plain = trainer.G.synthesis, trainer.D  # work is counted eagerly
    nets = trainer.G, trainer.D, trainer.G_ema
    on_device = [reals, *(t for net in nets for t in (*net.parameters(), *net.buffers()))]
    work = count_work(lambda: [step() for _ in range(period)], on_device)
    trainer.synthesis, trainer.D_plain = compiled
    if profile is not None:
        rundir.write_text(profile, profile_table(step, device))
    share = {}
    if cfg.aug != "none":
        err.print("... and the same without augmentation")
        plain = Trainer(replace(cfg, aug="none"), Path("."), range(batch), Dist(device=device))
        without = seconds_per_call(lambda: plain.iteration(reals, None, resolution, 1.0), warmup, iters, device)
        share = {"augment_share": sig(1 - without / seconds), "s_per_kimg_without_augment": sig(without / batch * 1000)}
    return {
        "device": device_name(device),
        "arch": cfg.arch, "g_arch": cfg.g_arch, "d_arch": cfg.d_arch, "fmap_base": cfg.fmap_base,
        "resolution": resolution, "batch": batch, "precision": cfg.precision,
        "compile": cfg.compile, "r1_every": cfg.r1_every, "pl_every": cfg.pl_every if cfg.pl_weight > 0 else None,
        "iterations": iters, "s_per_kimg": sig(seconds / batch * 1000), "img_per_s": sig(batch / seconds),
        "peak_memory_gib": sig(peak_memory_gib(device)), "gflop_per_iteration": sig(work.flops / period / 1e9),
        "tflop_per_s": sig(work.flops / period / seconds / 1e12), "ops_per_iteration": sig(work.ops / period),
        "syncs_per_iteration": sig(work.syncs / period),
        "aug": cfg.aug, **({"augpipe": cfg.augpipe} if cfg.aug != "none" else {}), **share,
    }
