"""Finding photos in a folder and decoding each one to an RGB array, rejecting the unusable ones."""

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stylegan_cli.core.errors import UsageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 16384 * 16384  # default limit on width*height, checked before decoding

REJECT_REASONS = ("unreadable", "not an image", "truncated", "too large", "no face", "face too small", "no label")

# 16-bit grayscale modes; "I" (32-bit signed) is read as 16-bit too, which is what it holds in photos.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class Rejected(Exception):
    """An input that cannot be used. `reason` is one of the REJECT_REASONS; `detail` a short human sentence."""

    def __init__(self, reason: str, detail: str):
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        # Both go to Exception.__init__ so that the exception pickles across worker processes.
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def list_images(src: Path) -> list[Path]:
    """Every image file under src, recursively, sorted by its posix path relative to src.

    Symlinked directories are followed, each real directory at most once, so link loops end.
    Hidden files and directories (name starting with '.') are skipped, and so are pipes and
    devices (opening one could block); a dangling symlink is listed, so that prep reports it.
    """
    src = Path(src)
    if not src.exists():
        raise UsageError(f"{src} does not exist.")
    if not src.is_dir():
        raise UsageError(f"{src} is not a directory.")
    found = []
    walked = set()  # (device, inode) of every directory already walked
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        stat = os.stat(dirpath)
        if (stat.st_dev, stat.st_ino) in walked:
            dirnames.clear()
            continue
        walked.add((stat.st_dev, stat.st_ino))
        # Walking subdirectories in name order makes it the same on every machine which of two
        # links to one directory gets listed.
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in filenames:
            path = Path(dirpath, name)
            if not name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and _listable(path):
                found.append(path)
    return sorted(found, key=lambda path: path.relative_to(src).as_posix())


def _listable(path: Path) -> bool:
    """A regular file, or a symlink to nothing (which then counts as unreadable)."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def load_rgb(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode one photo to an (H, W, 3) uint8 RGB array, C-contiguous, turned upright by its EXIF orientation.

    Raises Rejected ("unreadable", "not an image", "truncated" or "too large") for a file that cannot be used.
    `max_pixels` is checked against the header before decoding.
    """
    with _pillow_pixel_limit():
        try:
            image = Image.open(path)
        except Exception as error:
            raise _rejection(error, path, identified=False) from error
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise Rejected("too large", f"{width}x{height} pixels is over the {max_pixels}-pixel limit")
            try:
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
            except Exception as error:
                raise _rejection(error, path, identified=True) from error
            return _to_rgb(image)


@contextmanager
def _pillow_pixel_limit():
    """Pillow's own decompression-bomb check switched off: the check on the header above makes
    the same test against `max_pixels`, so that `--max-pixels` alone decides what is too large."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _rejection(error: Exception, path: Path, identified: bool) -> Rejected:
    """The Rejected for an exception Pillow raised opening (identified=False) or decoding a file."""
    if isinstance(error, OSError) and error.errno is not None:  # from the OS: permission, a directory, I/O
        return Rejected("unreadable", f"cannot read the file ({error.strerror})")
    if isinstance(error, UnidentifiedImageError):
        empty = os.path.getsize(path) == 0
        return Rejected("not an image", "the file is empty" if empty else "not an image format Pillow can read")
    # Pillow raises a plain OSError when the data runs out, at open ("Truncated File Read") or decode.
    if identified or isinstance(error, OSError):
        return Rejected("truncated", f"the image data is cut short or corrupt ({error})")
    return Rejected("not an image", f"the file is corrupt ({type(error).__name__}: {error})")


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode to RGB; 16-bit is scaled to 8-bit, transparency is composited over white."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        return _gray_to_rgb((values * 255 + 32767) // 65535)  # 0..65535 to 0..255, rounded
    if image.mode == "F":
        return _gray_to_rgb(np.rint(np.clip(np.asarray(image), 0, 255)))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.array(image.convert("RGB"))


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """An (H, W) array of values in 0..255 as an (H, W, 3) uint8 array."""
    return np.repeat(gray.astype(np.uint8)[:, :, np.newaxis], 3, axis=2)


def center_square(rgb: np.ndarray, resolution: int) -> np.ndarray:
    """Centre crop to a square, then a Lanczos resize to the output size."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(rgb[top : top + side, left : left + side])
    if side != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(img)
