"""`sgan prep`: photos to the multi-resolution LMDB dataset (DESIGN.md §4-5).

`prep ffhq` finds faces (FAN, dlib, or FFHQ's published landmarks), aligns each the way FFHQ
was aligned (StyleGAN Appendix A) and stores every level; `prep images` centre-crops any photo
collection instead. Inputs are processed in a fixed order by worker processes; results are
committed in that order together with the position reached, so an interrupted prep, run again,
continues where it stopped and ends with exactly the dataset an uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import platform
import signal
import time
from dataclasses import dataclass
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from PIL import Image

from stylegan_cli import __version__, align, rundir
from stylegan_cli.cli import JsonOption, RunOption
from stylegan_cli.console import err, progress, results
from stylegan_cli.dataset import Dataset, DatasetWriter, Record, build_levels, encode_level, encoding_for, pixel_md5, resolutions
from stylegan_cli.errors import SganError, UsageError
from stylegan_cli.images import Rejected, list_images, load_rgb
from stylegan_cli.landmarks import load_landmarks_file, make_detector

app = typer.Typer(help="Turn a folder of photos into a multi-resolution LMDB dataset.", no_args_is_help=True)

COMMIT_EVERY = 64  # results per LMDB transaction
COMMIT_SECONDS = 2.0  # ...or this long, whichever comes first
FFHQ_MD5_RESOLUTION = 1024  # FFHQ's pixel_md5 values are of its 1024x1024 images


class Faces(str, Enum):
    largest = "largest"
    all = "all"


def _check_resolution(value: int) -> int:
    if value < 8 or value > 1024 or value & (value - 1):
        raise typer.BadParameter(f"{value} is not a power of two from 8 to 1024.")
    return value


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


SrcOption = Annotated[
    Path, typer.Option("--src", help="Folder of photos, searched recursively.", exists=True, file_okay=False,
                       dir_okay=True, resolve_path=True)
]
ResolutionOption = Annotated[
    int, typer.Option("--resolution", help="Output size: a power of two from 8 to 1024.", callback=_check_resolution)
]
WorkersOption = Annotated[
    int, typer.Option("--workers", min=1, help="Worker processes (default: all cores).", show_default=False)
]
DataOutOption = Annotated[
    Optional[Path], typer.Option("--data", help="Write the dataset here instead of RUN/data/dataset.lmdb.",
                                 show_default=False)
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing dataset made with other settings.")
]
MaxPixelsOption = Annotated[
    int, typer.Option("--max-pixels", min=1, help="Reject photos with more pixels than this, before decoding them.")
]


@app.command("ffhq")
def prep_ffhq(
    src: SrcOption,
    run: RunOption = None,
    landmarks: Annotated[
        str, typer.Option("--landmarks", help="fan (face-alignment), dlib (offline), or an FFHQ-format .json file.")
    ] = "fan",
    faces: Annotated[Faces, typer.Option("--faces", help="One image per photo (largest face) or one per face.")] = (
        Faces.largest
    ),
    resolution: ResolutionOption = 1024,
    rotation: Annotated[
        bool, typer.Option("--rotation/--no-rotation", help="Level the eyes (FFHQ) or keep the photo upright (FFHQ-U).")
    ] = True,
    exact: Annotated[
        bool, typer.Option("--exact", help="Use FFHQ's reference resampling, pixel for pixel (about 10x slower).")
    ] = False,
    min_face: Annotated[
        Optional[int], typer.Option("--min-face", min=1, show_default=False,
                                    help="Reject faces whose crop is smaller than this many photo pixels "
                                         "(default: half of --resolution).")
    ] = None,
    device: Annotated[
        Optional[str], typer.Option("--device", help="Device for FAN (default: cuda if available, else cpu).",
                                    show_default=False)
    ] = None,
    workers: WorkersOption = _default_workers(),
    data: DataOutOption = None,
    overwrite: OverwriteOption = False,
    max_pixels: MaxPixelsOption = 16384 * 16384,
    as_json: JsonOption = False,
) -> None:
    """Align the faces in a folder of photos as FFHQ was aligned, and store every level from 4x4 up."""
    settings = {
        "kind": "ffhq", "src": str(src), "resolution": resolution, "faces": faces.value, "rotation": rotation,
        "exact": exact, "min_face": min_face if min_face is not None else resolution // 2, "max_pixels": max_pixels,
    }
    if landmarks in ("fan", "dlib"):
        settings["landmarks"] = landmarks
        inputs = [p.relative_to(src).as_posix() for p in list_images(src)]
    else:
        path = Path(landmarks)
        if path.suffix.lower() != ".json":
            raise UsageError(f"--landmarks must be fan, dlib or a .json landmarks file, not {landmarks!r}.")
        entries = load_landmarks_file(path)
        settings["landmarks"] = str(path.resolve())
        settings["landmarks_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        inputs = [e.file_path for e in entries]
    settings["device"] = device
    _run_prep(run, data, settings, inputs, workers, overwrite, as_json)


@app.command("images")
def prep_images(
    src: SrcOption,
    run: RunOption = None,
    resolution: ResolutionOption = 256,
    workers: WorkersOption = _default_workers(),
    data: DataOutOption = None,
    overwrite: OverwriteOption = False,
    max_pixels: MaxPixelsOption = 16384 * 16384,
    as_json: JsonOption = False,
) -> None:
    """Centre-crop any photo collection (CIFAR-10, LSUN-like) to squares and store every level from 4x4 up."""
    settings = {"kind": "images", "src": str(src), "resolution": resolution, "max_pixels": max_pixels}
    inputs = [p.relative_to(src).as_posix() for p in list_images(src)]
    _run_prep(run, data, settings, inputs, workers, overwrite, as_json)


# --- the stage ---------------------------------------------------------------------------------


def _run_prep(run: Path | None, data: Path | None, settings: dict, inputs: list[str], workers: int,
              overwrite: bool, as_json: bool) -> None:
    run_dir = rundir.resolve_run(run)
    data_dir = run_dir / "data"
    dataset_path = data if data is not None else data_dir / "dataset.lmdb"
    with rundir.stage(run_dir) as record:
        if not inputs:
            raise UsageError(f"No images under {settings['src']} (looked for jpg, jpeg, png, webp, bmp, tif).")
        if dataset_path.exists():
            existing = Dataset(dataset_path)
            if existing.meta.get("settings") == _comparable(settings):
                err.print(f"{dataset_path} is complete and up to date.")
                report = existing.meta["report"]
                outputs = _write_reports(data_dir, report, existing.rejects(), existing.sources())
                record.outputs += [str(dataset_path), *map(str, outputs)]
                results(record.outputs, report if as_json else None)
                return
            if not overwrite:
                raise UsageError(f"{dataset_path} already exists with other settings; pass --overwrite to replace "
                                 "it, or --data for another path.")
        dataset_path.parent.mkdir(parents=True, exist_ok=True)
        writer = DatasetWriter(dataset_path, _comparable(settings), inputs)
        if writer.resumed:
            err.print(f"Resuming: {writer.position} of {len(writer.inputs)} inputs already done.")
            if writer.inputs != inputs:
                err.print(f"[yellow]The input list changed since this prep started; finishing the original "
                          f"{len(writer.inputs)} inputs.[/yellow]")
        report = _process_all(writer, settings, workers)
        outputs = _write_reports(data_dir, report, writer.rejects(), writer.sources())
        if report["images"] == 0:
            writer.close()
            raise SganError(f"Every input was rejected; see {data_dir / 'rejects.jsonl'}.")
        writer.finish({
            "resolutions": resolutions(settings["resolution"]),
            "channels": 3,
            "encoding": {str(r): encoding_for(r) for r in resolutions(settings["resolution"])},
            "source": {"kind": settings["kind"], "src": settings["src"]},
            "landmark_backend": settings.get("landmarks"),
            "settings": _comparable(settings),
            "report": report,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sgan_version": __version__,
        })
        record.outputs += [str(dataset_path), *map(str, outputs)]
        err.print(_summary(report))
        results(record.outputs, report if as_json else None)


def _comparable(settings: dict) -> dict:
    """The settings that decide the dataset's content (the device does not)."""
    return {k: v for k, v in settings.items() if k != "device"}


