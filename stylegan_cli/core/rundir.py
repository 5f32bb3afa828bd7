"""The run directory (docs/design.md §2-3): where it is, where each stage's files lie in it, atomic
writes into it, JSON-lines appends, and history.jsonl.

The layout is the contract between stages, so its paths are defined here once and every stage asks
these functions where the dataset, checkpoints and logs are."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stylegan_cli import __version__
from stylegan_cli.core.errors import SganError, UsageError

_UMASK = os.umask(0)
os.umask(_UMASK)


def resolve_run(run: Path | None) -> Path:
    """`-r/--run`, else `$SGAN_RUN`, else the current directory. Created by the first stage
    that writes into it, so a mistyped path given to a reading stage leaves nothing behind."""
    path = run if run is not None else Path(os.environ.get("SGAN_RUN") or ".")
    if path.exists() and not path.is_dir():
        raise UsageError(f"The run directory {path} is a file, not a directory.")
    return path


# --- the layout (docs/design.md §3) ------------------------------------------------------------


def history_file(run_dir: Path) -> Path:
    return run_dir / "history.jsonl"


def data_dir(run_dir: Path) -> Path:
    """What `sgan prep` writes: the dataset, prep.json, rejects.jsonl, landmarks.json."""
    return run_dir / "data"


def dataset_path(run_dir: Path, data: Path | None = None) -> Path:
    """The dataset a stage reads: `--data` when given, else the run's own."""
    return data if data is not None else data_dir(run_dir) / "dataset.lmdb"


def train_dir(run_dir: Path) -> Path:
    """What `sgan train` writes besides checkpoints: config.json, log.jsonl, fakes grids."""
    return run_dir / "train"


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def metrics_file(run_dir: Path) -> Path:
    return run_dir / "metrics.jsonl"


def stage_dir(run_dir: Path, stage_name: str) -> Path:
    """The output folder of a synthesis stage or of the classifiers: RUN/samples, RUN/mix, ..."""
    return run_dir / stage_name


# --- writing ----------------------------------------------------------------------------------


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary name beside `path`; renamed onto `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; final files get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: Path, data: bytes) -> Path:
    """Writes `data` to `path` atomically (temporary name, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2) + "\n")


def write_jsonl(path: Path, rows) -> Path:
    return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def append_jsonl(path: Path, row: dict) -> None:
    """Appends one JSON line with a single write, so concurrent writers and crashes never split a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())
    finally:
        os.close(fd)


@dataclass
class StageRecord:
    """What a stage reports in history.jsonl; the stage appends to `outputs` as it writes."""

    outputs: list[str] = field(default_factory=list)


@contextmanager
def stage(run_dir: Path) -> Iterator[StageRecord]:
    """Appends one line to RUN/history.jsonl when the stage ends, however it ends."""
    record = StageRecord()
    start = time.time()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SganError(f"Cannot create the run directory {run_dir}: {e.strerror}.") from e
    status = 0
    try:
        yield record
    except SganError as e:
        status = e.exit_code
        raise
    except KeyboardInterrupt:
        status = 130
        raise
    except BaseException as e:
        status = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 1
        raise
    finally:
        line = {
            "command": sys.argv,
            "version": __version__,
            "start": _iso(start),
            "end": _iso(time.time()),
            "outputs": record.outputs,
            "exit_status": status,
        }
        append_jsonl(history_file(run_dir), line)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
