"""Walks through latent space (StyleGAN §4.1): the frame schedule, lerp in W and slerp in Z, and the
frames as PNGs, an animated GIF and (with ffmpeg) an MP4 (`synthesis/animation.py`).

Between consecutive keyframes the latents move linearly in W and spherically in Z, the two paths
along which StyleGAN §4.1 measures perceptual path length.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core import rundir
from stylegan_cli.core.console import err
from stylegan_cli.model.generator import Generator
from stylegan_cli.synthesis.animation import gif_bytes, write_mp4
from stylegan_cli.synthesis.images import enlarge, save_png
from stylegan_cli.synthesis.latents import Latent, z_from_seed
from stylegan_cli.synthesis.render import to_ws

_FRAME = re.compile(r"frame(\d{5,})\.png$")


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t=0) to b (t=1) along the great circle between them
    (Shoemake 1985): sin((1-t)θ)/sin θ a + sin(tθ)/sin θ b, θ the angle between a and b. The norm
    stays constant when |a| = |b|; nearly parallel vectors fall back to lerp."""
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(theta) < 1e-6:
        return (1 - t) * a + t * b
    ca, cb = np.sin((1 - t) * theta) / np.sin(theta), np.sin(t * theta) / np.sin(theta)  # exactly 1, 0 at t=0
    return ca * a + cb * b


def schedule(keyframes: int, steps: int, loop: bool) -> list[tuple[int, int, float]]:
    """(from, to, t) for every frame: `steps` frames per segment through the keyframes in order, then
    the last keyframe itself; with `loop`, a last segment back to the first keyframe instead."""
    ends = list(range(1, keyframes)) + ([0] if loop else [])
    frames = [(end - 1 if end else keyframes - 1, end, i / steps) for end in ends for i in range(steps)]
    return frames if loop else frames + [(keyframes - 1, keyframes - 1, 0.0)]


def seed_keyframes(seeds: list[int], z_dim: int) -> list[Latent]:
    """Keyframes for seeds: each seed's z, labelled seedSSSS. Unlike `latents.seed_latent` they do not
    carry the seed itself, so in noise mode `random` the frames' noise comes from seed 0 (the fallback
    of `render.noise_seed`), not from the first keyframe's seed."""
    return [Latent(f"seed{s:04d}", z=z_from_seed(s, z_dim)) for s in seeds]


def frame_ws(G: Generator, keys: list[Latent], frames: list[tuple[int, int, float]],
             space: str) -> tuple[torch.Tensor, list[Latent]]:
    """(frames, num_ws, w_dim) styles, and each frame as a Latent (with its z when in Z): lerp between the
    keys' styles in W (`space` 'w'), slerp between their z in Z ('z', which needs a z for every key)."""
    if space == "w":
        key_ws = to_ws(G, keys)
        return (torch.stack([torch.lerp(key_ws[a], key_ws[b], t) for a, b, t in frames]),
                [Latent(f"frame{i:05d}") for i in range(len(frames))])
    latents = [Latent(f"frame{i:05d}", z=slerp(keys[a].z, keys[b].z, t)) for i, (a, b, t) in enumerate(frames)]
    return to_ws(G, latents), latents


def save_animation(out: Path, images: np.ndarray, fps: int,
                   grid_scale: int | None = None) -> tuple[list[Path], Path, Path | None]:
    """Writes frameNNNNN.png per image (removing frames an earlier, longer run left), interpolation.gif,
    and interpolation.mp4 where ffmpeg is on PATH (removing an earlier one where it is not written);
    the GIF, the preview people look at, is enlarged by `images.enlarge` (`grid_scale`: --grid-scale) while
    the frames and the MP4 keep the network's resolution; returns (the frames' paths, the GIF's, the MP4's or None)."""
    paths = [save_png(out / f"frame{i:05d}.png", img) for i, img in enumerate(images)]
    for stale in out.glob("frame*.png"):
        m = _FRAME.fullmatch(stale.name)
        if m and int(m.group(1)) >= len(images):
            stale.unlink()
    gif = rundir.write_bytes(out / "interpolation.gif", gif_bytes(enlarge(images, images.shape[1], grid_scale), fps))
    ffmpeg = shutil.which("ffmpeg")
    mp4 = out / "interpolation.mp4"
    if ffmpeg is None:
        err.print("note: no MP4: ffmpeg is not on PATH (the GIF and frames are written).", markup=False)
    written_mp4 = ffmpeg is not None and write_mp4(mp4, images, fps, ffmpeg)
    if not written_mp4:
        mp4.unlink(missing_ok=True)
    return paths, gif, mp4 if written_mp4 else None
