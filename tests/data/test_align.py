"""FFHQ face alignment: where the crop square puts a face, and how closely the fast path follows the reference.

Geometry is checked against the hand-placed pupils of the example photos' .tem files (points 0 and 1,
image left and right), which no part of the alignment ever sees.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FACES
from PIL import Image

from stylegan_cli.data import align
from stylegan_cli.data.align import align_exact, align_fast, face_quad
from stylegan_cli.data.images import load_rgb
from stylegan_cli.data.landmarks import make_detector

PHOTOS = sorted(FACES.glob("*.jpg"))
USED = ["001_03", "002_03", "005_03"]  # the photos these tests align (dlib runs once per photo)

# Where FFHQ's square puts the eyes, as fractions of the output side. The side is 2*|x|, which is
# 4*|eye_to_eye| when the eye distance sets the scale, so the eyes sit a quarter of the side apart,
# an eighth either side of the centre; their midpoint is c - 0.1*eye_to_mouth, so a little above
# the centre, by at most 0.1*|eye_to_mouth|/qsize <= 0.1/3.6 of the side, as |x| >= 1.8*|eye_to_mouth|.
EYE_SPACING = 0.25
MAX_EYE_RISE = 0.1 / 3.6
# The rotated square follows the average of the eye line and the face's vertical (eye-to-mouth)
# axis, not the eye line alone, so the two eyes end up on one row only up to the angle between those.
SAME_ROW = 0.01
# dlib's eye-contour centres sit 4-10 px below the hand-placed pupils in these 1350 px photos, about
# 1.2% of the output side; a square placed or scaled wrongly misses by far more.
PUPIL_TOLERANCE = 0.025
# The centroid of a disc drawn at a pupil lands within this many output pixels of where the quad maps
# it (measured: within 0.01 px); a half-pixel slip in either path's sampling grid misses by >= 0.25 px.
CENTROID_TOLERANCE_PX = 0.1
TILT_DEGREES = 15.0


@dataclass
class Face:
    name: str
    rgb: np.ndarray
    landmarks: np.ndarray  # (68, 2) from dlib
    pupils: np.ndarray  # (2, 2) hand-placed: image left, image right


def read_pupils(photo: Path) -> np.ndarray:
    return np.loadtxt(photo.with_suffix(".tem"), skiprows=1, max_rows=2)


def rotation(shape, degrees: float) -> np.ndarray:
    """cv2's 2x3 matrix turning a photo by `degrees` about its centre."""
    height, width = shape[:2]
    return cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)


