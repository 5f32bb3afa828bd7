"""`sgan interpolate`: a walk through latent space, as frames, an animated GIF and (with ffmpeg) an MP4.

Between consecutive keyframes the latents move linearly in W and spherically in Z, the two paths
along which StyleGAN §4.1 measures perceptual path length (lerp in W, slerp in Z).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer
from PIL import Image

from stylegan_cli import rundir
from stylegan_cli.cli import JsonOption, RunOption
from stylegan_cli.console import err, results
from stylegan_cli.errors import UsageError
from stylegan_cli.generate import (BatchOption, CkptOption, CutoffOption, NoiseMode, NoiseOption, TruncOption,
                                   load_generator, save_latents, synthesize, to_ws, truncate)
from stylegan_cli.grid import png_bytes
from stylegan_cli.latents import Latent, parse_latents, parse_seeds, z_from_seed
from stylegan_cli.mix import noise_seed

_FRAME = re.compile(r"frame(\d{5,})\.png$")


class Space(str, Enum):
    w = "w"
    z = "z"


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


def _frame_ws(G, keys: list[Latent], frames: list[tuple[int, int, float]],
              space: Space) -> tuple[torch.Tensor, list[Latent]]:
    """(frames, num_ws, w_dim) styles, and each frame as a Latent (with its z when in Z)."""
    if space is Space.w:
        key_ws = to_ws(G, keys)
        return (torch.stack([torch.lerp(key_ws[a], key_ws[b], t) for a, b, t in frames]),
                [Latent(f"frame{i:05d}") for i in range(len(frames))])
    missing = [k.label for k in keys if k.z is None]
    if missing:
        raise UsageError(f"--space z interpolates z, but {missing[0]} has only a w; use --space w.")
    latents = [Latent(f"frame{i:05d}", z=slerp(keys[a].z, keys[b].z, t)) for i, (a, b, t) in enumerate(frames)]
    return to_ws(G, latents), latents


def _gif(frames: np.ndarray, fps: int) -> bytes:
    """An endlessly repeating animated GIF; Pillow merges identical consecutive frames (timing kept)."""
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return buf.getvalue()


def _mp4(path: Path, frames: np.ndarray, fps: int, ffmpeg: str) -> bool:
    """Encodes the frames as H.264 MP4 with ffmpeg (bit-exact, single-threaded, so runs agree); False
    with a note on stderr if ffmpeg fails."""
    h, w = frames.shape[1:3]
    with rundir.atomic_path(path) as tmp:
        done = subprocess.run(
            [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
             "-framerate", str(fps), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-threads", "1",
             "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-fflags", "+bitexact", "-flags", "+bitexact",
             "-map_metadata", "-1", "-f", "mp4", str(tmp)],
            input=frames.tobytes(), capture_output=True)
        if done.returncode != 0:
            reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            err.print(f"note: no MP4: ffmpeg failed ({reason}).", markup=False)
            return False
    return True


def command(
    seeds: Annotated[Optional[str], typer.Option(
        "--seeds", show_default=False, help="Keyframe seeds, visited in order: 1,2,3 or 0-4.")] = None,
    latents: Annotated[Optional[str], typer.Option(
        "--latents", show_default=False,
        help="Keyframes from file.npz (every row, in order), file.npz:N, or - for an .npz on stdin; "
             "instead of --seeds.")] = None,
    space: Annotated[Space, typer.Option("--space", help="Interpolate w linearly (lerp), or z spherically "
                                                         "(slerp).")] = Space.w,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Frames per segment between two keyframes.")] = 60,
    loop: Annotated[bool, typer.Option("--loop", help="Return from the last keyframe to the first, so the "
                                                      "animation loops seamlessly.")] = False,
    fps: Annotated[int, typer.Option("--fps", min=1, max=50, help="Frames per second of the GIF and MP4 (GIF "
                                                                  "frame times are whole 1/100 s).")] = 30,
    trunc: TruncOption = 1.0,
    trunc_cutoff: CutoffOption = None,
    noise_mode: NoiseOption = NoiseMode.const,
    batch: BatchOption = 32,
    ckpt: CkptOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Interpolate through keyframe latents: lerp in W, slerp in Z (StyleGAN §4.1).

    Each segment has --steps frames; without --loop a last frame shows the last keyframe exactly \
(steps x (keyframes-1) + 1 frames), with --loop a segment returns to the first keyframe instead \
(steps x keyframes frames). Random noise is drawn once, from the first keyframe's seed, for every frame.

    Writes RUN/interpolate/frame00000.png, ..., interpolation.gif, interpolation.mp4 where ffmpeg is on \
PATH, and latents.npz (each frame's w before truncation, as sgan sample saves it, and in Z its z). Frames \
and an MP4 left by an earlier run that this one does not replace are removed.
    """
    run_dir = rundir.resolve_run(run)
    with rundir.stage(run_dir) as record:
        if (seeds is None) == (latents is None):
            raise UsageError("Give the keyframes with either --seeds or --latents.")
        loaded = load_generator(run_dir, ckpt)
        G = loaded.G
        keys = ([Latent(f"seed{s:04d}", z=z_from_seed(s, G.z_dim)) for s in parse_seeds(seeds)] if seeds is not None
                else parse_latents(latents, G.z_dim))
        if len(keys) < 2:
            raise UsageError(f"Interpolation needs at least two keyframes; got {len(keys)}.")
        frames = schedule(len(keys), steps, loop)
        ws, frame_latents = _frame_ws(G, keys, frames, space)
        images = synthesize(G, truncate(G, ws, trunc, trunc_cutoff), batch, noise_mode.value,
                            [noise_seed(keys[0])] * len(frames), description="interpolate")

        out = run_dir / "interpolate"
        paths = [rundir.write_bytes(out / f"frame{i:05d}.png", png_bytes(img)) for i, img in enumerate(images)]
        for stale in out.glob("frame*.png"):
            m = _FRAME.fullmatch(stale.name)
            if m and int(m.group(1)) >= len(images):
                stale.unlink()
        gif = rundir.write_bytes(out / "interpolation.gif", _gif(images, fps))
        ffmpeg = shutil.which("ffmpeg")
        mp4 = out / "interpolation.mp4"
        if ffmpeg is None:
            err.print("note: no MP4: ffmpeg is not on PATH (the GIF and frames are written).", markup=False)
        written_mp4 = ffmpeg is not None and _mp4(mp4, images, fps, ffmpeg)
        if not written_mp4:
            mp4.unlink(missing_ok=True)
        npz = save_latents(out / "latents.npz", frame_latents, ws)
        record.outputs += [*map(str, paths), str(gif), *([str(mp4)] if written_mp4 else []), str(npz)]
        summary = {
            "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg, "keyframes": [k.label for k in keys],
            "space": space.value, "steps": steps, "loop": loop, "fps": fps, "trunc": trunc,
            "trunc_cutoff": trunc_cutoff, "noise_mode": noise_mode.value, "frames": [str(p) for p in paths],
            "gif": str(gif), "mp4": str(mp4) if written_mp4 else None, "latents": str(npz),
        }
        err.print(f"{len(images)} frames at {G.resolution}x{G.resolution} from {loaded.ckpt} (kimg {loaded.kimg:.1f}).",
                  markup=False)
        results(record.outputs, summary if as_json else None)
