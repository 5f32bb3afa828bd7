"""Latents to styles to images: batched, deterministic synthesis shared by every synthesis stage.

A latent's z goes through the mapping network to the same w for every style input, unless the
latent carries its w (StyleGAN §2). With noise mode `random`, the noise of each image is drawn
from its own seed (StyleGAN §3.2), so results do not depend on `--batch`; an image whose latent carries
its own noise maps (a projection's) is rendered with them whatever the mode.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from stylegan_cli.core.console import progress
from stylegan_cli.core.device import autocast
from stylegan_cli.core.errors import UsageError
from stylegan_cli.model.generator import Generator
from stylegan_cli.model.synthesis_layers import NoiseInjection
from stylegan_cli.synthesis.images import to_uint8
from stylegan_cli.synthesis.latents import Latent


def to_ws(G: Generator, latents: list[Latent]) -> torch.Tensor:
    """(N, num_ws, w_dim) styles on G's device: a latent's w as given, else its z through the mapping; for a
    class-conditional G, with the class G is bound to (--class), else the latent's own, which the latent then
    records."""
    device = G.w_avg.device
    out = []
    for latent in latents:
        if latent.w is not None:
            w = torch.as_tensor(latent.w, dtype=torch.float32, device=device)
            if w.ndim == 1:
                w = w.unsqueeze(0).repeat(G.num_ws, 1)
            if w.shape != (G.num_ws, G.w_dim):
                raise UsageError(f"{latent.label}: w has shape {tuple(w.shape)}; this generator takes "
                                 f"({G.num_ws}, {G.w_dim}) or ({G.w_dim},).")
        else:
            if latent.z.shape != (G.z_dim,):
                raise UsageError(f"{latent.label}: z has {latent.z.size} values; this generator takes {G.z_dim}.")
            latent.cls = _label(G, latent)
            with torch.no_grad():
                z = torch.as_tensor(latent.z, dtype=torch.float32, device=device).unsqueeze(0)
                c = None if latent.cls is None else F.one_hot(torch.tensor([latent.cls]), G.c_dim).float().to(device)
                w = G.mapping(z, c, broadcast=True)[0]
        if latent.noise is not None:
            shapes, wanted = [m.shape for m in latent.noise], [(r, r) for r in noise_resolutions(G)]
            if shapes != wanted:
                raise UsageError(f"{latent.label}: its noise maps are {_sizes(shapes)}; this generator's noise inputs "
                                 f"are {_sizes(wanted)}.")
        out.append(w)
    return torch.stack(out)


def _label(G: Generator, latent: Latent) -> int | None:
    """The class a latent's z is mapped with: --class, else the latent's own; None for an unconditional G."""
    if not G.c_dim:
        if latent.cls is not None:
            raise UsageError(f"{latent.label} carries class {latent.cls}, and this network is unconditional.")
        return None
    label = G.bound_class if G.bound_class is not None else latent.cls
    if label is None:
        raise UsageError(f"This network is class-conditional ({G.c_dim} classes): pick one with --class K (a number "
                         f"or a class name).")
    if not 0 <= label < G.c_dim:
        raise UsageError(f"{latent.label} carries class {label}; this network has classes 0 to {G.c_dim - 1}.")
    return label


def _sizes(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes) or "none"


def noise_seed(latent: Latent, fallback: int = 0) -> int:
    """The seed that random noise for a latent's image is drawn from: the latent's own seed, so that a
    seed gets the same noise in every stage; `fallback` for a latent without one."""
    return latent.seed if latent.seed is not None else fallback


def synthesize(G: Generator, ws: torch.Tensor, batch: int, noise_mode: str = "const",
               noise_seeds: list[int] | None = None, noise_layers: list[bool] | None = None,
               own_noise: list[list[np.ndarray] | None] | None = None, description: str = "synthesis") -> np.ndarray:
    """(N, num_ws, w_dim) styles to (N, R, R, 3) uint8 images: `render_batches`, joined."""
    return np.concatenate(list(render_batches(G, ws, batch, noise_mode, noise_seeds, noise_layers, own_noise,
                                              description=description)))


def render_batches(G: Generator, ws: torch.Tensor, batch: int, noise_mode: str = "const",
                   noise_seeds: list[int] | None = None, noise_layers: list[bool] | None = None,
                   own_noise: list[list[np.ndarray] | None] | None = None, precision: str = "fp32",
                   description: str = "synthesis") -> Iterator[np.ndarray]:
    """(N, num_ws, w_dim) styles to (n, R, R, 3) uint8 images, `batch` at a time, each batch as it is done, so
    a stage can write one while the next renders.

    `noise_seeds` (one per image) seed its noise in `random` mode; `own_noise` (one per image: its
    noise maps, as `Latent.noise`, or None) replaces the mode's noise for an image that has them;
    `noise_layers` (one flag per noise input, coarse to fine) keeps noise only where True (StyleGAN Figure 5);
    the synthesis network runs under `precision` autocast (core/device.py)."""
    n = ws.shape[0]
    seeds = noise_seeds if noise_seeds is not None else list(range(n))
    own = own_noise if own_noise is not None else [None] * n
    with progress(description, n) as bar:
        for start in range(0, n, batch):
            chunk, chunk_own = ws[start : start + batch], own[start : start + batch]
            with torch.no_grad(), autocast(G.w_avg.device, precision):
                noise = None
                if noise_mode == "random" or noise_layers is not None or any(m is not None for m in chunk_own):
                    noise = _noise(G, seeds[start : start + batch], noise_mode, noise_layers, chunk_own)
                images = to_uint8(G.synthesis(chunk, noise_mode=noise_mode, noise=noise))
            bar.advance(len(chunk))
            yield images


def _noise(G: Generator, seeds: list[int], mode: str, layers: list[bool] | None,
           own: list[list[np.ndarray] | None]) -> list[torch.Tensor]:
    device = G.w_avg.device
    if mode == "random":
        per_image = [G.make_noise(1, generator=torch.Generator().manual_seed(s), device=device) for s in seeds]
        noise = [torch.cat(maps) for maps in zip(*per_image)]
    elif mode == "const":
        noise = [b.expand(len(seeds), -1, -1, -1) for b in const_noise(G)]
    else:
        noise = [torch.zeros(len(seeds), 1, r, r, device=device) for r in noise_resolutions(G)]
    if any(m is not None for m in own):
        noise = [torch.stack([x[i] if maps is None else torch.from_numpy(maps[k]).to(device)[None]
                              for i, maps in enumerate(own)]) for k, x in enumerate(noise)]
    if layers is not None:
        noise = [x if keep else torch.zeros_like(x) for x, keep in zip(noise, layers, strict=True)]
    return noise


def noise_resolutions(G: Generator) -> list[int]:
    """The resolution of each of G's noise inputs, coarse to fine."""
    return [maps.shape[-1] for maps in G.make_noise(1, device="cpu")]


def const_noise(G: Generator) -> list[torch.Tensor]:
    """G's fixed noise images, (1, 1, r, r) each, as `noise_mode='const'` uses them."""
    return [m.const for m in G.modules() if isinstance(m, NoiseInjection)]
