"""`sgan bench project`: the projector's steps per second (StyleGAN2 §5; docs/design.md §8, §13).

A freshly initialised generator projects one of its own images; the steps after a warm-up are timed
between device synchronisations, snapshots for the animation included, as `sgan project` runs them.
W's statistics, computed once per run of `sgan project`, are left out.
"""

from __future__ import annotations

import time

import torch

from stylegan_cli.bench.timing import device_name, sig, synchronize
from stylegan_cli.core.device import peak_memory_gib
from stylegan_cli.metrics.lpips import load_lpips
from stylegan_cli.model.generator import Generator
from stylegan_cli.projection.projector import ProjectConfig, Projector
from stylegan_cli.synthesis.images import to_uint8


def project_figures(*, arch: str, g_arch: str, resolution: int, fmap_base: int, fmap_max: int, space: str,
                    steps: int, warmup: int, device: torch.device) -> dict:
    """steps/s, seconds per 1000-step target and peak memory of projecting into a fresh generator."""
    G = Generator(arch, resolution, fmap_base=fmap_base, fmap_max=fmap_max, g_arch=g_arch)
    G = G.eval().requires_grad_(False).to(device)
    with torch.no_grad():
        target = to_uint8(G(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device),
                            noise_mode="const"))[0]
    projector = Projector(G, load_lpips(device=device), ProjectConfig(steps=warmup + steps, space=space), seed=0)
    assert warmup >= 1 and steps >= 1, (warmup, steps)
    marks: list[float] = []  # the time at the end of every step, taken after a synchronisation where it counts

    def on_step() -> None:
        if len(marks) in (warmup - 1, warmup + steps - 1):  # the end of the warm-up, the end of the timed steps
            synchronize(device)
            if device.type == "cuda" and len(marks) == warmup - 1:
                torch.cuda.reset_peak_memory_stats(device)
        marks.append(time.perf_counter())

    projector.project(target, on_step=on_step)
    seconds = (marks[-1] - marks[warmup - 1]) / steps
    return {
        "device": device_name(device), "arch": arch, "g_arch": g_arch, "fmap_base": fmap_base,
        "resolution": resolution, "space": space, "steps": steps, "steps_per_s": sig(1 / seconds),
        "s_per_1000_steps": sig(seconds * 1000), "peak_memory_gib": sig(peak_memory_gib(device)),
    }
