"""The generator every synthesis stage and `sgan metrics` render with (docs/design.md §3, §11).

Stages read the moving-average generator (`G_ema`) of the run's newest checkpoint unless `--ckpt`
names another. Its w average is the one tracked in training, or the one `sgan truncate
--compute-avg` stored beside the checkpoint (`<ckpt>.w_avg.npy`, see `synthesis/truncation.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core.device import default_device
from stylegan_cli.core.errors import SganError
from stylegan_cli.model import checkpoint
from stylegan_cli.model.generator import Generator


def w_avg_path(ckpt: Path) -> Path:
    """Where a re-estimated centre of mass of W lies beside its checkpoint: `<ckpt>.w_avg.npy`."""
    return ckpt.with_name(ckpt.name + ".w_avg.npy")


@dataclass
class Loaded:
    G: Generator
    ckpt: Path
    kimg: float
    device: torch.device
    config: dict  # the training configuration (train.TrainConfig as a dict)
    resolution: int  # the resolution and fade-in training had reached
    alpha: float


def load_generator(run_dir: Path, ckpt: Path | None) -> Loaded:
    """The moving-average generator of `--ckpt` or the run's newest checkpoint, ready to run."""
    path = checkpoint.resolve(run_dir, ckpt)
    try:
        state = checkpoint.load_training_state(path)
    except SganError as e:
        found = checkpoint.newest_readable(run_dir, set_aside=False)[0] if ckpt is None else None
        if found is None:
            raise
        raise SganError(f"{str(e).rstrip('.')}; the newest readable checkpoint is {found}: pass --ckpt {found}, or "
                        f"run `sgan train`, which sets the damaged file aside and continues from it.") from None
    cfg = state["config"]
    G = checkpoint.build_generator(cfg)
    try:
        G.load_state_dict(state["G_ema"])
    except RuntimeError as e:
        raise SganError(f"{path} does not match the network its configuration describes ({e}).") from None
    side = w_avg_path(path)
    if side.is_file():
        G.w_avg.copy_(torch.from_numpy(np.load(side, allow_pickle=False)))
    device = default_device()
    return Loaded(G=G.eval().requires_grad_(False).to(device), ckpt=path, kimg=state["nimg"] / 1000, device=device,
                  config=cfg, resolution=int(state.get("resolution", G.resolution)),
                  alpha=float(state.get("alpha", 1.0)))
