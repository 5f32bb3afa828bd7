"""`sgan bench`: speed figures for BENCHMARKS.md, measured the same way every time.

`bench prep` times FFHQ's reference alignment (decode, `align_exact`, PNG at PIL's default
compression, as NVIDIA's download_ffhq.py does per photo) against sgan's per-photo work (decode,
`align_fast`, every level encoded), on one core and on all cores, with identical landmarks, and
reports how close the fast images are to the reference (PSNR).
"""

from __future__ import annotations

import io
import multiprocessing
import time
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer
from PIL import Image
from rich.console import Console
from rich.table import Table

from stylegan_cli import align
from stylegan_cli.cli import JsonOption
from stylegan_cli.console import err, results
from stylegan_cli.dataset import build_levels, encode_level
from stylegan_cli.errors import UsageError
from stylegan_cli.images import list_images, load_rgb
from stylegan_cli.landmarks import load_landmarks_file, make_detector

app = typer.Typer(help="Measure speed: figures for BENCHMARKS.md.", no_args_is_help=True)


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


@app.command("prep")
def bench_prep(
    src: Annotated[Path, typer.Option("--src", help="Folder of face photos.", exists=True, file_okay=False)],
    landmarks: Annotated[str, typer.Option("--landmarks", help="dlib, fan, or an FFHQ-format .json file.")] = "dlib",
    resolution: Annotated[int, typer.Option("--resolution", help="Output size.")] = 1024,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the all-cores figure.")] = (
        multiprocessing.cpu_count()
    ),
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Pass over the photos this many times.")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Alignment throughput, sgan against FFHQ's reference algorithm, with the PSNR between them."""
    if landmarks in ("dlib", "fan"):
        detector = make_detector(landmarks)
        jobs, start = [], time.perf_counter()
        for path in list_images(src):
            faces = detector.faces(load_rgb(path))
            if faces:
                jobs.append((path, faces[0]))
        detect_rate = len(jobs) / (time.perf_counter() - start)
    else:
        jobs = [(src / e.file_path, e.landmarks) for e in load_landmarks_file(Path(landmarks))]
        detect_rate = None
    if not jobs:
        raise UsageError(f"No faces found under {src}.")
    jobs = jobs * repeat
    err.print(f"{len(jobs)} faces at {resolution}x{resolution}; timing the reference on one core...")
    ref_rate, ref_out = _one_core(_reference, jobs, resolution)
    err.print("timing sgan on one core...")
    fast_rate, fast_out = _one_core(_sgan, jobs, resolution)
    err.print(f"timing sgan on {workers} processes...")
    pool_rate = _all_cores(jobs, resolution, workers)
    psnrs = [_psnr(a, b) for a, b in zip(fast_out, ref_out)]
    figures = {
        "faces": len(jobs),
        "resolution": resolution,
        "reference_img_per_s_1core": round(ref_rate, 3),
        "sgan_img_per_s_1core": round(fast_rate, 3),
        "speedup_per_core": round(fast_rate / ref_rate, 2),
        f"sgan_img_per_s_{workers}proc": round(pool_rate, 3),
        "psnr_db_min": round(min(psnrs), 2),
        "psnr_db_median": round(float(np.median(psnrs)), 2),
    }
    if detect_rate is not None:  # landmarks were found by a detector, not read from a file
        figures[f"landmarks_{landmarks}_img_per_s_1core"] = round(detect_rate, 3)
    table = Table(title="sgan bench prep", show_header=False)
    for key, value in figures.items():
        table.add_row(key, str(value))
    Console(stderr=True).print(table)
    if as_json:
        results([], figures)
