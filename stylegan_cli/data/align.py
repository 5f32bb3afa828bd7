"""FFHQ face alignment (StyleGAN Appendix A; NVlabs ffhq-dataset `recreate_aligned_images`).

`face_quad` turns 68 landmarks into the oriented crop square; `align_exact` reproduces FFHQ's
reference pipeline operation by operation (PIL and SciPy, a 4096x4096 bilinear quad transform, a
Lanczos resize), so that its output matches FFHQ's published `pixel_md5`; `align_fast` computes
the same image with OpenCV in one anti-aliased warp and is the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from stylegan_cli.data.images import Rejected

TRANSFORM_SIZE = 4096  # FFHQ's intermediate resolution for the quad transform


@dataclass(frozen=True)
class FaceQuad:
    """The oriented crop square in source pixels: corners c-x-y, c-x+y, c+x+y, c+x-y."""

    quad: np.ndarray  # (4, 2) float64
    qsize: float  # side length in source pixels


def face_quad(landmarks: np.ndarray, rotate: bool = True) -> FaceQuad:
    """The crop square FFHQ derives from dlib-convention landmarks (docs/design.md §5).

    With `rotate=False` the square stays axis-aligned, as FFHQ-U's `--no-rotation` does.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    assert lm.shape == (68, 2), lm.shape
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    if rotate:
        x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
        x /= np.hypot(*x)
    else:
        x = np.array([1.0, 0.0])
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return FaceQuad(quad=quad, qsize=float(np.hypot(*x) * 2))


def _shrink_factor(qsize: float, output_size: int) -> int:
    """FFHQ shrinks the photo by an integer factor when the face is over 4x the output size."""
    return int(np.floor(qsize / output_size * 0.5))


class FaceOutsideImage(ValueError):
    """The crop square (plus its border) does not overlap the photo at all."""