def _process_all(writer: DatasetWriter, settings: dict, workers: int) -> dict:
    """Runs every remaining input through the workers and commits the results in order."""
    total = len(writer.inputs)
    stats = dict(writer.stats) or {"seconds": 0.0, "stage_seconds": {}, "md5_checked": 0, "md5_matched": 0}
    remaining = range(writer.position, total)
    pending: list = []
    last_commit = time.monotonic()
    started = time.monotonic()

    def commit():
        nonlocal last_commit, started
        now = time.monotonic()
        stats["seconds"] += now - started
        started = last_commit = now
        writer.commit(pending, stats)
        pending.clear()

    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = None
    try:
        if workers > 1 and len(remaining) > 1:
            ctx = multiprocessing.get_context("spawn")
            pool = ctx.Pool(min(workers, len(remaining)), initializer=_init_worker, initargs=(settings, writer.inputs))
            outcomes = pool.imap(_process, remaining, chunksize=_chunksize(len(remaining), workers))
        else:
            _init_worker(settings, writer.inputs, in_process=True)
            outcomes = map(_process, remaining)
        with progress("prep", total, writer.position) as bar:
            for position, records, reject, timings in outcomes:
                pending.append((position, records, reject))
                for name, seconds in timings.items():
                    stats["stage_seconds"][name] = stats["stage_seconds"].get(name, 0.0) + seconds
                for r in records:
                    if r.source.get("md5_match") is not None:
                        stats["md5_checked"] += 1
                        stats["md5_matched"] += int(r.source["md5_match"])
                if len(pending) >= COMMIT_EVERY or time.monotonic() - last_commit >= COMMIT_SECONDS:
                    commit()
                bar.advance()
        commit()
    except BaseException as e:
        if pool is not None:
            pool.terminate()
        if isinstance(e, KeyboardInterrupt):
            err.print(f"Interrupted after {writer.position} of {total} inputs; run the same command again to resume.")
        writer.close()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        if pool is not None:
            pool.close()
            pool.join()
    return _report(writer, settings, stats)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _chunksize(n: int, workers: int) -> int:
    return max(1, min(32, n // (workers * 16)))


def _report(writer: DatasetWriter, settings: dict, stats: dict) -> dict:
    rejects = writer.rejects()
    reasons: dict[str, int] = {}
    for r in rejects:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    seconds = stats["seconds"]
    report = {
        "inputs": len(writer.inputs),
        "images": writer.count,
        "rejected": len(rejects),
        "rejects_by_reason": reasons,
        "seconds": round(seconds, 3),
        "inputs_per_second": round(len(writer.inputs) / seconds, 3) if seconds > 0 else None,
        "stage_seconds": {k: round(v, 3) for k, v in stats["stage_seconds"].items()},
        "settings": _comparable(settings),
        "versions": _versions(settings),
    }
    if settings["kind"] == "ffhq" and settings["landmarks"] not in ("fan", "dlib"):
        report["pixel_md5"] = {"checked": stats["md5_checked"], "matched": stats["md5_matched"]}
    return report


def _versions(settings: dict) -> dict:
    names = ["numpy", "pillow", "opencv-python", "lmdb"]
    if settings.get("landmarks") == "dlib":
        names.append("dlib-bin")
    if settings.get("landmarks") == "fan":
        names.append("face-alignment")
    if settings.get("exact"):
        names.append("scipy")
    found = {"sgan": __version__, "python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def _write_reports(data_dir: Path, report: dict, rejects: list[dict], sources) -> list[Path]:
    """prep.json, rejects.jsonl and (for faces) landmarks.json in FFHQ's format: views of what the
    dataset holds, so `--landmarks data/landmarks.json` reproduces it without a detector."""
    outputs = [rundir.write_json(data_dir / "prep.json", report), rundir.write_jsonl(data_dir / "rejects.jsonl", rejects)]
    if report["settings"]["kind"] == "ffhq":
        entries = {
            str(i): {"in_the_wild": {"file_path": s["source"], "face_landmarks": s["landmarks"]},
                     "image": {"pixel_md5": s["pixel_md5"]}}
            for i, s in enumerate(sources)
        }
        outputs.append(rundir.write_json(data_dir / "landmarks.json", entries))
    return outputs


def _summary(report: dict) -> str:
    line = (f"{report['images']} images from {report['inputs']} inputs, {report['rejected']} rejected "
            f"in {report['seconds']:.1f} s")
    if report["rejects_by_reason"]:
        line += " (" + ", ".join(f"{n} {reason}" for reason, n in sorted(report["rejects_by_reason"].items())) + ")"
    if "pixel_md5" in report:
        md5 = report["pixel_md5"]
        line += f"; {md5['matched']} of {md5['checked']} match FFHQ's pixel_md5"
    return line + "."


# --- the worker --------------------------------------------------------------------------------


@dataclass
class _Worker:
    settings: dict
    inputs: list[str]
    src: Path
    detector: object = None
    entries: list = None  # LandmarkEntry per input position, with a landmarks file
    error: SganError | None = None  # why this process could not start; raised by its first task


_worker: _Worker | None = None


def _init_worker(settings: dict, inputs: list[str], in_process: bool = False) -> None:
    """Builds the per-process state: the landmark detector or the landmarks file."""
    global _worker
    if not in_process:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
        import cv2

        cv2.setNumThreads(1)
    w = _Worker(settings=settings, inputs=inputs, src=Path(settings["src"]))
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


def _process(position: int) -> tuple[int, list[Record], dict | None, dict]:
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
        rgb = load_rgb(w.src / rel, w.settings["max_pixels"])
        lap("decode")
        if w.settings["kind"] == "images":
            tops = [(_square(rgb, w.settings["resolution"]), {})]
        else:
            tops = _align_faces(w, position, rgb, lap)
        records = []
        for k, (top, extra) in enumerate(tops):
            levels = build_levels(top)
            records.append(Record(
                levels={res: encode_level(img) for res, img in levels.items()},
                source={"source": rel, "face": k, "pixel_md5": extra.get("pixel_md5") or pixel_md5(top), **extra},
            ))
        lap("encode")
        return position, records, None, timings
    except Rejected as r:
        return position, [], {"position": position, "source": rel, "reason": r.reason, "detail": r.detail}, timings


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
        try:
            top = (align.align_exact if s["exact"] else align.align_fast)(rgb, quad, s["resolution"])
        except align.FaceOutsideImage as e:
            raise Rejected("no face", f"the landmarks put the face outside the photo ({e})") from e
        extra = {"landmarks": np.round(lm, 3).tolist(), "pixel_md5": pixel_md5(top)}
        if md5 is not None and s["resolution"] == FFHQ_MD5_RESOLUTION:
            extra["md5_match"] = extra["pixel_md5"] == md5
        aligned.append((top, extra))
    lap("align")
    return aligned


def _square(rgb: np.ndarray, resolution: int) -> np.ndarray:
    """Centre crop to a square, then a Lanczos resize to the output size."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(rgb[top : top + side, left : left + side])
    if side != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(img)
