"""Checkpoints (docs/design.md §3, §11): RUN/checkpoints/ckpt-KKKKKKK.pt holding the full training state.

A checkpoint is a plain dictionary of tensors, numbers, strings and lists, written with
`torch.save` under a temporary name and renamed; `latest` is a symlink to the newest complete one,
replaced atomically. Loading never runs code from the file (`torch.load(weights_only=True)`).
The training configuration stored in it ("config") rebuilds its networks (nanoGPT's way): the
keys in NETWORK_KEYS decide their shapes.
"""

from __future__ import annotations

import contextlib
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
# 2: StyleGAN2 layers store their biases as NVIDIA's do (`_upgrade` reads version 1); 3: stylegan2's original
# design is built from StyleGAN2's layers (before, StyleGAN's resampling: `_upgrade` refuses those files).
VERSION = 3
# The config fields that shape the networks, with the value a checkpoint written before a field existed means.
NETWORK_DEFAULTS = {"g_arch": "orig", "d_arch": "orig", "z_dim": 512, "w_dim": 512, "mapping_layers": 8,
                    "mapping_width": 512, "c_dim": 0, "d_mapping_layers": 8}
NETWORK_KEYS = ("arch", "resolution", "fmap_base", "fmap_max", *NETWORK_DEFAULTS, "layer_noise")
_NAME = re.compile(r"ckpt-(\d{7})\.pt$")


def header() -> dict:
    """The fields that open every checkpoint: what the file is, and which sgan wrote it."""
    return {"format": FORMAT, "version": VERSION, "sgan_version": __version__}


def network_config(config: dict) -> dict:
    """The NETWORK_KEYS of a stored (or new) training configuration, defaults filled in for old files (which
    had one noise strength per layer in the skip and resnet generators only)."""
    net = {k: config.get(k, NETWORK_DEFAULTS.get(k)) for k in NETWORK_KEYS}
    if net["layer_noise"] is None:
        net["layer_noise"] = net["g_arch"] != "orig"
    return net


def build_generator(config: dict) -> Generator:
    """The generator a stored training configuration describes (untrained weights)."""
    net = network_config(config)
    return Generator(net["arch"], net["resolution"], z_dim=net["z_dim"], w_dim=net["w_dim"],
                     mapping_layers=net["mapping_layers"], mapping_width=net["mapping_width"],
                     fmap_base=net["fmap_base"], fmap_max=net["fmap_max"], g_arch=net["g_arch"],
                     layer_noise=net["layer_noise"], c_dim=net["c_dim"])


def build_discriminator(config: dict) -> Discriminator:
    net = network_config(config)
    return Discriminator(net["resolution"], fmap_base=net["fmap_base"], fmap_max=net["fmap_max"],
                         d_arch=net["d_arch"], arch=net["arch"], c_dim=net["c_dim"],
                         mapping_layers=net["d_mapping_layers"])