def _crop_box(quad: np.ndarray, border: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The quad's bounding box grown by `border`, clipped to the image."""
    box = (
        max(int(np.floor(quad[:, 0].min())) - border, 0),
        max(int(np.floor(quad[:, 1].min())) - border, 0),
        min(int(np.ceil(quad[:, 0].max())) + border, width),
        min(int(np.ceil(quad[:, 1].max())) + border, height),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        raise FaceOutsideImage("the face's crop square lies outside the photo")
    return box


def _pad_amounts(quad: np.ndarray, border: int, width: int, height: int) -> tuple[int, int, int, int]:
    """How far (left, top, right, bottom) the quad plus border reaches outside the image."""
    return (
        max(-int(np.floor(quad[:, 0].min())) + border, 0),
        max(-int(np.floor(quad[:, 1].min())) + border, 0),
        max(int(np.ceil(quad[:, 0].max())) - width + border, 0),
        max(int(np.ceil(quad[:, 1].max())) - height + border, 0),
    )


def _pad_mask(h: int, w: int, pad: np.ndarray) -> np.ndarray:
    """FFHQ's (h, w, 1) weight that rises from 0 inside the photo to 1 at the padded edges."""
    y, x, _ = np.ogrid[:h, :w, :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(
            1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
            1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]),
        )


def _padding(quad: np.ndarray, qsize: float, border: int, width: int, height: int) -> np.ndarray | None:
    """The reflect padding FFHQ adds when the crop leaves the photo by more than border-4 pixels."""
    pad = _pad_amounts(quad, border, width, height)
    if max(pad) <= border - 4:
        return None
    return np.maximum(pad, int(np.rint(qsize * 0.3)))


def align_exact(rgb: np.ndarray, face: FaceQuad, output_size: int) -> np.ndarray:
    """FFHQ's reference alignment, operation for operation (PIL, SciPy): slow, bit-exact."""
    import scipy.ndimage

    img = Image.fromarray(rgb)
    quad, qsize = face.quad.copy(), face.qsize

    shrink = _shrink_factor(qsize, output_size)
    if shrink > 1:
        rsize = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink

    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = _crop_box(quad, border, *img.size)
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    pad = _padding(quad, qsize, border, *img.size)
    if pad is not None:
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        mask = _pad_mask(arr.shape[0], arr.shape[1], pad)
        blur = qsize * 0.02
        arr += (scipy.ndimage.gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad += pad[:2]

    img = img.transform(
        (TRANSFORM_SIZE, TRANSFORM_SIZE), Image.Transform.QUAD, (quad + 0.5).flatten(), Image.Resampling.BILINEAR
    )
    if output_size < TRANSFORM_SIZE:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def _blend_padding_fast(img: np.ndarray, pad: np.ndarray, qsize: float) -> np.ndarray:
    """FFHQ's padding (reflect, blur, fade to the median colour) with OpenCV.

    The blur (sigma qsize*0.02, tens of pixels) runs on a copy reduced by up to 4x and is
    scaled back up, and the median colour comes from every 4th pixel: both are invisible after
    such a blur and are what makes the fast path fast on faces at the photo's edge.
    """
    padded = cv2.copyMakeBorder(img, int(pad[1]), int(pad[3]), int(pad[0]), int(pad[2]), cv2.BORDER_REFLECT_101)
    arr = padded.astype(np.float32)
    h, w = arr.shape[:2]
    sigma = qsize * 0.02
    reduce = int(np.clip(sigma // 4, 1, 4))
    if reduce > 1:
        small = cv2.resize(arr, (w // reduce, h // reduce), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / reduce, borderType=cv2.BORDER_REFLECT)
        blurred = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        blurred = cv2.GaussianBlur(arr, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    mask = _pad_mask(h, w, pad)
    arr += (blurred - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    median = np.median(arr[::4, ::4].reshape(-1, 3), axis=0)
    arr += (median - arr) * np.clip(mask, 0.0, 1.0)
    return np.uint8(np.clip(np.rint(arr), 0, 255))


def align_fast(rgb: np.ndarray, face: FaceQuad, output_size: int) -> np.ndarray:
    """FFHQ's alignment with OpenCV: same shrink, crop and padding, then one affine warp.

    FFHQ samples the quad bilinearly at 4096x4096 and resizes with Lanczos; here the quad is
    sampled bilinearly at k times the output size (k = 2..4, enough to cover the source's
    resolution) and box-filtered down by k: above 40 dB PSNR of the reference from 128x128 up
    (about 49 dB at 1024), less at the smallest sizes, where the last filter's shape shows.
    """
    quad, qsize = face.quad.copy(), face.qsize
    img = rgb
    shrink = _shrink_factor(qsize, output_size)
    if shrink > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (int(np.rint(w / shrink)), int(np.rint(h / shrink))), interpolation=cv2.INTER_AREA)
        quad /= shrink
        qsize /= shrink

    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = _crop_box(quad, border, img.shape[1], img.shape[0])
    img = img[crop[1] : crop[3], crop[0] : crop[2]]
    quad -= crop[0:2]

    pad = _padding(quad, qsize, border, img.shape[1], img.shape[0])
    if pad is not None:
        img = _blend_padding_fast(img, pad, qsize)
        quad += pad[:2]

    k = int(np.clip(np.ceil(qsize / output_size), 2, 4))
    size = k * output_size
    # Output pixel j samples the source at quad[0] + (j + 0.5) * edge / size (pixel centres).
    ax = (quad[3] - quad[0]) / size
    ay = (quad[1] - quad[0]) / size
    origin = quad[0] + 0.5 * (ax + ay)
    matrix = np.array([[ax[0], ay[0], origin[0]], [ax[1], ay[1], origin[1]]])
    warped = cv2.warpAffine(
        np.ascontiguousarray(img), matrix, (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    return cv2.resize(warped, (output_size, output_size), interpolation=cv2.INTER_AREA)


def align_face(rgb: np.ndarray, face: FaceQuad, output_size: int, exact: bool = False) -> np.ndarray:
    """The aligned image of one face, by `align_exact` or `align_fast`; a crop square that misses the photo
    is the input's rejection, "no face", as `sgan prep ffhq` and `sgan project` report it."""
    try:
        return (align_exact if exact else align_fast)(rgb, face, output_size)
    except FaceOutsideImage as e:
        raise Rejected("no face", f"the landmarks put the face outside the photo ({e})") from e
