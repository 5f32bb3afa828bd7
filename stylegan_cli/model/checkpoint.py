"""Checkpoints (docs/design.md §3, §11): RUN/checkpoints/ckpt-KKKKKKK.pt holding the full training state.

A checkpoint is a plain dictionary of tensors, numbers, strings and lists, written with
`torch.save` under a temporary name and renamed; `latest` is a symlink to the newest complete one,
replaced atomically. Loading never runs code from the file (`torch.load(weights_only=True)`).
The training configuration stored in it ("config") rebuilds its networks (nanoGPT's way): the
keys in NETWORK_KEYS decide their shapes.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from stylegan_cli import __version__
from stylegan_cli.core import rundir
from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.model.discriminator import Discriminator
from stylegan_cli.model.generator import Generator

FORMAT = "sgan-checkpoint"
VERSION = 1
# The config fields that shape the networks, with the value a checkpoint written before a field existed means.
NETWORK_DEFAULTS = {"g_arch": "orig", "d_arch": "orig", "z_dim": 512, "w_dim": 512, "mapping_layers": 8,
                    "mapping_width": 512}
NETWORK_KEYS = ("arch", "resolution", "fmap_base", "fmap_max", *NETWORK_DEFAULTS)
_NAME = re.compile(r"ckpt-(\d{7})\.pt$")


def header() -> dict:
    """The fields that open every checkpoint: what the file is, and which sgan wrote it."""
    return {"format": FORMAT, "version": VERSION, "sgan_version": __version__}


def network_config(config: dict) -> dict:
    """The NETWORK_KEYS of a stored (or new) training configuration, defaults filled in for old files."""
    return {k: config.get(k, NETWORK_DEFAULTS.get(k)) for k in NETWORK_KEYS}


def build_generator(config: dict) -> Generator:
    """The generator a stored training configuration describes (untrained weights)."""
    net = network_config(config)
    return Generator(net["arch"], net["resolution"], z_dim=net["z_dim"], w_dim=net["w_dim"],
                     mapping_layers=net["mapping_layers"], mapping_width=net["mapping_width"],
                     fmap_base=net["fmap_base"], fmap_max=net["fmap_max"], g_arch=net["g_arch"])


def build_discriminator(config: dict) -> Discriminator:
    net = network_config(config)
    return Discriminator(net["resolution"], fmap_base=net["fmap_base"], fmap_max=net["fmap_max"],
                         d_arch=net["d_arch"], blur=net["arch"] != "pggan")


def save(run_dir: Path, state: dict, kimg: int, keep: int | None = None) -> Path:
    """Writes `state` as ckpt-<kimg>.pt, points `latest` at it, and keeps the newest `keep`."""
    folder = rundir.checkpoints_dir(run_dir)
    path = folder / f"ckpt-{kimg:07d}.pt"
    with rundir.atomic_path(path) as tmp:
        torch.save(state, tmp)
    link_tmp = folder / ".latest.tmp"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(path.name)
    os.replace(link_tmp, folder / "latest")
    if keep is not None:
        for old in sorted(folder.glob("ckpt-*.pt"))[:-keep]:
            if old != path:
                old.unlink()
    return path


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None when it has none."""
    folder = rundir.checkpoints_dir(run_dir)
    link = folder / "latest"
    if link.exists():
        return link.resolve()
    found = sorted(p for p in folder.glob("ckpt-*.pt") if _NAME.search(p.name)) if folder.is_dir() else []
    return found[-1] if found else None


def resolve(run_dir: Path, ckpt: Path | None) -> Path:
    """`--ckpt` if given (checked), else the run's newest checkpoint."""
    if ckpt is not None:
        if not ckpt.is_file():
            raise UsageError(f"No checkpoint file at {ckpt}.")
        return ckpt
    found = latest(run_dir)
    if found is None:
        raise UsageError(f"{run_dir} has no checkpoint yet; run `sgan train` first or pass --ckpt.")
    return found


def load(path: Path, device: torch.device | str = "cpu") -> dict:
    """Reads a checkpoint without executing anything from it."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise SganError(f"Cannot read the checkpoint {path}: it is corrupt or not an sgan checkpoint "
                        f"({type(e).__name__}).") from e


def load_training_state(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint that `sgan train` wrote, checked to be one."""
    state = load(path, device)
    if not isinstance(state, dict) or state.get("format") != FORMAT or "G_ema" not in state:
        raise SganError(f"{path} is not an sgan training checkpoint.")
    return state
