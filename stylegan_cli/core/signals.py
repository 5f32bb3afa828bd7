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

# The signals that stop a stage at a safe point: Ctrl-C, the usual kill, and Slurm's warning before preemption.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class Stopped(SystemExit):
    """Signal `signum` stopped the stage; the process exits 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


# What a stop signal raises in the main thread: Python's own for SIGINT, `Stopped` (in `raising()`) for the others.
INTERRUPTS = (KeyboardInterrupt, Stopped)


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
