"""Stop signals as exceptions (docs/design.md §10): a stage stopped by signal N exits 128 + N.

Python turns SIGINT into KeyboardInterrupt, which `cli/app.py` reports as "interrupted." with status
130. Within `raising()` the other stop signals do the same with `Stopped`, which carries the signal's
number, so the code they interrupt unwinds through its `finally` and `except BaseException` clean-ups
as it does for Ctrl-C. `Stopped` is a `SystemExit` with code 128 + N: `rundir.stage` records that
code in history.jsonl, the process exits with it, and no `except Exception` swallows it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker

# The signals that stop a stage at a safe point: Ctrl-C, the usual kill, and Slurm's warning before preemption.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class Stopped(SystemExit):
    """Signal `signum` stopped the stage; the process exits 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


# What a stop signal raises in the main thread: Python's own for SIGINT, `Stopped` (in `raising()`) for the others.
INTERRUPTS = (KeyboardInterrupt, Stopped)


def leave_to_parent(*_, terminable: bool = False) -> None:
    """In a worker process (a DataLoader's, a prep pool's): ignore the stop signals, which Slurm, `timeout` and
    Kubernetes send to every process of the job at once, so that the parent alone decides how to stop and
    the workers end when it tells them. `terminable` keeps SIGTERM's default (ending the worker) for pools
    whose parent ends them with it (multiprocessing.Pool.terminate); the parent stops the same way then.
    Ignores positional arguments, to serve as a DataLoader's `worker_init_fn`."""
    for s in STOP_SIGNALS:
        if not (terminable and s == signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


def start_resource_tracker() -> None:
    """Starts multiprocessing's resource tracker (the helper process of spawn pools) with SIGUSR1 blocked, a mask
    its process inherits: it ignores SIGINT and SIGTERM by itself, but would die of a SIGUSR1 sent to the
    whole group and leave tracebacks behind."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _raise_stopped(signum: int, frame) -> None:
    raise Stopped(signum)


@contextmanager
def raising() -> Iterator[None]:
    """Within the block, SIGTERM and SIGUSR1 raise `Stopped` in the main thread, wherever it is, as
    SIGINT raises KeyboardInterrupt; the previous handlers come back afterwards."""
    previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS if s != signal.SIGINT}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
