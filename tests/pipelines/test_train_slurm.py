"""pipelines/train_slurm.sh without Slurm: stand-ins for srun, scontrol and torchrun first on PATH."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

SCRIPT = REPO / "pipelines" / "train_slurm.sh"
TIMEOUT = 60  # generous: only reached when something is wrong

STUBS = {
    # `show hostnames` prints the nodes, one a line; `requeue ID` is recorded.
    "scontrol": """#!/usr/bin/env bash
case "$1" in
    show) printf 'node1\\nnode2\\n' ;;
    requeue) shift; echo "$*" >> "$STUB_DIR/requeue" ;;
esac
""",
    # Drops its own options and runs the rest, as the step's one task.
    "srun": """#!/usr/bin/env bash
while [[ "$1" == --* ]]; do shift; done
exec "$@"
""",
    # The training step: on a signal it saves a checkpoint slowly, then exits 128+signal; otherwise it
    # exits with the status written to the file `finish` once that appears.
    "torchrun": """#!/usr/bin/env bash
stop() {
    echo "$1" >> "$STUB_DIR/signals"
    sleep 1.5
    touch "$STUB_DIR/checkpoint"
    exit "${STOP_STATUS:-$2}"
}
trap 'stop USR1 138' USR1
trap 'stop TERM 143' TERM
printf '%s\\n' "$@" > "$STUB_DIR/torchrun.args"
touch "$STUB_DIR/started"
while [ ! -s "$STUB_DIR/finish" ]; do sleep 0.05; done
exit "$(cat "$STUB_DIR/finish")"
""",
}


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert proc.poll() is None, f"the script exited with status {proc.returncode} before {path.name} appeared"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.fixture
def stubs(tmp_path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def start(stubs: Path, **extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(**extra)
    env.update(
        PATH=f"{stubs / 'bin'}{os.pathsep}{env.get('PATH', '')}", STUB_DIR=str(stubs),
        SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="node[1-2]", SLURM_NNODES="2",
    )
    proc = subprocess.Popen(["bash", str(SCRIPT), "runs/ffhq", "--kimg", "10"], env=env)
    try:
        wait_for(stubs / "started", proc)
    except AssertionError:
        finish(proc, stubs)
        raise
    return proc


def finish(proc: subprocess.Popen, stubs: Path) -> int:
    """The script's exit status; ends the stand-in (and the script) if a test failed half-way."""
    try:
        return proc.wait(timeout=TIMEOUT)
    finally:
        (stubs / "finish").write_text("0")
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_waits_for_the_checkpoint_then_requeues(stubs, sig):
    proc = start(stubs)
    os.kill(proc.pid, sig)
    status = finish(proc, stubs)
    assert (stubs / "checkpoint").exists(), "the script exited while the step was still saving"
    assert status == 128 + sig
    assert (stubs / "signals").read_text().split() == [sig.name.removeprefix("SIG")]
    assert (stubs / "requeue").read_text().splitlines() == ["4242"]


def test_torchrun_reporting_the_signal_as_its_own_failure_still_requeues(stubs):
    """torchrun's agent, signalled with its ranks, exits 1 with a traceback of its own after they have saved."""
    proc = start(stubs, STOP_STATUS="1")
    os.kill(proc.pid, signal.SIGTERM)
    assert finish(proc, stubs) == 1 and (stubs / "checkpoint").exists()
    assert (stubs / "requeue").read_text().splitlines() == ["4242"]


@pytest.mark.parametrize("step_status", [0, 1])
def test_exit_without_signal_passes_the_status_and_does_not_requeue(stubs, step_status):
    proc = start(stubs)
    (stubs / "finish").write_text(str(step_status))
    assert finish(proc, stubs) == step_status
    assert not (stubs / "requeue").exists()
    assert not (stubs / "signals").exists()
    args = (stubs / "torchrun.args").read_text().splitlines()
    assert args == [
        "--nnodes", "2", "--nproc-per-node", "8",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", "node1:29500", "--rdzv-id", "4242",
        "-m", "stylegan_cli", "train", "-r", "runs/ffhq", "--kimg", "10",
    ]
