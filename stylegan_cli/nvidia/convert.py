"""`sgan import`: one of NVIDIA's published network pickles as the first checkpoint of a run (docs/design.md §12).

The file's format is told from its content: a (G, D, Gs) tuple of TensorFlow networks (Progressive
GAN, StyleGAN, StyleGAN2) or a dict of PyTorch persistence objects (StyleGAN2-ADA, the StyleGAN3
repository's StyleGAN2). Nothing in it is run (`unpickler.py`). The checkpoint holds G, the moving
average G_ema (the network people render with), D when the file has one sgan can represent, w_avg and
the file's constant noise images, and a training configuration that rebuilds the networks; it has no
optimiser state, so `sgan train` fine-tunes from it with fresh optimisers, counting kimg from 0.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from stylegan_cli.core import rundir
from stylegan_cli.core.errors import UsageError
from stylegan_cli.model import checkpoint
from stylegan_cli.nvidia import tf_pickles, torch_pickles
from stylegan_cli.nvidia.networks import Converted, NotRepresentable
from stylegan_cli.nvidia.unpickler import PersistentObject, TFNetwork, load
from stylegan_cli.training.config import TrainConfig


def read(path: Path) -> Converted:
    """The networks of an NVIDIA pickle, converted (one-sentence SganError for anything else)."""
    data = load(path)
    what = str(path)
    try:
        if isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetwork) for n in data):
            return tf_pickles.convert(data, what)
        if isinstance(data, dict) and any(isinstance(v, PersistentObject) for v in data.values()):
            return torch_pickles.convert(data, what)
    except KeyError as e:
        raise NotRepresentable(f"{what} lacks the tensor {e}, which its layout needs.") from None
    raise NotRepresentable(f"{what} is a pickle, but not of NVIDIA's networks: it holds {_describe(data)}.")


def _describe(data) -> str:
    if isinstance(data, dict):
        return "a dict of " + (", ".join(map(str, list(data)[:5])) or "nothing")
    if isinstance(data, (tuple, list)):
        return f"a {type(data).__name__} of {len(data)} items"
    return f"a {type(data).__name__}"


def already_imported(run_dir: Path, digest: str) -> Path | None:
    """The run's checkpoint that an earlier `sgan import` of the same file wrote, if that is all the run has;
    UsageError when the run has other checkpoints (importing would mix two networks' histories)."""
    found = checkpoint.latest(run_dir)
    if found is None:
        return None
    state = checkpoint.load(found)
    if isinstance(state, dict) and (state.get("imported") or {}).get("sha256") == digest and state.get("nimg") == 0:
        return found
    raise UsageError(f"{run_dir} already has checkpoints (the newest is {found}); import into a new run directory.")


def write_checkpoint(run_dir: Path, converted: Converted, source: Path, digest: str) -> Path:
    """The converted networks as RUN/checkpoints/ckpt-0000000.pt, with a configuration that every stage reads and
    `sgan train` continues from (full resolution, no growing: the network is finished)."""
    config = TrainConfig(**converted.network, progressive=False, data=str(rundir.dataset_path(run_dir).resolve()))
    state = {
        **checkpoint.header(),
        "config": asdict(config), "nimg": 0, "step": 0, "resolution": config.resolution, "alpha": 1.0,
        "G": converted.G, "G_ema": converted.G_ema,
        **({"D": converted.D} if converted.D is not None else {}),
        "imported": {"file": source.name, "sha256": digest, "format": converted.format, "notes": converted.notes},
    }
    return checkpoint.save(run_dir, state, kimg=0)

