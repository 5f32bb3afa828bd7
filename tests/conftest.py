"""Shared fixtures: the example photos, a CLI runner, and one prepared run reused across tests."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from stylegan_cli.cli.app import main

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "examples" / "faces-frl"
CIFAR = REPO / "tests" / "assets" / "cifar10"  # 100 CIFAR-10 training images per class, one folder each



def pytest_configure(config) -> None:
    """Under pytest-xdist each worker, and each `sgan` it starts, computes on one thread: the workers already share
    the cores, and more OpenMP threads than cores spin against each other (on 2 cores the quick set took 12.5
    minutes so, 5.5 with one thread each; BENCHMARKS.md)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def sgan(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `python -m stylegan_cli ARGS` as a user would, capturing stdout and stderr."""
    full_env = {k: v for k, v in os.environ.items() if k != "SGAN_RUN"}
    full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "stylegan_cli", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def sgan_here(capsys, *args, stdin: bytes = b"") -> tuple[int, str, str]:
    """Runs the CLI's entry point inside the test process, without an interpreter's start-up (fast,
    for checks that fail early): (exit status, stdout, stderr), with `stdin` as standard input."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def small_stylegan2():
    """A StyleGAN2 skip generator at 32x32 with a 16-dimensional W, so that every direction of W shows in its
    images (in an untrained 512-dimensional W most do not), and noise strengths of 0.1, so that noise shows too:
    a generator in which a projection (StyleGAN2 §5) can find a w again. Returns (G, its network config)."""
    import torch

    from stylegan_cli.model.generator import Generator

    config = {"arch": "stylegan2", "g_arch": "skip", "resolution": 32, "z_dim": 16, "w_dim": 16, "mapping_layers": 2,
              "mapping_width": 16, "fmap_base": 256, "fmap_max": 64}
    torch.manual_seed(0)
    G = Generator(config["arch"], config["resolution"], z_dim=16, w_dim=16, mapping_layers=2, mapping_width=16,
                  fmap_base=256, fmap_max=64, g_arch="skip")
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.strength"):
                p.fill_(0.1)
    return G.eval().requires_grad_(False), config


def prep_position(partial: Path) -> int:
    """How many inputs an unfinished prep has committed (0 before its first commit)."""
    if not (partial / "data.mdb").exists():
        return 0
    env = lmdb.open(str(partial), readonly=True, lock=True)
    try:
        with env.begin() as txn:
            value = txn.get(b"prep/position")
            return int(value) if value is not None else 0
    finally:
        env.close()


def pupils(tem: Path):
    """The hand-placed left and right pupils (image left/right) of a WebMorph .tem file."""
    lines = tem.read_text().split("\n")
    return [tuple(map(float, lines[i].split())) for i in (1, 2)]


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory) -> Path:
    """A fresh sgan user cache (weights, dataset statistics) for the session, in-process and in subprocesses."""
    path = tmp_path_factory.mktemp("sgan-cache")
    os.environ["SGAN_CACHE"] = str(path)
    return path


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


@pytest.fixture(scope="session")
def trained(prepped) -> Path:
    """The prepped run after a tiny progressive training at 16x16 (8x8 then 16x16), so that
    it has a checkpoint for the synthesis stages; 4 style layers per resolution pair, 6 in all."""
    result = sgan("train", "-r", prepped, "--resolution", 16, "--fmap-base", 128, "--fmap-max", 32, "--kimg", 0.128,
                  "--lod-kimg", 0.032, "--batch", 8, "--workers", 0, "--snap", 1)
    assert result.returncode == 0, result.stderr
    return prepped
