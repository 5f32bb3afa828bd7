"""`sgan data`: look into a dataset that `sgan prep` made (info, export to PNG files, a preview grid)."""

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


@app.command("info")
def info(run: RunOption = None, data: DataOption = None, as_json: JsonOption = False) -> None:
    """Resolutions, image count, encodings, fingerprint and what prep rejected."""
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
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG files and index.jsonl.", file_okay=False)],
    resolution: ResolutionOption = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Export only the first N images.",
                                                 show_default=False)] = None,
    run: RunOption = None,
    data: DataOption = None,
) -> None:
    """Write the images as PNG files named by record index (00000.png, ...) plus index.jsonl."""
    run_dir, dataset = _open_dataset(run, data)
    count = min(len(dataset), limit or len(dataset))
    width = max(5, len(str(count - 1)))
    with rundir.stage(run_dir) as record:
        res = _level(dataset, resolution)
        rows = []
        with progress("export", count) as bar:
            for i in range(count):
                path = out / f"{i:0{width}d}.png"
                rundir.write_bytes(path, png_bytes(dataset.image(i, res)))
                record.outputs.append(str(path))
                source = dataset.source(i)
                rows.append({"index": i, "source": source["source"], "face": source["face"]})
                bar.advance()
        record.outputs.append(str(rundir.write_jsonl(out / "index.jsonl", rows)))
        results(record.outputs)


@app.command("grid")
def grid(
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.", dir_okay=False)],
    resolution: ResolutionOption = None,
    count: Annotated[int, typer.Option("--count", min=1, help="How many images to show.")] = 64,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Show a random sample drawn with this seed "
                                                "(default: the first images).", show_default=False)] = None,
    run: RunOption = None,
    data: DataOption = None,
) -> None:
    """A preview grid of the dataset, to look at the data."""
    run_dir, dataset = _open_dataset(run, data)
    n = min(count, len(dataset))
    if seed is None:
        indices = range(n)
    else:
        indices = np.random.default_rng(seed).choice(len(dataset), size=n, replace=False).tolist()
    with rundir.stage(run_dir) as record:
        res = _level(dataset, resolution)
        picture = image_grid([dataset.image(i, res) for i in indices])
        record.outputs.append(str(save_png(out, picture)))
        err.print(f"{n} of {len(dataset)} images at {res}x{res}.")
        results(record.outputs)
