"""The run directory (docs/design.md §2-3): where it is, where each stage's files lie in it, atomic
writes into it, JSON-lines appends, and history.jsonl.

The layout is the contract between stages, so its paths are defined here once and every stage asks
these functions where the dataset, checkpoints and logs are."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stylegan_cli import __version__
from stylegan_cli.core import locks
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


# In sgan project's folder (RUN/project or --out; docs/design.md §13):
PROJECT_LATENTS = "latents.npz"  # w and noise maps, one row per finished target, in target order
PROJECT_STATE = "project.json"  # the settings, each finished target's scores and files, the failed targets


def projection_images(folder: Path, name: str) -> tuple[Path, Path]:
    """The reconstruction and the aligned target of the target NAME in sgan project's folder."""
    return folder / f"{name}.png", folder / f"{name}-target.png"


# --- writing ----------------------------------------------------------------------------------

# Errors that only writing produces: whatever raised them, they concern the file being written.
_WRITE_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
# What torch.save's C++ writer says when the file under it fails (it keeps no errno).
_TORCH_WRITER = ("inline_container", "PytorchStreamWriter", "iostream error", "cannot be opened")
# Less free space than this, with a failed write's partial file still there, means the disk is full.
_FULL = 1 << 20


def write_error(path: Path, err: BaseException, needed: int | None = None, written: int | None = None) -> SganError:
    """The one sentence for a failed write of `path`: which file, and why (no space, with how much was
    `needed` and how much is free; no permission; a read-only file system; a vanished folder).

    `err` is the OSError, or an error without errno (torch.save's RuntimeError) whose cause or context
    holds one; failing both, no space is assumed when the free space is below `needed`. `written` (the
    bytes already written when it failed) bounds the need from below when `needed` is unknown."""
    path = Path(path)
    os_err = _os_error(err)
    code = os_err.errno if os_err is not None else None
    folder = _existing_ancestor(path.parent)
    if code is None and needed is not None and _free(folder) < needed:
        code = errno.ENOSPC
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = _free(folder)
        need = (f"about {_size(needed)} needed" if needed is not None
                else f"over {_size(written)} needed" if written else "")
        cause = "no space left on the device" if code == errno.ENOSPC else "the disk quota is used up"
        if code == errno.ENOSPC and _no_inodes(folder):
            cause, need = "no file entries (inodes) left on the device", ""
        space = ", ".join(s for s in (need, f"{_size(free)} free on {_mount_point(folder)}") if s)
        return SganError(f"Cannot write {path}: {cause} ({space}).")
    if code in (errno.EACCES, errno.EPERM):
        cause = "permission denied" if code == errno.EACCES else "operation not permitted"
        return SganError(f"Cannot write {path}: {cause} in the folder {folder}.")
    if code == errno.EROFS:
        return SganError(f"Cannot write {path}: the file system at {_mount_point(folder)} is read-only.")
    if code == errno.ENOENT:
        if not path.parent.is_dir():
            return SganError(f"Cannot write {path}: its folder {path.parent} was removed while sgan was writing.")
        return SganError(f"Cannot write {path}: its temporary file was removed while sgan was writing.")
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return SganError(f"Cannot write {path}: {blocker} is a file, not a folder.")
    if code == errno.EISDIR:
        return SganError(f"Cannot write {path}: a folder of that name is in the way.")
    if os_err is not None and os_err.strerror:
        return SganError(f"Cannot write {path}: {os_err.strerror[0].lower() + os_err.strerror[1:]}.")
    return SganError(f"Cannot write {path}: {_one_clause(err)}.")


@contextmanager
def atomic_path(path: Path, needed: int | None = None) -> Iterator[Path]:
    """Yields a temporary name beside `path`; renamed onto `path` only if the block succeeds.

    However it fails, the temporary file is gone afterwards. A write failure (of the folder, the
    temporary file or the rename: no space, no permission, read-only, a vanished folder; or
    torch.save's errno-less RuntimeError) becomes one SganError sentence (write_error); `needed`,
    the expected size in bytes when known, goes into the no-space sentence."""
    path = Path(path)
    tmp = None
    written, full = 0, False
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; final files get the usual permissions
            yield Path(tmp)
            os.replace(tmp, path)
            tmp = None
        finally:
            if tmp is not None:
                full = _free(_existing_ancestor(path.parent)) < _FULL  # with the partial file still there
                written = _remove(tmp)
    except OSError as e:
        if not _about(e, path):
            raise
        raise write_error(path, e, needed, written) from e
    except RuntimeError as e:
        if not (any(s in str(e) for s in _TORCH_WRITER) or _os_error(e) is not None):
            raise
        cause = e if _os_error(e) is not None or not full else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise write_error(path, cause, needed, written) from e


