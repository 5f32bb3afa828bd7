"""The images `sgan project` projects (docs/design.md §13): a photo or a folder of photos, each aligned
the way `sgan prep ffhq` aligns faces (docs/design.md §5: the largest face, FFHQ's crop, the fast
resampling) at the generator's resolution, or, for images that already are aligned crops, centre-cropped
and resized as `sgan prep images` does.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylegan_cli.core.errors import UsageError
from stylegan_cli.data import align
from stylegan_cli.data.images import IMAGE_EXTENSIONS, MAX_PIXELS, Rejected, center_square, list_images, load_rgb
from stylegan_cli.data.landmarks import LandmarkEntry, load_landmarks_file, make_detector

LANDMARK_SOURCES = ("fan", "dlib")


@dataclass(frozen=True)
class Target:
    name: str  # names its files: NAME.png, NAME-target.png, and its row of latents.npz
    path: Path
    rel: str  # relative to the folder given (a lone photo: its file name), posix separators


def list_targets(target: Path) -> list[Target]:
    """The photos a `--target` names, in order, each with a name of its own: its file name without the
    extension where that is unique, else its relative path, with anything but letters, digits, '.', '_'
    and '-' turned into '_' and a leading '.' prefixed with '_'."""
    if target.is_dir():
        paths, root = list_images(target), target
        if not paths:
            raise UsageError(f"No images under {target} (looked for {', '.join(e[1:] for e in IMAGE_EXTENSIONS)}).")
    elif target.is_file():
        paths, root = [target], target.parent
    else:
        raise UsageError(f"--target {target}: no such file or folder.")
    rels = [p.relative_to(root).as_posix() for p in paths]
    stems = Counter(Path(r).stem for r in rels)
    names = [re.sub(r"[^\w.-]", "_", Path(r).stem if stems[Path(r).stem] == 1 else r) for r in rels]
    return [Target("_" + n if n.startswith(".") else n, p, r) for n, p, r in zip(names, paths, rels)]


class Aligner:
    """Turns a target into the generator's input: `landmarks` is "fan" or "dlib" (a detector finds the
    largest face), the path of an FFHQ-format landmarks file (entries named by the targets' relative
    paths), or None for no alignment. A target that cannot be used raises `Rejected` with the reason."""

    def __init__(self, landmarks: str | None, resolution: int, rotation: bool = True, device: str | None = None):
        self.resolution, self.rotation = resolution, rotation
        self.detector = make_detector(landmarks, device) if landmarks in LANDMARK_SOURCES else None
        self.entries: dict[str, LandmarkEntry] = {}
        if landmarks is not None and self.detector is None:
            self.entries = {e.file_path: e for e in load_landmarks_file(Path(landmarks))}
        self.aligns = landmarks is not None

    def __call__(self, target: Target) -> np.ndarray:
        """(R, R, 3) uint8."""
        rgb = load_rgb(target.path, MAX_PIXELS)
        if not self.aligns:
            return center_square(rgb, self.resolution)
        if self.detector is not None:
            faces = self.detector.faces(rgb)
        else:
            entry = self.entries.get(target.rel)
            if entry is None:
                raise Rejected("no face", f"the landmarks file has no entry for {target.rel}")
            faces = [entry.landmarks]
        if not faces:
            raise Rejected("no face", "no face was found")
        return align.align_face(rgb, align.face_quad(faces[0], rotate=self.rotation), self.resolution)
