"""Tests for stylegan_cli.data.images: listing photos and decoding them, including the broken ones."""

import os
import pickle
import signal
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from stylegan_cli.core.errors import UsageError
from stylegan_cli.data.images import MAX_PIXELS, REJECT_REASONS, Rejected, list_images, load_rgb

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def noise(height=64, width=48):
    """A random RGB image, which compresses badly, so half the file is half the data."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def quadrants(size=32):
    """A (2*size, 3*size) image: red, green, blue / yellow, black, white blocks."""
    rows = [[RED, GREEN, BLUE], [YELLOW, (0, 0, 0), (255, 255, 255)]]
    pixels = np.array(rows, dtype=np.uint8)
    return Image.fromarray(pixels.repeat(size, axis=0).repeat(size, axis=1))


def png_header_only(width, height):
    """A PNG with a valid IHDR claiming width x height and no pixel data at all."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def reject_reason(path, **kwargs):
    with pytest.raises(Rejected) as caught:
        load_rgb(path, **kwargs)
    return caught.value.reason


# --- Rejected -----------------------------------------------------------------------------------


def test_rejected_pickles_for_worker_processes():
    error = pickle.loads(pickle.dumps(Rejected("truncated", "cut short")))
    assert (error.reason, error.detail, str(error)) == ("truncated", "cut short", "truncated: cut short")


def test_rejected_refuses_unknown_reason():
    with pytest.raises(ValueError):
        Rejected("blurry", "too soft")
    assert {"no face", "face too small"} <= set(REJECT_REASONS)


# --- broken files -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("TIFF", ".tif")])
def test_file_cut_in_half_is_truncated(tmp_path, fmt, suffix):
    whole = tmp_path / f"whole{suffix}"
    noise().save(whole, fmt)
    half = tmp_path / f"half{suffix}"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert load_rgb(whole).shape == (64, 48, 3)
    assert reject_reason(half) == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_text_file_named_jpg_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 10)
    assert reject_reason(path) == "not an image"


