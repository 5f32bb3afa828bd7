"""Shared fixtures: the example photos, a CLI runner, and one prepared run reused across tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "examples" / "faces-frl"


def sgan(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `python -m stylegan_cli ARGS` as a user would, capturing stdout and stderr."""
    full_env = {k: v for k, v in os.environ.items() if k != "SGAN_RUN"}
    full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "stylegan_cli", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def pupils(tem: Path):
    """The hand-placed left and right pupils (image left/right) of a WebMorph .tem file."""
    lines = tem.read_text().split("\n")
    return [tuple(map(float, lines[i].split())) for i in (1, 2)]


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return FACES


@pytest.fixture(scope="session")
def prepped(tmp_path_factory) -> Path:
    """A run directory where `sgan prep ffhq --landmarks dlib --resolution 64` ran on the 8 example photos."""
    run = tmp_path_factory.mktemp("prepped")
    result = sgan("prep", "ffhq", "--src", FACES, "-r", run, "--landmarks", "dlib", "--resolution", 64,
                  "--workers", 1)
    assert result.returncode == 0, result.stderr
    return run
