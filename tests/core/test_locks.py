"""One writer per part of a run (docs/design.md §2, core/locks.py): a second writer is refused at once with the
holder's name, readers are never blocked, and the lock of a killed holder is free again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, sgan

from stylegan_cli.model import checkpoint

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
TINY = ["--resolution", 16, "--fmap-base", 128, "--fmap-max", 32, "--batch", 8, "--workers", 0]
HOLD = ("import sys; from pathlib import Path; from stylegan_cli.core import locks; "
        "locks.hold(Path(sys.argv[1]) / sys.argv[2]); print('held', flush=True); sys.stdin.read()")


def holder(run: Path, part: str = "checkpoints") -> subprocess.Popen:
    """A process that takes the lock on the folder `part` of the run and keeps it until its stdin closes or it
    is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run), part], env=ENV, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line == "held\n", proc.stderr.read()
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holders_lock_is_free(tmp_path):
    first = holder(tmp_path)
    second = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path), "checkpoints"], env=ENV, capture_output=True,
                            text=True, timeout=60)
    assert second.returncode != 0 and "LockedError" in second.stderr
    assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr and "since" in second.stderr
    other_part = holder(tmp_path, "samples")  # another part of the same run is not blocked
    other_part.kill()
    first.kill()  # as `kill -9` or a crashed node: no chance to clean up
    first.wait()
    takeover = holder(tmp_path)
    takeover.stdin.close()
    assert takeover.wait(timeout=60) == 0


@pytest.mark.slow
def test_two_trainings_of_one_run_the_second_refused_at_once_readers_never_blocked(tmp_path, prepped):
    run = tmp_path / "run"
    args = ["train", "-r", run, "--data", prepped / "data" / "dataset.lmdb", *TINY, "--snap", 0.008]
    first = subprocess.Popen([sys.executable, "-m", "stylegan_cli", *map(str, args), "--kimg", "1000"], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while checkpoint.latest(run) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpoint.latest(run) is not None
        second = sgan(*args, "--kimg", 1000, timeout=120)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        message = second.stderr.strip().splitlines()[-1]
        assert message.startswith(f"sgan: Another sgan is writing into {run.absolute()}/checkpoints")
        assert f"pid {first.pid}" in message
        assert "sgan train" in message
        reader = sgan("sample", "-r", run, "--seeds", "0-1")  # reads the newest complete checkpoint meanwhile
        assert reader.returncode == 0, reader.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    reached = checkpoint.load(checkpoint.latest(run))["nimg"]
    after = sgan(*args, "--kimg", reached / 1000 + 0.016)
    assert after.returncode == 0 and "Resuming from" in after.stderr, after.stderr


def test_every_writing_stage_takes_its_part_and_says_so(tmp_path, trained):
    """A synthesis stage refuses to write into a folder another one is writing."""
    with_lock = holder(trained, "samples")
    try:
        refused = sgan("sample", "-r", trained, "--seeds", "0")
        assert refused.returncode == 1 and f"writing into {trained.absolute()}/samples" in refused.stderr
        other = sgan("mix", "-r", trained, "--coarse", "1", "--fine", "2")
        assert other.returncode == 0, other.stderr
    finally:
        with_lock.kill()
        with_lock.wait()


@pytest.mark.parametrize("part", ["checkpoints", "data"])
def test_the_lock_file_says_who_holds_it(tmp_path, part):
    proc = holder(tmp_path, part)
    try:
        text = (tmp_path / ".locks" / f"{part}.lock").read_text()
        assert f'"pid": {proc.pid}' in text and '"host"' in text and '"since"' in text
    finally:
        proc.kill()
        proc.wait()