def test_zero_byte_file_is_not_an_image(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(Rejected) as caught:
        load_rgb(path)
    assert caught.value.reason == "not an image"
    assert "empty" in caught.value.detail


def test_directory_named_like_an_image_is_unreadable(tmp_path):
    path = tmp_path / "x.jpg"
    path.mkdir()
    assert reject_reason(path) == "unreadable"


def test_file_without_read_permission_is_unreadable(tmp_path):
    path = tmp_path / "locked.png"
    noise().save(path)
    path.chmod(0)
    try:
        with open(path, "rb"):
            pytest.skip("running as root: mode 000 does not stop reading (the directory case covers this)")
    except PermissionError:
        pass
    try:
        assert reject_reason(path) == "unreadable"
    finally:
        path.chmod(0o644)


def test_over_max_pixels_is_too_large(tmp_path):
    path = tmp_path / "small.png"
    noise(height=20, width=30).save(path)
    with pytest.raises(Rejected) as caught:
        load_rgb(path, max_pixels=599)
    assert caught.value.reason == "too large"
    assert caught.value.detail == "30x20 pixels is over the 599-pixel limit"
    assert load_rgb(path, max_pixels=600).shape == (20, 30, 3)


def test_size_is_checked_before_decoding(tmp_path, monkeypatch):
    # The file has no pixel data, so only a check on the header's size can call it too large.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(Rejected) as caught:
        load_rgb(path)
    assert caught.value.reason == "too large"
    assert caught.value.detail == f"100000x100000 pixels is over the {MAX_PIXELS}-pixel limit"


def test_decompression_bomb_error_is_too_large(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    assert reject_reason(path) == "too large"


def test_max_pixels_alone_decides_what_is_too_large_and_warning_filters_stay(tmp_path):
    # Over Pillow's own bomb limit but under max_pixels: not refused as too large (the header-only
    # file then fails as truncated); under Pillow's limit but over max_pixels: too large.
    side = int(Image.MAX_IMAGE_PIXELS**0.5) + 10
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(side, side))
    filters_before, limit_before = list(warnings.filters), Image.MAX_IMAGE_PIXELS
    assert reject_reason(path) == "truncated"
    with pytest.raises(Rejected) as caught:
        load_rgb(path, max_pixels=side * side - 1)
    assert caught.value.reason == "too large"
    assert warnings.filters == filters_before
    assert Image.MAX_IMAGE_PIXELS == limit_before


# --- colour modes -------------------------------------------------------------------------------


def saved(tmp_path, image, name, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def one_row(mode, values):
    image = Image.new(mode, (len(values), 1))
    for x, value in enumerate(values):
        image.putpixel((x, 0), value)
    return image


def gray_row(dtype, values):
    return Image.fromarray(np.array([values], dtype=dtype))


def load_row(path, mode):
    """Load a file made in `mode`, check Pillow reopens it in that mode, and return its one row."""
    with Image.open(path) as reopened:
        assert reopened.mode == mode
    pixels = load_rgb(path)
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.flags.c_contiguous
    return [tuple(int(v) for v in pixel) for pixel in pixels[0]]


def test_mode_l(tmp_path):
    path = saved(tmp_path, one_row("L", [0, 7, 255]), "l.png")
    assert load_row(path, "L") == [(0, 0, 0), (7, 7, 7), (255, 255, 255)]


def test_mode_1(tmp_path):
    path = saved(tmp_path, one_row("1", [0, 1]), "bilevel.png")
    assert load_row(path, "1") == [(0, 0, 0), (255, 255, 255)]


def test_mode_la_composited_over_white(tmp_path):
    path = saved(tmp_path, one_row("LA", [(100, 0), (100, 255), (100, 128)]), "la.png")
    # Half-covered: (100 * 128 + 255 * 127) / 255 = 177.2
    assert load_row(path, "LA") == [(255, 255, 255), (100, 100, 100), (177, 177, 177)]


def test_mode_rgba_composited_over_white(tmp_path):
    path = saved(tmp_path, one_row("RGBA", [(10, 20, 30, 0), (10, 20, 30, 255)]), "rgba.png")
    assert load_row(path, "RGBA") == [(255, 255, 255), (10, 20, 30)]


def test_mode_p_without_transparency(tmp_path):
    image = one_row("P", [0, 1])
    image.putpalette([200, 10, 20, 5, 6, 7])
    assert load_row(saved(tmp_path, image, "p.png"), "P") == [(200, 10, 20), (5, 6, 7)]


def test_mode_p_with_transparent_index(tmp_path):
    image = one_row("P", [0, 1])
    image.putpalette([200, 10, 20, 5, 6, 7])
    path = saved(tmp_path, image, "p.png", transparency=0)
    assert load_row(path, "P") == [(255, 255, 255), (5, 6, 7)]


def test_mode_cmyk_tiff(tmp_path):
    path = saved(tmp_path, one_row("CMYK", [(0, 0, 0, 255), (0, 0, 0, 0), (255, 0, 0, 0)]), "cmyk.tif")
    assert load_row(path, "CMYK") == [(0, 0, 0), (255, 255, 255), (0, 255, 255)]


def test_mode_cmyk_jpeg_black_is_near_black(tmp_path):
    path = saved(tmp_path, Image.new("CMYK", (16, 16), (0, 0, 0, 255)), "cmyk.jpg")
    with Image.open(path) as reopened:
        assert reopened.mode == "CMYK"
    assert load_rgb(path).max() <= 3


def test_mode_ycbcr(tmp_path):
    # Y=128 with neutral chroma is mid grey; Cr=255 pushes red up and green down.
    path = saved(tmp_path, one_row("YCbCr", [(128, 128, 128), (128, 128, 255)]), "ycbcr.tif")
    grey, reddish = load_row(path, "YCbCr")
    assert grey == (128, 128, 128)
    assert reddish[0] == 255 and reddish[1] < 128


SIXTEEN_BIT = [0, 65535, 32896, 257, 385, 386]  # 385/257 = 1.498 rounds to 1; 386/257 = 1.502 to 2
EIGHT_BIT = [0, 255, 128, 1, 1, 2]


@pytest.mark.parametrize(
    "dtype, name, mode",
    [(np.uint16, "g16.png", "I;16"), (np.uint16, "g16.tif", "I;16"), (">u2", "g16b.tif", "I;16B")],
)
def test_mode_16_bit_scaled_with_rounding(tmp_path, dtype, name, mode):
    path = saved(tmp_path, gray_row(dtype, SIXTEEN_BIT), name)
    assert load_row(path, mode) == [(v, v, v) for v in EIGHT_BIT]


def test_mode_i_scaled_as_16_bit(tmp_path):
    path = saved(tmp_path, gray_row(np.int32, SIXTEEN_BIT + [70000, -5]), "i.tif")
    assert load_row(path, "I") == [(v, v, v) for v in EIGHT_BIT + [255, 0]]


def test_mode_f_clipped(tmp_path):
    path = saved(tmp_path, gray_row(np.float32, [-3.0, 12.6, 254.4, 300.0]), "f.tif")
    assert load_row(path, "F") == [(0, 0, 0), (13, 13, 13), (254, 254, 254), (255, 255, 255)]


# --- formats and orientation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs",
    [("a.webp", {"lossless": True}), ("a.bmp", {}), ("a.tif", {}), ("a.tiff", {}), ("a.PNG", {})],
)
def test_lossless_round_trip(tmp_path, name, kwargs):
    image = noise()
    path = saved(tmp_path, image, name, **kwargs)
    np.testing.assert_array_equal(load_rgb(path), np.asarray(image))


@pytest.mark.parametrize(
    "orientation, turns, top_left",
    [(6, -1, YELLOW), (8, 1, BLUE), (3, 2, (255, 255, 255))],  # turns: counter-clockwise quarter turns
)
def test_exif_orientation_applied(tmp_path, orientation, turns, top_left):
    image = quadrants()
    plain = saved(tmp_path, image, "plain.jpg", quality=95)
    exif = image.getexif()
    exif[0x0112] = orientation
    turned = saved(tmp_path, image, "turned.jpg", quality=95, exif=exif)

    upright = load_rgb(turned)
    assert upright.flags.c_contiguous
    # The JPEG data is the same in both files, so the pixels must match exactly once turned.
    np.testing.assert_array_equal(upright, np.rot90(load_rgb(plain), turns))
    assert np.abs(upright[8, 8].astype(int) - top_left).max() <= 8


# --- list_images --------------------------------------------------------------------------------


def touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def relative(src, paths):
    return [path.relative_to(src).as_posix() for path in paths]


def test_list_images_recursive_sorted_and_filtered(tmp_path):
    touch(
        tmp_path,
        "b.png", "a.JPG", "c.Jpeg", "d.webp", "e.bmp", "f.TIF", "g.tiff",
        "sub/z.jpg", "sub/deeper/y.png", "a/b.jpg",
        "notes.txt", "face.tem", "jpg", "archive.jpg.zip",
        ".hidden.jpg", ".cache/inside.jpg", "sub/.git/x.png",
    )  # fmt: skip
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")  # listed, to be reported unreadable
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block forever
    assert relative(tmp_path, list_images(tmp_path)) == [
        "a.JPG", "a/b.jpg", "b.png", "c.Jpeg", "d.webp", "dangling.jpg", "e.bmp", "f.TIF", "g.tiff",
        "sub/deeper/y.png", "sub/z.jpg",
    ]  # fmt: skip
    assert all(path.is_relative_to(tmp_path) for path in list_images(tmp_path))


def test_list_images_follows_symlinked_directories(tmp_path):
    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    touch(src, "a.jpg")
    touch(elsewhere, "b.jpg")
    (src / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert relative(src, list_images(src)) == ["a.jpg", "linked/b.jpg"]


def test_list_images_symlink_loop_ends(tmp_path):
    touch(tmp_path, "a.jpg", "sub/b.jpg")
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "self").symlink_to(".", target_is_directory=True)

    def hung(signum, frame):
        raise TimeoutError("list_images went round the symlink loop")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        found = list_images(tmp_path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert relative(tmp_path, found) == ["a.jpg", "sub/b.jpg"]


def test_list_images_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        list_images(tmp_path / "missing")
    touch(tmp_path, "file.jpg")
    with pytest.raises(UsageError, match="not a directory"):
        list_images(tmp_path / "file.jpg")


def test_list_images_empty_folder(tmp_path):
    assert list_images(tmp_path) == []
