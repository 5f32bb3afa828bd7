"""One writer per part of a run (docs/design.md §2): the run's checkpoints, its dataset, each synthesis stage's
output folder. A stage that writes takes an exclusive lock on the folder it writes, `PARENT/.locks/NAME.lock`
beside it (so that the folder holds only what the stage writes), for the rest of the process; a second
writer stops at once with one sentence naming the holder.

The locks are POSIX record locks (`fcntl.lockf`): the kernel, or on a network file system its lock
manager, drops them when the holding process ends however it ends, so a lock left by `kill -9` or a
crashed node is simply free again (no stale-lock files to delete). The lock file's content (host,
pid, command, start time) is only for the message. Readers take no lock: they only ever see complete
files, since every write is atomic (a temporary name, then a rename).

A POSIX lock is released when its process closes any descriptor of the file, so the holder keeps one
descriptor open and never opens the file again (`_held`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from stylegan_cli.core.errors import SganError

LOCKS_DIR = ".locks"
_held: dict[Path, int] = {}  # lock file -> the open descriptor that holds it, for the process's life


class LockedError(SganError):
    """Another process is writing the same part of the run; exit status 1."""


def hold(folder: Path) -> None:
    """Takes the lock on `folder` (created if need be) for the rest of this process (again: nothing to do), or
    raises LockedError naming its holder."""
    folder = folder.absolute()
    path = folder.parent / LOCKS_DIR / f"{folder.name}.lock"
    if path in _held:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise SganError(f"Cannot create the lock file {path}: {e.strerror}.") from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EACCES, errno.EAGAIN):
            raise LockedError(f"Another sgan is writing into {folder}: {_holder(path)}. Wait for it to "
                              f"finish or stop it; if it was killed, its lock is already free and the same command "
                              f"can be run again.") from None
        raise SganError(f"Cannot lock {path}: {e.strerror} (the file system must support POSIX locks, see "
                        f"README).") from None
    _held[path] = fd
    info = {"host": socket.gethostname(), "pid": os.getpid(), "command": " ".join(["sgan", *sys.argv[1:]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)


def _holder(path: Path) -> str:
    """Who holds a lock, from what it wrote into the file: `sgan train ...` (pid 123 on node7, since ...)."""
    try:
        info = json.loads(path.read_text() or "{}")
        return f"`{info['command']}` (pid {info['pid']} on {info['host']}, since {info['since']})"
    except (OSError, ValueError, KeyError):
        return "a process that has not yet said who it is"
