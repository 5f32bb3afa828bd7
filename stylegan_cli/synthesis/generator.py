"""The generator every synthesis stage and `sgan metrics` render with (docs/design.md §3, §11).

Stages read the moving-average generator (`G_ema`) of the run's newest checkpoint unless `--ckpt`
names another. Its w average is the one tracked in training, or the one `sgan truncate
--compute-avg` stored beside the checkpoint (`<ckpt>.w_avg.npy`, see `synthesis/truncation.py`).
A class-conditional generator given `--class` renders that class, and its w average is then the class's
own: the mean w of CLASS_AVG_SAMPLES latents mapped with its label (docs/design.md §15).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core.console import progress
from stylegan_cli.core.device import default_device
from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.data.labels import class_index
from stylegan_cli.model import checkpoint
from stylegan_cli.model.generator import Generator

AVG_SEED = 0
AVG_BATCH = 4096  # z per mapping pass: the mapping network is cheap, so larger than --batch
CLASS_AVG_SAMPLES = 10_000


def estimate_w_avg(G: Generator, samples: int) -> torch.Tensor:
    """The mean of w = f(z) over `samples` z ~ N(0, I) drawn from seed AVG_SEED (StyleGAN App. B's
    centre of mass of W; a bound class's own centre), accumulated in float64."""
    device = G.w_avg.device
    generator = torch.Generator().manual_seed(AVG_SEED)
    total = torch.zeros(G.w_dim, dtype=torch.float64, device=device)
    with torch.no_grad(), progress("w_avg", samples) as bar:
        for start in range(0, samples, AVG_BATCH):
            n = min(AVG_BATCH, samples - start)
            z = torch.randn(n, G.z_dim, generator=generator).to(device)
            total += G.mapping(z).double().sum(dim=0)
            bar.advance(n)
    return (total / samples).float()


def class_names(config: dict) -> list[str]:
    """The names of a stored configuration's classes, by label: the dataset's, or their numbers (an imported
    network's); [] for an unconditional one."""
    c_dim = config.get("c_dim", 0)
    return list(config.get("class_names") or []) or [str(k) for k in range(c_dim)]


def class_folder(config: dict, label: int) -> str:
    """The folder name of a class's outputs: its name where that is a plain file name, else class<label>."""
    name = class_names(config)[label]
    return name if re.fullmatch(r"[\w-][\w.-]{0,99}", name) and not name.isdigit() else f"class{label}"


def w_avg_path(ckpt: Path) -> Path:
    """Where a re-estimated centre of mass of W lies beside its checkpoint: `<ckpt>.w_avg.npy`."""
    return ckpt.with_name(ckpt.name + ".w_avg.npy")


@dataclass
class Loaded:
    G: Generator
    ckpt: Path
    kimg: float
    device: torch.device
    label: int | None  # the class it renders (--class), for a class-conditional generator
    config: dict  # the training configuration (train.TrainConfig as a dict)
    resolution: int  # the resolution and fade-in training had reached
    alpha: float


def load_generator(run_dir: Path, ckpt: Path | None, label: str | None = None) -> Loaded:
    """The moving-average generator of `--ckpt` or the run's newest checkpoint, ready to run; `label`: --class, an
    index or a name, which a class-conditional generator is bound to (and an unconditional one refuses)."""
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
    G = G.eval().requires_grad_(False).to(device)
    names, k = class_names(cfg), None
    if label is not None:
        if not names:
            raise UsageError(f"{path} holds an unconditional network; leave out --class.")
        k = class_index(label, names)
        G.bind_class(k)
        G.w_avg.copy_(estimate_w_avg(G, CLASS_AVG_SAMPLES))
    return Loaded(G=G, ckpt=path, kimg=state["nimg"] / 1000, device=device, label=k, config=cfg,
                  resolution=int(state.get("resolution", G.resolution)), alpha=float(state.get("alpha", 1.0)))
