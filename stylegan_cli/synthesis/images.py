"""Generator output as pictures: the one conversion to 8 bits (docs/design.md §11), image grids and
PNG files. Every PNG the project writes and every uint8 image a metric reads goes through here."""

from __future__ import annotations

import io
import math
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylegan_cli.core import rundir


def quantize(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] to uint8 on the same device: x * 127.5 + 128, clipped to [0, 255] and
    truncated towards zero, as NVIDIA's scripts do it (docs/design.md §11)."""
    return (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (real ones, for D or a classifier) to floats in [-1, 1]: the inverse mapping, x / 127.5 - 1."""
    return images.float() / 127.5 - 1


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] to (N, H, W, 3) uint8 arrays, for PNG files."""
    return quantize(images).permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: list[np.ndarray], cols: int | None = None, gap: int = 2) -> np.ndarray:
    """Tiles equally sized (H, W, 3) uint8 images row by row, `cols` wide, on a white background."""
    assert images, "no images to tile"
    h, w, c = images[0].shape
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    grid = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, c), 255, np.uint8)
    for i, img in enumerate(images):
        assert img.shape == (h, w, c), (img.shape, (h, w, c))
        r, col = divmod(i, cols)
        grid[r * (h + gap) : r * (h + gap) + h, col * (w + gap) : col * (w + gap) + w] = img
    return grid


# Grids of cells smaller than GRID_CELL_LIMIT px are enlarged to at least GRID_MIN_WIDTH px wide.
GRID_CELL_LIMIT = 128
GRID_MIN_WIDTH = 512


def grid_scale(cell: int, width: int, scale: int | None = None) -> int:
    """The integer factor a grid `width` px wide of `cell` px images is enlarged by: `scale` when given
    (--grid-scale), else the least that makes it GRID_MIN_WIDTH px wide when its cells are smaller than
    GRID_CELL_LIMIT px, else 1."""
    if scale is not None:
        return scale
    return max(1, math.ceil(GRID_MIN_WIDTH / width)) if cell < GRID_CELL_LIMIT else 1


def enlarge(grid: np.ndarray, cell: int, scale: int | None = None) -> np.ndarray:
    """The one place a picture meant for people (a grid, an animation's frames: (..., H, W, 3)) is enlarged:
    each pixel repeated `grid_scale(cell, W, scale)` times each way (nearest neighbour), so that grids of
    small images are big enough to look at; `cell` is the size of the images it shows."""
    factor = grid_scale(cell, grid.shape[-2], scale)
    return grid if factor == 1 else grid.repeat(factor, axis=-3).repeat(factor, axis=-2)


def scaled_grid(images: list[np.ndarray], cols: int | None = None, scale: int | None = None) -> np.ndarray:
    """`image_grid` of the images, enlarged by `enlarge` for their size."""
    return enlarge(image_grid(images, cols=cols), max(images[0].shape[:2]), scale)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def save_png(path: Path, img: np.ndarray) -> Path:
    """Writes an (H, W, 3) uint8 image as PNG, atomically."""
    return rundir.write_bytes(path, png_bytes(img))


class PngWriter:
    """Writes PNGs on `workers` threads (default: one per core) while the caller renders the next images, so
    the generator does not wait on encoding or the disk: Pillow's zlib encoding releases the GIL. At most
    `2 * workers` images wait at a time, which bounds the memory they hold. A failed write is raised by a
    later `write` or by leaving the block, which first lets every started write finish (each is atomic); a
    block left by an exception (a stop signal) reports that exception, not the writes'."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or len(os.sched_getaffinity(0))
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="png")
        self.pending: deque[Future] = deque()

    def write(self, path: Path, img: np.ndarray) -> Path:
        self.pending.append(self.pool.submit(save_png, path, img))
        while len(self.pending) > 2 * self.workers:
            self.pending.popleft().result()
        return path

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        try:
            while self.pending:
                write = self.pending.popleft()
                if exc_type is None:
                    write.result()
                else:
                    wait([write])
        finally:
            self.pool.shutdown(wait=True)
