"""`sgan data`: look into a dataset that `sgan prep` made (info, export to PNG files, a preview grid),
labelled or not (docs/design.md §4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from stylegan_cli.cli.options import DataOption, JsonOption, RunOption
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, progress, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.data.dataset import Dataset
from stylegan_cli.data.labels import class_index, dataset_json
from stylegan_cli.synthesis.images import image_grid, png_bytes, save_png

app = typer.Typer(help="Inspect and export a prepared dataset.", no_args_is_help=True)

ResolutionOption = Annotated[int, typer.Option("--resolution", help="Level to read (default: the largest).",
                                               show_default=False)]


def _open_dataset(run: Path | None, data: Path | None) -> tuple[Path, Dataset]:
    """The dataset named by --data, else RUN/data/dataset.lmdb, with the run directory."""
    run_dir = rundir.resolve_run(run)
    return run_dir, Dataset(rundir.dataset_path(run_dir, data))


def _level(dataset: Dataset, resolution: int | None) -> int:
    """--resolution, which must be one of the dataset's levels, else the largest."""
    if resolution is None:
        return dataset.resolutions[-1]
    if resolution not in dataset.resolutions:
        raise UsageError(f"The dataset has no {resolution}x{resolution} level; it has "
                         f"{', '.join(map(str, dataset.resolutions))}.")
    return resolution


def _class(dataset: Dataset, value: str) -> int:
    """--class, a class name or index of a labelled dataset."""
    if dataset.class_names is None:
        raise UsageError(f"The dataset {dataset.path} has no labels, so --class has nothing to choose from; "
                         "prepare one with `sgan prep images --labels`.")
    return class_index(value, dataset.class_names)


@app.command("info")
def info(run: RunOption = None, data: DataOption = None, as_json: JsonOption = False) -> None:
    """Resolutions, image count, encodings, fingerprint, images per class and what prep rejected."""
    _, dataset = _open_dataset(run, data)
    meta = dataset.meta
    report = meta.get("report", {})
    summary = {
        "path": str(dataset.path),
        "count": len(dataset),
        "resolutions": dataset.resolutions,
        "channels": meta["channels"],
        "encoding": meta["encoding"],
        "fingerprint": meta["fingerprint"],
        "source": meta["source"],
        "landmark_backend": meta.get("landmark_backend"),
        "classes": None if dataset.labels is None else dict(zip(
            dataset.class_names, np.bincount(dataset.labels, minlength=dataset.num_classes).tolist())),
        "rejected": report.get("rejected", 0),
        "rejects_by_reason": report.get("rejects_by_reason", {}),
        "created": meta.get("created"),
        "format_version": meta["version"],
    }
    if "pixel_md5" in report:
        summary["pixel_md5"] = report["pixel_md5"]
    if as_json:
        results([], summary)
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in summary.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    Console().print(table)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG files, index.jsonl and (labelled) "
                                                    "dataset.json.", file_okay=False)],
    resolution: ResolutionOption = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Export only the first N images.",
                                                 show_default=False)] = None,
    run: RunOption = None,
    data: DataOption = None,
) -> None:
    """Write the images as PNG files named by record index (00000.png, ...) plus index.jsonl, and for a labelled
    dataset their classes in NVIDIA's dataset.json."""
    run_dir, dataset = _open_dataset(run, data)
    count = min(len(dataset), limit or len(dataset))
    width = max(5, len(str(count - 1)))
    with rundir.stage(run_dir) as record:
        res = _level(dataset, resolution)
        rows, names = [], []
        with progress("export", count) as bar:
            for i in range(count):
                path = out / f"{i:0{width}d}.png"
                names.append(path.name)
                rundir.write_bytes(path, png_bytes(dataset.image(i, res)))
                record.outputs.append(str(path))
                source = dataset.source(i)
                rows.append({"index": i, "source": source["source"], "face": source["face"]})
                bar.advance()
        record.outputs.append(str(rundir.write_jsonl(out / "index.jsonl", rows)))
        if dataset.labels is not None:
            labelled = dataset_json(names, dataset.labels[:count].tolist(), dataset.class_names)
            record.outputs.append(str(rundir.write_text(out / "dataset.json", json.dumps(labelled) + "\n")))
        results(record.outputs)


@app.command("grid")
def grid(
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.", dir_okay=False)],
    resolution: ResolutionOption = None,
    count: Annotated[int, typer.Option("--count", min=1, help="How many images to show.")] = 64,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Show a random sample drawn with this seed "
                                                "(default: the first images).", show_default=False)] = None,
    class_: Annotated[Optional[str], typer.Option("--class", help="Show only this class's images (a class name "
                                                  "or index; labelled datasets).", show_default=False)] = None,
    run: RunOption = None,
    data: DataOption = None,
) -> None:
    """A preview grid of the dataset, to look at the data."""
    run_dir, dataset = _open_dataset(run, data)
    with rundir.stage(run_dir) as record:
        res = _level(dataset, resolution)
        pool, of = np.arange(len(dataset)), f"{len(dataset)} images"
        if class_ is not None:
            k = _class(dataset, class_)
            pool = np.flatnonzero(dataset.labels == k)
            of = f"the {len(pool)} images of class {dataset.class_names[k]}"
            if not len(pool):
                raise UsageError(f"Class {dataset.class_names[k]} has no images in the dataset {dataset.path}.")
        n = min(count, len(pool))
        indices = pool[:n] if seed is None else np.random.default_rng(seed).choice(pool, size=n, replace=False)
        picture = image_grid([dataset.image(int(i), res) for i in indices])
        record.outputs.append(str(save_png(out, picture)))
        err.print(f"{n} of {of} at {res}x{res}.")
        results(record.outputs)
