"""`sgan bench prep`: sgan's alignment against FFHQ's reference (docs/design.md §5, §8).

It times FFHQ's reference alignment (decode, `align_exact`, PNG at PIL's default compression, as
NVIDIA's download_ffhq.py does per photo) against sgan's per-photo work (decode, `align_fast`, every
level encoded), on one core and on all cores, with identical landmarks, and reports how close the
fast images are to the reference (PSNR).
"""

from __future__ import annotations

import io
import multiprocessing
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from stylegan_cli.core.console import err
from stylegan_cli.data import align
from stylegan_cli.data.dataset import build_levels, encode_level
from stylegan_cli.data.images import list_images, load_rgb
from stylegan_cli.data.landmarks import load_landmarks_file, make_detector


def find_faces(src: Path, landmarks: str) -> tuple[list[tuple[Path, np.ndarray]], float | None]:
    """(photo, landmarks) of the first face of every photo under `src` found by the detector
    `landmarks` ("dlib" or "fan"), with the detector's photos per second on one core; or of every
    entry of the FFHQ-format landmarks file `landmarks`, with None."""
    if landmarks not in ("dlib", "fan"):
        return [(src / e.file_path, e.landmarks) for e in load_landmarks_file(Path(landmarks))], None
    detector = make_detector(landmarks)
    jobs, start = [], time.perf_counter()
    for path in list_images(src):
        faces = detector.faces(load_rgb(path))
        if faces:
            jobs.append((path, faces[0]))
    return jobs, len(jobs) / (time.perf_counter() - start)


def prep_figures(jobs: list[tuple[Path, np.ndarray]], resolution: int, workers: int) -> dict:
    """Images per second of the reference and of sgan on one core, of sgan on `workers` processes,
    and the PSNR of sgan's images against the reference's."""
    err.print(f"{len(jobs)} faces at {resolution}x{resolution}; timing the reference on one core...")
    ref_rate, ref_out = _one_core(_reference, jobs, resolution)
    err.print("timing sgan on one core...")
    fast_rate, fast_out = _one_core(_sgan, jobs, resolution)
    err.print(f"timing sgan on {workers} processes...")
    pool_rate = _all_cores(jobs, resolution, workers)
    psnrs = [_psnr(a, b) for a, b in zip(fast_out, ref_out)]
    return {
        "faces": len(jobs),
        "resolution": resolution,
        "reference_img_per_s_1core": round(ref_rate, 3),
        "sgan_img_per_s_1core": round(fast_rate, 3),
        "speedup_per_core": round(fast_rate / ref_rate, 2),
        f"sgan_img_per_s_{workers}proc": round(pool_rate, 3),
        "psnr_db_min": round(min(psnrs), 2),
        "psnr_db_median": round(float(np.median(psnrs)), 2),
    }


def _reference(path: Path, landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """FFHQ's per-photo work: PIL decode, the reference alignment, PNG at compress level 6."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    out = align.align_exact(rgb, align.face_quad(landmarks), resolution)
    Image.fromarray(out).save(io.BytesIO(), format="PNG")
    return out


def _sgan(path: Path, landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """sgan's per-photo work after landmarks: decode, fast alignment, every level encoded."""
    out = align.align_fast(load_rgb(path), align.face_quad(landmarks), resolution)
    for img in build_levels(out).values():
        encode_level(img)
    return out


def _one_core(fn, jobs, resolution: int) -> tuple[float, list[np.ndarray]]:
    cv2.setNumThreads(1)
    start = time.perf_counter()
    outs = [fn(path, lm, resolution) for path, lm in jobs]
    return len(jobs) / (time.perf_counter() - start), outs


def _pool_job(args) -> None:
    cv2.setNumThreads(1)
    _sgan(*args)


def _all_cores(jobs, resolution: int, workers: int) -> float:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_pool_job, [(jobs[0][0], jobs[0][1], resolution)] * workers)  # warm-up: imports
        start = time.perf_counter()
        pool.map(_pool_job, [(p, lm, resolution) for p, lm in jobs], chunksize=1)
        return len(jobs) / (time.perf_counter() - start)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
