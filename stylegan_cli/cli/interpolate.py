"""`sgan interpolate`: a walk through latent space, as frames, an animated GIF and (with ffmpeg) an MP4:
lerp in W, slerp in Z (StyleGAN §4.1), computed and written by `synthesis/interpolation.py`.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from stylegan_cli.cli.options import (
    BatchOption,
    CkptOption,
    ClassOption,
    CutoffOption,
    GridScaleOption,
    JsonOption,
    NoiseMode,
    NoiseOption,
    OutOption,
    RunOption,
    TruncOption,
    check_cutoff,
    out_dir,
)
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.synthesis import interpolation
from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.latents import parse_latents, parse_seeds, save_latents
from stylegan_cli.synthesis.render import noise_seed, synthesize
from stylegan_cli.synthesis.truncation import truncate


class Space(str, Enum):
    w = "w"
    z = "z"


def interpolate(
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
    label: ClassOption = None,
    out: OutOption = None,
    grid_scale: GridScaleOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Interpolate through keyframe latents: lerp in W, slerp in Z (StyleGAN §4.1).

    Each segment has --steps frames; without --loop a last frame shows the last keyframe exactly \
(steps x (keyframes-1) + 1 frames), with --loop a segment returns to the first keyframe instead \
(steps x keyframes frames). Random noise is drawn once, from the first keyframe's seed, for every frame.

    Writes into RUN/interpolate/ (or --out) frame00000.png, ..., interpolation.gif, interpolation.mp4 where \
ffmpeg is on PATH, and latents.npz (each frame's w before truncation, as sgan sample saves it, and in Z its z). Frames \
and an MP4 left by an earlier run that this one does not replace are removed.
    """
    run_dir = rundir.resolve_run(run)
    folder = out_dir(run_dir, out, "interpolate")
    with rundir.stage(run_dir, writes=folder) as record:
        if (seeds is None) == (latents is None):
            raise UsageError("Give the keyframes with either --seeds or --latents.")
        loaded = load_generator(run_dir, ckpt, label)
        G = loaded.G
        keys = (interpolation.seed_keyframes(parse_seeds(seeds), G.z_dim) if seeds is not None
                else parse_latents(latents, G.z_dim))
        if len(keys) < 2:
            raise UsageError(f"Interpolation needs at least two keyframes; got {len(keys)}.")
        frames = interpolation.schedule(len(keys), steps, loop)
        w_only = [k.label for k in keys if k.z is None] if space is Space.z else []
        if w_only:
            raise UsageError(f"--space z interpolates z, but {w_only[0]} has only a w; use --space w.")
        ws, frame_latents = interpolation.frame_ws(G, keys, frames, space.value)
        check_cutoff(G, trunc_cutoff)
        images = synthesize(G, truncate(G, ws, trunc, trunc_cutoff), batch, noise_mode.value,
                            [noise_seed(keys[0])] * len(frames), description="interpolate")

        paths, gif, mp4 = interpolation.save_animation(folder, images, fps, grid_scale)
        npz = save_latents(folder / "latents.npz", frame_latents, ws)
        record.outputs += [*map(str, paths), str(gif), *([str(mp4)] if mp4 is not None else []), str(npz)]
        summary = {
            "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg, "keyframes": [k.label for k in keys],
            "space": space.value, "steps": steps, "loop": loop, "fps": fps, "trunc": trunc,
            "trunc_cutoff": trunc_cutoff, "noise_mode": noise_mode.value, "frames": [str(p) for p in paths],
            "gif": str(gif), "mp4": str(mp4) if mp4 is not None else None, "latents": str(npz),
        }
        err.print(f"{len(images)} frames at {G.resolution}x{G.resolution} from {loaded.ckpt} (kimg {loaded.kimg:.1f}).",
                  markup=False)
        results(record.outputs, summary if as_json else None)
