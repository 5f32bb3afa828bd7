"""What `sgan prep` does to one input, in a worker process (docs/design.md §4-5).

`prep ffhq` finds faces (FAN, dlib, or FFHQ's published landmarks) and aligns each the way FFHQ was
aligned (StyleGAN Appendix A); `prep images` centre-crops any photo instead, and with --labels rejects
an input that has no label. Either way every level is built and encoded here, so the parent
(`data/prep.py`) only commits. `init_worker` sets up a process, `process` handles the input at one position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylegan_cli.core import signals
from stylegan_cli.core.errors import SganError
from stylegan_cli.data import align
from stylegan_cli.data.dataset import Record, build_levels, encode_level, pixel_md5
from stylegan_cli.data.images import Rejected, center_square, load_rgb
from stylegan_cli.data.labels import FOLDERS
from stylegan_cli.data.landmarks import load_landmarks_file, make_detector

FFHQ_MD5_RESOLUTION = 1024  # FFHQ's pixel_md5 values are of its 1024x1024 images


@dataclass
class _Worker:
    settings: dict
    inputs: list[str]
    labels: list[int | None] | None  # a class (or None) per input position, for a labelled dataset
    src: Path
    detector: object = None
    entries: list = None  # LandmarkEntry per input position, with a landmarks file
    error: SganError | None = None  # why this process could not start; raised by its first task


_worker: _Worker | None = None


def init_worker(settings: dict, inputs: list[str], labels: list[int | None] | None = None,
                in_process: bool = False) -> None:
    """Builds the per-process state: the landmark detector or the landmarks file."""
    global _worker
    if not in_process:
        signals.leave_to_parent(terminable=True)
        import cv2

        cv2.setNumThreads(1)
    w = _Worker(settings=settings, inputs=inputs, labels=labels, src=Path(settings["src"]))
    try:
        if settings["kind"] == "ffhq":
            if settings["landmarks"] in ("fan", "dlib"):
                w.detector = make_detector(settings["landmarks"], settings.get("device"))
            else:
                w.entries = load_landmarks_file(Path(settings["landmarks"]))
    except SganError as e:
        if in_process:
            raise
        w.error = e  # a pool respawns workers whose initializer fails, forever: fail the task instead
    _worker = w


def process(position: int) -> tuple[int, list[Record], dict | None, dict]:
    """One input: its records (0, 1 or several faces) or the reason it was rejected."""
    w = _worker
    if w.error is not None:
        raise w.error
    rel = w.inputs[position]
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    try:
        label = _label(w, position)
        rgb = load_rgb(w.src / rel, w.settings["max_pixels"])
        lap("decode")
        if w.settings["kind"] == "images":
            tops = [(center_square(rgb, w.settings["resolution"]), {})]
        else:
            tops = _align_faces(w, position, rgb, lap)
        records = []
        for k, (top, extra) in enumerate(tops):
            levels = build_levels(top)
            records.append(Record(
                levels={res: encode_level(img) for res, img in levels.items()},
                source={"source": rel, "face": k, "pixel_md5": extra.get("pixel_md5") or pixel_md5(top), **extra,
                        **({} if label is None else {"label": label})},
            ))
        lap("encode")
        return position, records, None, timings
    except Rejected as r:
        return position, [], {"position": position, "source": rel, "reason": r.reason, "detail": r.detail}, timings


def _label(w: _Worker, position: int) -> int | None:
    """The input's class; None for an unlabelled dataset, and Rejected for an input without one in a labelled
    dataset (docs/design.md §4)."""
    if w.labels is None:
        return None
    label = w.labels[position]
    if label is None:
        if w.settings["labels"] == FOLDERS:
            raise Rejected("no label", "it lies directly in --src, not in a class folder")
        raise Rejected("no label", "the labels file does not label it")
    return label


def _align_faces(w: _Worker, position: int, rgb: np.ndarray, lap) -> list[tuple[np.ndarray, dict]]:
    s = w.settings
    if w.entries is not None:
        entry = w.entries[position]
        found, md5 = [entry.landmarks], entry.pixel_md5
    else:
        found, md5 = w.detector.faces(rgb), None
        lap("landmarks")
        if not found:
            raise Rejected("no face", "no face was found")
    if s["faces"] == "largest":
        found = found[:1]
    quads = [(lm, align.face_quad(lm, rotate=s["rotation"])) for lm in found]
    kept = [(lm, q) for lm, q in quads if q.qsize >= s["min_face"]]
    if not kept:
        size = max(q.qsize for _, q in quads)
        raise Rejected("face too small", f"the face's crop is {size:.0f} px, under --min-face {s['min_face']}")
    aligned = []
    for lm, quad in kept:
        top = align.align_face(rgb, quad, s["resolution"], exact=s["exact"])
        extra = {"landmarks": np.round(lm, 3).tolist(), "pixel_md5": pixel_md5(top)}
        if md5 is not None and s["resolution"] == FFHQ_MD5_RESOLUTION:
            extra["md5_match"] = extra["pixel_md5"] == md5
        aligned.append((top, extra))
    lap("align")
    return aligned
