"""stderr for people, stdout for results (docs/design.md §2).

`err` is the rich console every stage logs to; `results` prints what a stage wrote, one path per
line or one JSON document; `progress` is a bar with ETA on a terminal and a plain line every few
seconds in a batch job's log.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err = Console(stderr=True, highlight=False, soft_wrap=True)


def results(paths, as_json: dict | None = None) -> None:
    """Prints the stage's results on stdout: `as_json` as one document, else one path per line."""
    if as_json is not None:
        sys.stdout.write(json.dumps(as_json, indent=2) + "\n")
    else:
        for path in paths:
            sys.stdout.write(f"{path}\n")
    sys.stdout.flush()


class _PlainProgress:
    """A progress line every `every` seconds, for logs that are not terminals."""

    def __init__(self, description: str, total: int, done: int, every: float = 10.0):
        self.description, self.total, self.done, self.every = description, total, done, every
        self.start_done, self.start = done, time.monotonic()
        self.last = self.start

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            err.print(f"{self.description}: {self.done}/{self.total} ({rate:.2f}/s, ETA {_duration(eta)})")


class _RichProgress:
    def __init__(self, progress: Progress, task):
        self.progress, self.task = progress, task

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)


@contextmanager
def progress(description: str, total: int, done: int = 0) -> Iterator[_PlainProgress | _RichProgress]:
    """A progress display on stderr; call `.advance()` per item."""
    if not err.is_terminal:
        yield _PlainProgress(description, total, done)
        return
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        yield _RichProgress(bar, bar.add_task(description, total=total, completed=done))


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
