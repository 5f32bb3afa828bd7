"""The prep pipeline behind `sgan prep`: photos to the multi-resolution LMDB dataset (docs/design.md §4-5).

Inputs are processed in a fixed order by worker processes (`data/prep_worker.py`); results are
committed in that order together with the position reached, so an interrupted prep, run again,
continues where it stopped and ends with exactly the dataset an uninterrupted one would have. A stop
signal ends it with what was committed kept, exiting 128 + the signal's number (docs/design.md §10).

`settings` is the dict the command builds from its flags: `kind` ("ffhq" or "images"), `src`,
`resolution`, `max_pixels`, and for faces `landmarks` ("fan", "dlib", or a landmarks file's path,
then with its `landmarks_sha256`), `faces`, `rotation`, `exact`, `min_face` and `device`; for a labelled
`prep images`, `labels` ("folders", or a labels file's path, then with its `labels_sha256`). All but the
device decide the dataset's content and are stored in it, so a build is resumed, or a finished dataset
kept, only under the same labels.
"""

from __future__ import annotations

import multiprocessing
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from stylegan_cli import __version__
from stylegan_cli.core import rundir, signals
from stylegan_cli.core.console import err, progress
from stylegan_cli.core.errors import SganError
from stylegan_cli.data.dataset import Dataset, DatasetWriter, encoding_for, resolutions
from stylegan_cli.data.prep_worker import init_worker, process

COMMIT_EVERY = 64  # results per LMDB transaction
COMMIT_SECONDS = 2.0  # ...or this long, whichever comes first


def finished(dataset_path: Path, settings: dict) -> Dataset | None:
    """The finished dataset at `dataset_path` when it was made with these settings; None when there is
    none, or one made with other settings."""
    if not dataset_path.exists():
        return None
    existing = Dataset(dataset_path)
    return existing if existing.meta.get("settings") == _comparable(settings) else None


def build(dataset_path: Path, data_dir: Path, settings: dict, inputs: list[str], workers: int,
          labels: list[int | None] | None = None, class_names: list[str] | None = None) -> tuple[dict, list[Path]]:
    """Builds the dataset at `dataset_path` from `inputs` (paths relative to `settings["src"]`), labelled
    when `class_names` is given (`labels`: a class or None per input), resuming an interrupted build with
    the same settings, and replacing an older dataset only once the new one is complete. Returns the
    report and the report files written into `data_dir`."""
    dataset_path.parent.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(dataset_path, _comparable(settings), inputs, labels, class_names)
    if writer.resumed:
        err.print(f"Resuming: {writer.position} of {len(writer.inputs)} inputs already done.")
        if writer.inputs != inputs:
            err.print(f"[yellow]The input list changed since this prep started; finishing the original "
                      f"{len(writer.inputs)} inputs.[/yellow]")
    report = _process_all(writer, settings, workers)
    outputs = write_reports(data_dir, report, writer)
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
    return report, outputs


def write_reports(data_dir: Path, report: dict, dataset: Dataset | DatasetWriter) -> list[Path]:
    """prep.json, rejects.jsonl and (for faces) landmarks.json in FFHQ's format: views of what the
    dataset holds, so `--landmarks data/landmarks.json` reproduces it without a detector."""
    outputs = [rundir.write_json(data_dir / "prep.json", report),
               rundir.write_jsonl(data_dir / "rejects.jsonl", dataset.rejects())]
    if report["settings"]["kind"] == "ffhq":
        entries = {
            str(i): {"in_the_wild": {"file_path": s["source"], "face_landmarks": s["landmarks"]},
                     "image": {"pixel_md5": s["pixel_md5"]}}
            for i, s in enumerate(dataset.sources())
        }
        outputs.append(rundir.write_json(data_dir / "landmarks.json", entries))
    return outputs


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

    pool = None
    try:
        if workers > 1 and len(remaining) > 1:
            ctx = multiprocessing.get_context("spawn")
            signals.start_resource_tracker()
            pool = ctx.Pool(min(workers, len(remaining)), initializer=init_worker,
                            initargs=(settings, writer.inputs, writer.labels))
            outcomes = pool.imap(process, remaining, chunksize=_chunksize(len(remaining), workers))
        else:
            init_worker(settings, writer.inputs, writer.labels, in_process=True)
            outcomes = map(process, remaining)
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
        if isinstance(e, signals.INTERRUPTS):
            err.print(f"Interrupted after {writer.position} of {total} inputs; run the same command again "
                      "to resume.")
        writer.close()
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return _report(writer, settings, stats)


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
