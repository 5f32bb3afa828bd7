"""Animations of generator output: an endlessly repeating GIF, and an H.264 MP4 where ffmpeg is on PATH
(`sgan interpolate`'s walks, `sgan project`'s optimisation)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from stylegan_cli.core import rundir
from stylegan_cli.core.console import err


def gif_bytes(frames: np.ndarray, fps: int) -> bytes:
    """An endlessly repeating animated GIF; Pillow merges identical consecutive frames (timing kept)."""
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return buf.getvalue()


def write_mp4(path: Path, frames: np.ndarray, fps: int, ffmpeg: str) -> bool:
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


def write_animation(stem: Path, frames: np.ndarray, fps: int, gif_height: int = 512) -> Path:
    """STEM.mp4 where ffmpeg is on PATH and encodes it, else STEM.gif with the frames shrunk by a whole
    factor to at most `gif_height` pixels high (a GIF holds every frame uncompressed across time);
    returns the path written."""
    ffmpeg = shutil.which("ffmpeg")
    mp4 = stem.with_name(stem.name + ".mp4")
    if ffmpeg is not None and write_mp4(mp4, frames, fps, ffmpeg):
        return mp4
    factor = -(-frames.shape[1] // gif_height)
    if factor > 1:
        frames = np.stack([np.asarray(Image.fromarray(f).reduce(factor)) for f in frames])
    return rundir.write_bytes(stem.with_name(stem.name + ".gif"), gif_bytes(frames, fps))
