"""`sgan report`: one self-contained HTML page about a run: the training command, configuration, dataset,
checkpoints, curves from train/log.jsonl, metrics, the fakes timeline, the newest synthesis grids and the
projections (stylegan_cli/report/). It works offline: nothing on the page is fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stylegan_cli.cli.options import JsonOption, RunOption
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.report.page import build


def report(
    out: Annotated[Optional[Path], typer.Option("--out", show_default=False,
                                                help="HTML file to write (default: RUN/report.html).")] = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write one self-contained HTML report of the run (plots, metrics, image grids; viewable offline)."""
    run_dir = rundir.resolve_run(run)
    target = out if out is not None else run_dir / "report.html"
    if target.is_dir():
        raise UsageError(f"--out {target} is a directory; name the HTML file to write.")
    page = build(run_dir)
    for warning in page.warnings:
        err.print(f"warning: {warning}", markup=False)
    with rundir.stage(run_dir) as record:
        if target.parent != Path(""):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise rundir.write_error(target, e) from e
        rundir.write_text(target, page.html)
        record.outputs.append(str(target))
        err.print(f"report of {run_dir}: {', '.join(page.sections) or 'nothing'} "
                  f"({len(page.html) / 2**20:.1f} MiB).", markup=False)
        results(record.outputs, {"outputs": record.outputs, "report": str(target), "sections": page.sections,
                                 "notes": page.notes} if as_json else None)