def save(run_dir: Path, state: dict, kimg: int, keep: int | None = None) -> Path:
    """Writes `state` as ckpt-<kimg>.pt (fsynced), points `latest` at it, and keeps the newest `keep`.

    A failed write (a full disk, no permission, a read-only file system, a vanished folder, or any
    other failure of torch.save) is one SganError sentence naming the file and the cause, and
    leaves no temporary file; `latest` moves only after a complete save, so it still points at the
    previous checkpoint."""

    def tensor_bytes(obj) -> int:  # what the state needs on disk, near enough (the tensors dominate)
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size()
        if isinstance(obj, dict):
            return sum(tensor_bytes(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return sum(tensor_bytes(v) for v in obj)
        return 0

    folder = rundir.checkpoints_dir(run_dir)
    path = folder / f"ckpt-{kimg:07d}.pt"
    needed = tensor_bytes(state)
    try:
        with rundir.atomic_path(path, needed=needed) as tmp:
            with open(tmp, "wb") as f:  # a file object, so a failed write keeps its errno (as the context)
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
    except RuntimeError as e:  # torch.save's own failures carry no errno: write_error weighs free space vs needed
        raise rundir.write_error(path, e, needed) from e
    _point_latest(folder, path)
    if keep is not None:
        for old in sorted(folder.glob("ckpt-*.pt"))[:-keep]:
            if old != path:
                old.unlink()
    return path


def _point_latest(folder: Path, path: Path) -> None:
    """Makes `folder/latest` a relative link to `path`, replaced atomically (a new link renamed over it); a
    failure is one sentence, with the temporary link removed."""
    link_tmp = folder / ".latest.tmp"
    try:
        if link_tmp.is_symlink() or link_tmp.exists():
            link_tmp.unlink()
        link_tmp.symlink_to(path.name)
        os.replace(link_tmp, folder / "latest")
    except OSError as e:
        with contextlib.suppress(OSError):
            link_tmp.unlink()
        raise rundir.write_error(folder / "latest", e) from e


def _all(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    folder = rundir.checkpoints_dir(run_dir)
    return sorted(p for p in folder.glob("ckpt-*.pt") if _NAME.search(p.name)) if folder.is_dir() else []


def newest_readable(run_dir: Path, device: torch.device | str = "cpu",
                    set_aside: bool = True) -> tuple[Path | None, dict | None, list[tuple[str, Path]]]:
    """The newest checkpoint that loads, its state, and for each newer one that did not, why, and where it is
    now. With `set_aside` (and a readable one found), those are renamed NAME.damaged, never deleted, and
    `latest` points at the one found, so training continues from it; otherwise nothing is changed."""
    unreadable = []
    for path in reversed(_all(run_dir)):
        try:
            state = load_training_state(path, device)
        except UsageError:
            raise  # readable, but from an sgan that cannot continue it: nothing to set aside
        except SganError as e:
            unreadable.append((str(e), path))
            continue
        if set_aside and unreadable:
            unreadable = [(reason, _set_aside(p)) for reason, p in unreadable]
            _point_latest(path.parent, path)
        return path, state, unreadable
    return None, None, unreadable


def _set_aside(path: Path) -> Path:
    """Renames a damaged file NAME.damaged (NAME.damaged2, ... if taken) and returns the new name."""
    aside, n = path.with_name(path.name + ".damaged"), 2
    while aside.exists():
        aside, n = path.with_name(f"{path.name}.damaged{n}"), n + 1
    with contextlib.suppress(FileNotFoundError):  # another rank set it aside first
        os.replace(path, aside)
    return aside


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None when it has none."""
    folder = rundir.checkpoints_dir(run_dir)
    link = folder / "latest"
    if link.exists():
        return link.resolve()
    found = _all(run_dir)
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
    return _upgrade(state, path)


def _upgrade(state: dict, path: Path) -> dict:
    """An older state in this version's terms. Version 1 stored the bias of each layer whose gain follows its
    bias (StyleGAN2's, model/layers.py `gain_after_bias`) multiplied by that gain; version 2 stores it as
    NVIDIA's networks do, and the layer multiplies it by the gain. Before version 3, stylegan2's original design
    resampled as StyleGAN does (bilinear [1,2,1], a D with folded gains) where StyleGAN2's code uses its own
    layers: such weights compute other images in today's networks, so they are refused (UsageError)."""
    version = state.get("version", 1)
    net = network_config(state["config"])
    if version < 3 and net["arch"] == "stylegan2" and "orig" in (net["g_arch"], net["d_arch"]):
        raise UsageError(f"{path} holds stylegan2 networks of the original design from sgan before checkpoint "
                         f"version 3, which resampled as StyleGAN does; today's are StyleGAN2's own and cannot "
                         f"continue them: train again, or use the sgan release that wrote it.")
    if version >= 2:
        state["version"] = VERSION
        return state
    G = build_generator(state["config"])  # G_ema has G's layers: built once
    nets = {"G": G, "G_ema": G, "D": build_discriminator(state["config"])}
    for key, net in nets.items():
        if key not in state:
            continue
        for name, module in net.named_modules():
            gain = getattr(module, "bias_gain", 1.0)
            if gain != 1.0 and module.bias is not None:
                state[key][f"{name}.bias"] = state[key][f"{name}.bias"] / gain
    state["version"] = VERSION
    return state