def rotate(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(rgb, matrix, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_CUBIC)


def transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def to_output(quad: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Photo points in output coordinates, as fractions of the output side.

    Output pixel (u, v) of N samples the photo at quad[0] + (u+0.5)/N*(quad[3]-quad[0]) + (v+0.5)/N*(quad[1]-quad[0]);
    this returns ((u+0.5)/N, (v+0.5)/N) for each point, so the output's centre is (0.5, 0.5).
    """
    edges = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)
    return np.linalg.solve(edges, (np.asarray(points, np.float64) - quad[0]).T).T


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    return np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def spy(monkeypatch, name: str) -> list:
    """Record every value align.`name` returns while align's functions run."""
    original = getattr(align, name)
    returned = []

    def recording(*args, **kwargs):
        returned.append(original(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(align, name, recording)
    return returned


@pytest.fixture(scope="module")
def detector():
    return make_detector("dlib")


@pytest.fixture(scope="module")
def faces(detector) -> dict[str, Face]:
    found = {}
    for photo in PHOTOS:
        if photo.stem in USED:
            rgb = load_rgb(photo)
            landmarks = detector.faces(rgb)[0]
            found[photo.stem] = Face(photo.stem, rgb, landmarks, read_pupils(photo))
    assert sorted(found) == USED
    return found


@pytest.fixture(scope="module")
def tilted(faces, detector) -> dict[str, Face]:
    """Two photos turned by +15 and -15 degrees, landmarks found afresh by dlib, pupils turned with them."""
    turned = {}
    for name, degrees in [("001_03", TILT_DEGREES), ("002_03", -TILT_DEGREES)]:
        face = faces[name]
        matrix = rotation(face.rgb.shape, degrees)
        rgb = rotate(face.rgb, matrix)
        found = detector.faces(rgb)
        assert len(found) == 1
        turned[name] = Face(f"{name}-tilted", rgb, found[0], transform(face.pupils, matrix))
    return turned


@pytest.fixture(scope="module")
def exact():
    """align_exact (about a second a call) computed once per photo and size."""
    done = {}

    def cached(face: Face, size: int) -> np.ndarray:
        key = (face.name, size)
        if key not in done:
            done[key] = align_exact(face.rgb, face_quad(face.landmarks), size)
        return done[key]

    return cached


# --- where the square puts the face ----------------------------------------------------------------


def drawn_landmarks(eye_left, eye_right, mouth_left, mouth_right) -> np.ndarray:
    """68 points of which only the two eye contours (around the given centres) and mouth corners matter."""
    contour = np.array([[-12, 0], [-6, -4], [6, -4], [12, 0], [6, 4], [-6, 4]], np.float64)  # mean (0, 0)
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = contour + eye_left
    landmarks[42:48] = contour + eye_right
    landmarks[48], landmarks[54] = mouth_left, mouth_right
    return landmarks


def test_square_is_four_eye_distances_wide_and_turns_halfway_to_the_mouth_axis():
    """Eyes at (200, 300) and (300, 300), mouth centre 100 px away at (278, 396), off to one side:
    FFHQ turns the square halfway between the eye line (0 degrees) and the line square to the
    eye-to-mouth axis (-16.26 degrees); it is 4 eye distances wide, centred a tenth of the way to the mouth."""
    face = face_quad(drawn_landmarks((200, 300), (300, 300), (248, 396), (308, 396)))
    top = face.quad[3] - face.quad[0]
    left = face.quad[1] - face.quad[0]

    assert np.degrees(np.arctan2(top[1], top[0])) == pytest.approx(-8.130, abs=1e-3)
    np.testing.assert_allclose(left, [-top[1], top[0]])  # square, turned clockwise from the top edge
    assert face.qsize == pytest.approx(400.0)
    assert np.linalg.norm(top) == pytest.approx(400.0)
    np.testing.assert_allclose(face.quad.mean(axis=0), [252.8, 309.6])


def test_a_long_face_is_sized_by_its_eye_to_mouth_distance():
    """Eyes 100 px apart, mouth 150 px below them: the side is 3.6 x 150 = 540 px, upright."""
    face = face_quad(drawn_landmarks((200, 300), (300, 300), (220, 450), (280, 450)))
    np.testing.assert_allclose(face.quad, [[-20, 45], [-20, 585], [520, 585], [520, 45]], atol=1e-9)
    assert face.qsize == pytest.approx(540.0)


@pytest.mark.parametrize("name", USED)
def test_eye_centres_land_on_ffhq_canonical_spots(faces, name):
    """The landmark eyes end up level, a quarter of the side apart, centred, a little above the middle."""
    face = faces[name]
    eye_to_eye = np.linalg.norm(np.subtract(*eye_centres(face.landmarks)))
    mouth = (face.landmarks[48] + face.landmarks[54]) / 2
    eye_to_mouth = np.linalg.norm(mouth - eye_centres(face.landmarks).mean(axis=0))
    assert 2.0 * eye_to_eye > 1.8 * eye_to_mouth  # in these photos the eye distance sets the scale

    left, right = to_output(face_quad(face.landmarks).quad, eye_centres(face.landmarks))

    assert abs(left[1] - right[1]) < SAME_ROW
    assert np.linalg.norm(right - left) == pytest.approx(EYE_SPACING, abs=1e-9)
    assert right[0] - left[0] == pytest.approx(EYE_SPACING, abs=0.001)
    assert (left[0] + right[0]) / 2 == pytest.approx(0.5, abs=0.005)
    assert 0.5 - MAX_EYE_RISE <= (left[1] + right[1]) / 2 < 0.5


def assert_pupils_on_eyes(face: Face, quad: np.ndarray) -> None:
    """The hand-placed pupils, taken through the quad, sit level and symmetric where the landmark eyes go."""
    left, right = to_output(quad, face.pupils)
    expected = to_output(quad, eye_centres(face.landmarks))

    assert abs(left[1] - right[1]) < SAME_ROW, "pupils not level"
    assert left[0] < 0.5 < right[0]
    assert (0.5 - left[0]) == pytest.approx(right[0] - 0.5, abs=SAME_ROW), "pupils not symmetric"
    assert max(left[1], right[1]) < 0.5, "pupils not above the centre"
    misses = np.linalg.norm(np.stack([left, right]) - expected, axis=1)
    assert misses.max() < PUPIL_TOLERANCE, f"pupils miss the eyes by {misses} of the output side"


@pytest.mark.parametrize("name", USED)
def test_hand_placed_pupils_land_where_ffhq_puts_the_eyes(faces, name):
    face = faces[name]
    assert_pupils_on_eyes(face, face_quad(face.landmarks).quad)


@pytest.mark.parametrize("name", ["001_03", "002_03"])
def test_rotation_levels_the_pupils_of_a_tilted_face(tilted, name):
    face = tilted[name]
    assert_pupils_on_eyes(face, face_quad(face.landmarks).quad)


def disc_image(shape, centres: np.ndarray, radius: float = 12.0) -> np.ndarray:
    """Black, with an anti-aliased white disc (placed to 1/16 px) on each centre."""
    image = np.zeros(shape, np.uint8)
    for x, y in centres:
        centre = (int(round(x * 16)), int(round(y * 16)))
        cv2.circle(image, centre, int(round(radius * 16)), (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    return image


def half_centroids(aligned: np.ndarray) -> np.ndarray:
    """Brightness centroid (u, v) in output pixel indices of the left half and of the right half."""
    grey = aligned[..., 0].astype(np.float64)
    size = grey.shape[0]
    v, u = np.mgrid[:size, :size]
    centroids = []
    for half in (u < size // 2, u >= size // 2):
        weight = grey * half
        assert weight.sum() > 0, "no disc in this half"
        centroids.append([(u * weight).sum() / weight.sum(), (v * weight).sum() / weight.sum()])
    return np.array(centroids)


@pytest.mark.parametrize("method", [align_fast, align_exact], ids=["fast", "exact"])
def test_pupil_discs_appear_where_the_quad_maps_the_pupils(faces, method):
    """Pixels, not just arithmetic: discs drawn on the pupils come out where to_output says, to 0.1 px."""
    face = faces["001_03"]
    size = 1024
    quad = face_quad(face.landmarks)
    aligned = method(disc_image(face.rgb.shape, face.pupils), quad, size)

    expected = to_output(quad.quad, face.pupils) * size - 0.5  # output pixel indices
    found = half_centroids(aligned)

    assert np.abs(found - expected).max() < CENTROID_TOLERANCE_PX, f"discs at {found}, expected {expected}"


# --- --no-rotation ---------------------------------------------------------------------------------


def assert_unrotated_square_matches(landmarks: np.ndarray) -> None:
    rotated = face_quad(landmarks)
    upright = face_quad(landmarks, rotate=False)
    across = upright.quad[3] - upright.quad[0]  # the output's top edge, left to right
    down = upright.quad[1] - upright.quad[0]  # its left edge, top to bottom

    assert across[1] == 0 and across[0] > 0
    assert down[0] == 0 and down[1] > 0
    assert np.linalg.norm(across) == pytest.approx(upright.qsize)
    assert np.linalg.norm(down) == pytest.approx(upright.qsize)
    assert upright.qsize == pytest.approx(rotated.qsize)
    np.testing.assert_allclose(upright.quad.mean(axis=0), rotated.quad.mean(axis=0))


@pytest.mark.parametrize("name", USED)
def test_no_rotation_gives_an_axis_aligned_square_of_the_same_size(faces, name):
    assert_unrotated_square_matches(faces[name].landmarks)


def test_no_rotation_leaves_a_tilted_face_tilted(tilted):
    """The same square, but upright: on a face turned by 15 degrees the pupils stay 15 degrees apart in height."""
    face = tilted["001_03"]
    assert_unrotated_square_matches(face.landmarks)

    left, right = to_output(face_quad(face.landmarks, rotate=False).quad, face.pupils)
    tilt = np.degrees(np.arctan2(left[1] - right[1], right[0] - left[0]))
    assert tilt == pytest.approx(TILT_DEGREES, abs=3.0)


# --- the fast path follows the reference ------------------------------------------------------------


@pytest.mark.parametrize("size", [256, 1024])
def test_fast_is_within_40db_of_exact(faces, exact, size):
    face = faces["001_03"]
    fast = align_fast(face.rgb, face_quad(face.landmarks), size)
    assert psnr(fast, exact(face, size)) >= 40.0


def test_fast_is_within_40db_of_exact_when_the_face_needs_padding(faces, monkeypatch):
    """A face near the photo's top-left corner: both paths reflect-pad, blur and fade the missing part."""
    face = faces["001_03"]
    rgb = np.ascontiguousarray(face.rgb[450:, 420:])
    quad = face_quad(face.landmarks - [420, 450])
    pads = spy(monkeypatch, "_padding")

    fast = align_fast(rgb, quad, 256)
    reference = align_exact(rgb, quad, 256)

    assert len(pads) == 2 and all(pad is not None for pad in pads), "the padding path did not run"
    assert psnr(fast, reference) >= 40.0


def test_fast_is_within_40db_of_exact_when_the_photo_is_shrunk_first(faces, monkeypatch):
    """A 4050 px photo aligned to 512: the face is over 4x the output, so both paths shrink the photo first."""
    face = faces["001_03"]
    rgb = cv2.resize(face.rgb, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    quad = face_quad(face.landmarks * 3 + 1)  # pixel centres: i -> 3i + 1
    shrinks = spy(monkeypatch, "_shrink_factor")

    fast = align_fast(rgb, quad, 512)
    reference = align_exact(rgb, quad, 512)

    assert len(shrinks) == 2 and all(shrink > 1 for shrink in shrinks), "the shrink path did not run"
    assert psnr(fast, reference) >= 40.0


# --- output format ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128, 256, 512, 1024])
def test_both_paths_give_square_rgb_uint8_of_the_asked_size(faces, exact, size):
    """Also the same picture at every size: 40 dB from 128 up; below, where the photo is shrunk 6-50x and
    the final filters (box vs Lanczos) differ most, 30 dB (measured 33.8 dB at 8 px, 39.6 dB at 64)."""
    face = faces["001_03"]
    fast = align_fast(face.rgb, face_quad(face.landmarks), size)
    reference = exact(face, size)

    for aligned in (fast, reference):
        assert aligned.shape == (size, size, 3)
        assert aligned.dtype == np.uint8
    assert psnr(fast, reference) >= (40.0 if size >= 128 else 30.0)


# --- rotation is undone ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, degrees", [("001_03", TILT_DEGREES), ("005_03", -TILT_DEGREES)])
def test_a_rotated_photo_aligns_to_the_same_face(faces, name, degrees):
    """Turning the photo (and its landmarks) by 15 degrees changes the aligned face only by resampling
    (measured 55-58 dB); without rotation the square does not turn with the face (13-17 dB)."""
    face = faces[name]
    matrix = rotation(face.rgb.shape, degrees)
    rgb = rotate(face.rgb, matrix)
    landmarks = transform(face.landmarks, matrix)
    upright = align_fast(face.rgb, face_quad(face.landmarks), 256)

    assert psnr(align_fast(rgb, face_quad(landmarks), 256), upright) > 45.0
    assert psnr(align_fast(rgb, face_quad(landmarks, rotate=False), 256), upright) < 25.0


# --- the exact path is FFHQ's ----------------------------------------------------------------------


def test_exact_is_ffhqs_quad_transform_and_lanczos_resize_bit_for_bit(faces, exact):
    """Without shrinking or padding, FFHQ's crop only saves work: the result is the whole photo's 4096 px
    bilinear quad transform (corners + 0.5) resized with Lanczos, to the bit, every time."""
    face = faces["001_03"]
    quad = face_quad(face.landmarks)
    assert align._shrink_factor(quad.qsize, 256) <= 1

    reference = Image.fromarray(face.rgb).transform(
        (4096, 4096), Image.Transform.QUAD, (quad.quad + 0.5).flatten(), Image.Resampling.BILINEAR
    )
    reference = np.asarray(reference.resize((256, 256), Image.Resampling.LANCZOS))

    first = exact(face, 256)
    np.testing.assert_array_equal(first, reference)
    np.testing.assert_array_equal(align_exact(face.rgb, quad, 256), first)


def test_a_square_wholly_outside_the_photo_is_refused_by_both_paths():
    rgb = np.full((100, 100, 3), 128, np.uint8)
    quad = align.FaceQuad(quad=np.array([[104.0, 30], [104, 70], [144, 70], [144, 30]]), qsize=40.0)
    for path in (align_fast, align_exact):
        with pytest.raises(align.FaceOutsideImage):
            path(rgb, quad, 16)
