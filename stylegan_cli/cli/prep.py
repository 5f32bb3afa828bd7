"""`sgan prep`: photos to the multi-resolution LMDB dataset (docs/design.md §4-5).

`prep ffhq` finds faces (FAN, dlib, or FFHQ's published landmarks), aligns each the way FFHQ
was aligned (StyleGAN Appendix A) and stores every level; `prep images` centre-crops any photo
collection instead, labelled by class folder or NVIDIA's dataset.json with --labels. These commands check
the flags and build the settings; the pipeline, which resumes an interrupted prep where it stopped, is
`data/prep.py`.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from stylegan_cli.cli.options import JsonOption, RunOption
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.download import sha256
from stylegan_cli.core.errors import UsageError
from stylegan_cli.data import prep
from stylegan_cli.data.images import list_images
from stylegan_cli.data.labels import FOLDERS, file_labels, folder_labels
from stylegan_cli.data.landmarks import load_landmarks_file

app = typer.Typer(help="Turn a folder of photos into a multi-resolution LMDB dataset.", no_args_is_help=True)


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
        settings["landmarks_sha256"] = sha256(path)
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
    labels: Annotated[
        Optional[str], typer.Option("--labels", show_default=False,
                                    help="Class labels: folders (one class per subfolder of --src, sorted by name) "
                                         "or NVIDIA's dataset.json (paths relative to --src, integer classes).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Centre-crop any photo collection (CIFAR-10, LSUN-like) to squares and store every level from 4x4 up."""
    settings = {"kind": "images", "src": str(src), "resolution": resolution, "max_pixels": max_pixels}
    inputs = [p.relative_to(src).as_posix() for p in list_images(src)]
    input_labels, class_names = None, None
    if labels is not None and labels != FOLDERS and Path(labels).suffix.lower() != ".json":
        raise UsageError(f"--labels must be folders or a .json labels file, not {labels!r}.")
    if labels == FOLDERS and inputs:
        settings["labels"] = FOLDERS
        input_labels, class_names = folder_labels(inputs, str(src))
    elif labels is not None and inputs:
        path = Path(labels)
        input_labels, class_names = file_labels(path, inputs, str(src))
        settings["labels"] = str(path.resolve())
        settings["labels_sha256"] = sha256(path)
    _run_prep(run, data, settings, inputs, workers, overwrite, as_json, input_labels, class_names)


def _run_prep(run: Path | None, data: Path | None, settings: dict, inputs: list[str], workers: int,
              overwrite: bool, as_json: bool, labels: list[int | None] | None = None,
              class_names: list[str] | None = None) -> None:
    """The stage: an up-to-date dataset is kept, any other is replaced only with --overwrite."""
    run_dir = rundir.resolve_run(run)
    data_dir = rundir.data_dir(run_dir)
    dataset_path = rundir.dataset_path(run_dir, data)
    with rundir.stage(run_dir, writes=dataset_path.parent) as record:
        if not inputs:
            raise UsageError(f"No images under {settings['src']} (looked for jpg, jpeg, png, webp, bmp, tif).")
        existing = prep.finished(dataset_path, settings)
        if existing is not None:
            err.print(f"{dataset_path} is complete and up to date.")
            report = existing.meta["report"]
            outputs = prep.write_reports(data_dir, report, existing)
        elif dataset_path.exists() and not overwrite:
            raise UsageError(f"{dataset_path} already exists with other settings; pass --overwrite to replace "
                             "it, or --data for another path.")
        else:
            report, outputs = prep.build(dataset_path, data_dir, settings, inputs, workers, labels, class_names)
            err.print(_summary(report))
        record.outputs += [str(dataset_path), *map(str, outputs)]
        results(record.outputs, report if as_json else None)


def _summary(report: dict) -> str:
    line = (f"{report['images']} images from {report['inputs']} inputs, {report['rejected']} rejected "
            f"in {report['seconds']:.1f} s")
    if report["rejects_by_reason"]:
        line += " (" + ", ".join(f"{n} {reason}" for reason, n in sorted(report["rejects_by_reason"].items())) + ")"
    if "pixel_md5" in report:
        md5 = report["pixel_md5"]
        line += f"; {md5['matched']} of {md5['checked']} match FFHQ's pixel_md5"
    return line + "."
