"""What every synthesis stage shares: the generator of a checkpoint, latents to styles, and
batched, deterministic image synthesis.

Stages read the moving-average generator (`G_ema`) of the run's newest checkpoint unless `--ckpt`
names another. Its w average is the one tracked in training, or the one `sgan truncate
--compute-avg` stored beside the checkpoint (`<ckpt>.w_avg.npy`). With noise mode `random`, the
noise of each image is drawn from its own seed, so results do not depend on `--batch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer

from stylegan_cli import checkpoint, rundir
from stylegan_cli.console import progress
from stylegan_cli.errors import SganError, UsageError
from stylegan_cli.latents import Latent
from stylegan_cli.networks import Generator, NoiseInjection


class NoiseMode(str, Enum):
    const = "const"
    random = "random"
    none = "none"


CkptOption = Annotated[Optional[Path], typer.Option("--ckpt", help="Checkpoint to read (default: the run's newest).",
                                                    show_default=False)]
BatchOption = Annotated[int, typer.Option("--batch", min=1, help="Images per forward pass.")]
NoiseOption = Annotated[NoiseMode, typer.Option("--noise-mode", help="Per-layer noise: fixed, drawn per image "
                                                                     "from its seed, or off.")]
TruncOption = Annotated[float, typer.Option("--trunc", help="Truncation psi: w' = w_avg + psi (w - w_avg); 1 is off.")]
CutoffOption = Annotated[Optional[int], typer.Option("--trunc-cutoff", min=1, show_default=False,
                                                     help="Truncate only the first N style inputs (default: all).")]


def w_avg_path(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.name + ".w_avg.npy")


@dataclass
class Loaded:
    G: Generator
    ckpt: Path
    kimg: float
    device: torch.device
    config: dict  # the training configuration (train.TrainConfig as a dict)
    resolution: int  # the resolution and fade-in training had reached
    alpha: float


def load_generator(run_dir: Path, ckpt: Path | None) -> Loaded:
    """The moving-average generator of `--ckpt` or the run's newest checkpoint, ready to run."""
    path = checkpoint.resolve(run_dir, ckpt)
    state = checkpoint.load(path)
    if not isinstance(state, dict) or state.get("format") != "sgan-checkpoint" or "G_ema" not in state:
        raise SganError(f"{path} is not an sgan training checkpoint.")
    cfg = state["config"]
    G = Generator(cfg["arch"], cfg["resolution"], fmap_base=cfg["fmap_base"], fmap_max=cfg["fmap_max"])
    try:
        G.load_state_dict(state["G_ema"])
    except RuntimeError as e:
        raise SganError(f"{path} does not match the network its configuration describes ({e}).") from None
    side = w_avg_path(path)
    if side.is_file():
        G.w_avg.copy_(torch.from_numpy(np.load(side, allow_pickle=False)))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Loaded(G=G.eval().requires_grad_(False).to(device), ckpt=path, kimg=state["nimg"] / 1000, device=device,
                  config=cfg, resolution=int(state.get("resolution", G.resolution)),
                  alpha=float(state.get("alpha", 1.0)))


def to_ws(G: Generator, latents: list[Latent]) -> torch.Tensor:
    """(N, num_ws, w_dim) styles on G's device: a latent's w as given, else its z through the mapping."""
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
            with torch.no_grad():
                z = torch.as_tensor(latent.z, dtype=torch.float32, device=device).unsqueeze(0)
                w = G.mapping(z)[0].unsqueeze(0).repeat(G.num_ws, 1)
        out.append(w)
    return torch.stack(out)


def truncate(G: Generator, ws: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    """The truncation trick (StyleGAN §2.1, App. B), with a cutoff checked against the generator."""
    if cutoff is not None and cutoff > G.num_ws:
        raise UsageError(f"--trunc-cutoff {cutoff} is beyond this generator's {G.num_ws} style inputs.")
    return ws if psi == 1 else G.truncate(ws, psi, cutoff)


def synthesize(G: Generator, ws: torch.Tensor, batch: int, noise_mode: str = "const",
               noise_seeds: list[int] | None = None, noise_layers: list[bool] | None = None,
               description: str = "synthesis") -> np.ndarray:
    """(N, num_ws, w_dim) styles to (N, R, R, 3) uint8 images, `batch` at a time.

    `noise_seeds` (one per image) seed its noise in `random` mode; `noise_layers` (one flag per
    noise input, coarse to fine) keeps noise only where True (StyleGAN Figure 5)."""
    n = ws.shape[0]
    seeds = noise_seeds if noise_seeds is not None else list(range(n))
    images = []
    with torch.no_grad(), progress(description, n) as bar:
        for start in range(0, n, batch):
            chunk = ws[start : start + batch]
            noise = None
            if noise_mode == "random" or noise_layers is not None:
                noise = _noise(G, seeds[start : start + batch], noise_mode, noise_layers)
            out = G.synthesis(chunk, noise_mode=noise_mode, noise=noise)
            images.append(to_uint8(out))
            bar.advance(len(chunk))
    return np.concatenate(images)


def _noise(G: Generator, seeds: list[int], mode: str, layers: list[bool] | None) -> list[torch.Tensor]:
    device = G.w_avg.device
    if mode == "random":
        per_image = [G.make_noise(1, generator=torch.Generator().manual_seed(s), device=device) for s in seeds]
        noise = [torch.cat(maps) for maps in zip(*per_image)]
    elif mode == "const":
        noise = [b.expand(len(seeds), -1, -1, -1) for b in const_noise(G)]
    else:
        noise = [torch.zeros(len(seeds), 1, r, r, device=device) for r in noise_resolutions(G)]
    if layers is not None:
        noise = [x if keep else torch.zeros_like(x) for x, keep in zip(noise, layers, strict=True)]
    return noise


def noise_resolutions(G: Generator) -> list[int]:
    """The resolution of each of G's noise inputs, coarse to fine."""
    return [maps.shape[-1] for maps in G.make_noise(1, device="cpu")]


def const_noise(G: Generator) -> list[torch.Tensor]:
    """G's fixed noise images, (1, 1, r, r) each, as `noise_mode='const'` uses them."""
    return [m.const for m in G.modules() if isinstance(m, NoiseInjection)]


def quantize(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] to uint8 on the same device, rounding as NVIDIA's scripts do."""
    return (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] to (N, H, W, 3) uint8 arrays, for PNG files."""
    return quantize(images).permute(0, 2, 3, 1).cpu().numpy()


def save_latents(path: Path, latents: list[Latent], ws: torch.Tensor) -> Path:
    """An .npz with w (N, num_ws, w_dim), z (N, z_dim) where every latent had one, and seeds where
    every latent had one: what `file.npz[:i]` and `-` read back."""
    arrays = {"w": ws.cpu().numpy().astype(np.float32)}
    if all(latent.z is not None for latent in latents):
        arrays["z"] = np.stack([latent.z for latent in latents]).astype(np.float64)
    if all(latent.seed is not None for latent in latents):
        arrays["seeds"] = np.array([latent.seed for latent in latents], np.int64)
    with rundir.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path
