"""`sgan bench generate`: generation speed, z to uint8 images on the device (docs/design.md §8)."""

from __future__ import annotations

import torch

from stylegan_cli.bench.timing import count_work, device_name, seconds_per_call, sig
from stylegan_cli.core.device import autocast, peak_memory_gib
from stylegan_cli.model.generator import Generator
from stylegan_cli.synthesis.images import quantize


def generate_figures(*, arch: str, g_arch: str, resolution: int, batch: int, precision: str, compiled: bool,
                     fmap_base: int, fmap_max: int, iters: int, warmup: int, device: torch.device) -> dict:
    """img/s, ms per batch, peak memory, GFLOP per image and achieved TFLOP/s of z -> mapping ->
    synthesis -> uint8 for a freshly initialised generator, under `precision` autocast."""
    G = Generator(arch, resolution, fmap_base=fmap_base, fmap_max=fmap_max, g_arch=g_arch).eval().requires_grad_(False)
    G.to(device)
    synthesis = torch.compile(G.synthesis) if compiled else G.synthesis

    def generate(synth=synthesis) -> torch.Tensor:
        with torch.no_grad(), autocast(device, precision):
            z = torch.randn(batch, G.z_dim, device=device)
            img = synth(G.mapping(z, broadcast=True), noise_mode="random")
            return quantize(img)

    seconds = seconds_per_call(generate, warmup, iters, device)
    flops = count_work(lambda: generate(G.synthesis)).flops
    return {
        "device": device_name(device),
        "arch": arch, "g_arch": g_arch, "fmap_base": fmap_base, "resolution": resolution, "batch": batch,
        "precision": precision,
        "compile": compiled, "img_per_s": sig(batch / seconds), "ms_per_batch": sig(seconds * 1000),
        "peak_memory_gib": sig(peak_memory_gib(device)), "gflop_per_image": sig(flops / batch / 1e9),
        "tflop_per_s": sig(flops / seconds / 1e12),
    }