def write_bytes(path: Path, data: bytes) -> Path:
    """Writes `data` to `path` atomically (temporary name, fsync, rename)."""
    with atomic_path(path, needed=len(data)) as tmp:
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
    """Appends one JSON line with a single write, so concurrent writers and crashes never split a line.

    A write that fails (or stops short on a full disk) leaves no part of the line behind and
    becomes one SganError sentence (write_error)."""
    path = Path(path)
    data = (json.dumps(row) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError as e:
        raise write_error(path, e, len(data)) from e
    try:
        done = os.write(fd, data)
        if done < len(data):  # a full disk takes what fits: take it back rather than leave half a line
            end = os.lseek(fd, 0, os.SEEK_CUR)
            if os.fstat(fd).st_size == end:  # nobody has appended after it
                os.ftruncate(fd, end - done)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    except OSError as e:
        raise write_error(path, e, len(data)) from e
    finally:
        os.close(fd)


def _os_error(err: BaseException | None) -> OSError | None:
    """`err`, or the first error in its chain of causes and contexts, that carries an errno."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno is not None:
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _about(err: OSError, path: Path) -> bool:
    """Whether an OSError raised in atomic_path concerns the write of `path` (not, say, an input
    file that the block reads)."""
    if err.errno is None:
        return False
    if err.errno in _WRITE_ONLY or err.filename is None:
        return True
    names = {Path(err.filename)} | ({Path(err.filename2)} if err.filename2 else set())
    tmp_name = f".{path.name}."  # mkstemp's names for it: .NAME.XXXX.tmp
    return any(n == path or n in path.parents or (n.parent == path.parent and n.name.startswith(tmp_name))
               for n in names)


def _remove(tmp: str) -> int:
    """Deletes a temporary file, if still there; its size, the bytes a failed write got out."""
    try:
        size = os.stat(tmp).st_size
        os.unlink(tmp)
        return size
    except OSError:
        return 0


def _existing_ancestor(folder: Path) -> Path:
    """`folder` or its nearest ancestor that exists (the one whose file system takes the write)."""
    for p in (folder, *folder.parents):
        if p.is_dir():
            return p
    return Path(".")


def _mount_point(folder: Path) -> Path:
    path = folder.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _free(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _no_inodes(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_files > 0 and st.f_favail == 0


def _size(n: int) -> str:
    """Bytes as people read them: 812 KB, 4.2 MB, 1.5 GB."""
    if n >= 10**9:
        return f"{n / 10**9:.1f} GB"
    if n >= 10**6:
        return f"{n / 10**6:.1f} MB"
    if n >= 10**3:
        return f"{n / 10**3:.0f} KB"
    return f"{n} bytes"


def _one_clause(err: BaseException) -> str:
    """An error's message as a clause of a sentence: first line, torch's `[enforce fail ...]` tag
    and any final full stop dropped, never empty."""
    text = re.sub(r"\[enforce fail at [^\]]*\]\s*\.?\s*", "", str(err)).strip()
    text = (text.splitlines() or [""])[0].strip().rstrip(".")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass
class StageRecord:
    """What a stage reports in history.jsonl; the stage appends to `outputs` as it writes."""

    outputs: list[str] = field(default_factory=list)


@contextmanager
def stage(run_dir: Path, writes: Path | None = None) -> Iterator[StageRecord]:
    """Appends one line to RUN/history.jsonl when the stage ends, however it ends. `writes` is the folder the
    stage writes (its output folder, the checkpoints, the dataset's): its lock is taken first
    (core/locks.py), so a second writer stops before it has written anything."""
    record = StageRecord()
    start = time.time()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SganError(f"Cannot create the run directory {run_dir}: {e.strerror}.") from e
    status = 0
    try:
        if writes is not None:
            locks.hold(writes)
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
        try:
            append_jsonl(history_file(run_dir), line)
        except SganError as e:
            if status == 0:
                raise
            # The stage's own failure is the one to report (a full disk fails both): the log's is only noted.
            sys.stderr.write(f"sgan: history.jsonl not updated: {e}\n")


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
