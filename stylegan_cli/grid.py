"""Image grids and PNG files: how every stage shows its results as pictures."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from stylegan_cli import rundir


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


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def save_png(path: Path, img: np.ndarray) -> Path:
    """Writes an (H, W, 3) uint8 image as PNG, atomically."""
    return rundir.write_bytes(path, png_bytes(img))
