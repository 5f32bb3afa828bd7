"""Latent inputs of the synthesis stages (docs/design.md §2): seeds, `.npz` files, or an `.npz` on stdin,
and the `.npz` latents files the stages write (docs/design.md §11).

A seed s stands for z = N(0, I) drawn by `numpy.random.RandomState(s)`, the convention of NVIDIA's
scripts, so seed 7 is the same face here as there. An `.npz` holds `z` and/or `w` arrays (N, dim),
optionally `seeds` (N,) or `names` (N,) to label its rows, `labels` (N,) the class each row was rendered as by a
class-conditional network, and noise maps `noise0`, `noise1`, ...
(N, r, r), one per noise input of the generator, where a row's image needs its own noise (a
projection's, `sgan project`); `file.npz:3` picks row 3. `-` reads stdin: either an `.npz` itself, or the
paths another stage printed, among which the first `.npz` is taken, so that
`sgan sample --save-latents | sgan mix --coarse - --fine 5` works.
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core import rundir
from stylegan_cli.core.errors import UsageError

_RANGE = re.compile(r"^(-?\d+)(?:-(\d+))?$")
_NOISE = re.compile(r"noise(\d+)")
_FILE_NAME = re.compile(r"[\w-][\w.-]{0,199}")


def parse_seeds(text: str) -> list[int]:
    """'0-63', '1,5,9', '0-3,10' -> the seeds in order (duplicates kept)."""
    seeds: list[int] = []
    for part in text.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise UsageError(f"{text!r} is not a list of seeds like 0-63, 1,5,9 or 0-3,10.")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if lo < 0 or hi < lo or hi >= 2**32:
            raise UsageError(f"The seed range {part.strip()!r} must run upwards from 0 to at most {2**32 - 1}.")
        seeds.extend(range(lo, hi + 1))
    return seeds


def parse_floats(text: str, name: str) -> list[float]:
    """'-1,-0.5,0,0.7' -> [-1.0, -0.5, 0.0, 0.7]."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{name} {text!r} is not a comma-separated list of numbers.") from None
    return values


def z_from_seed(seed: int, z_dim: int) -> np.ndarray:
    return np.random.RandomState(seed).randn(z_dim)


@dataclass
class Latent:
    """One latent input: a z, a w, or both, a label for file names, its seed when it has one, and the noise
    maps its image is rendered with when it carries its own (a projection's), and for a class-conditional network
    the class its z is mapped with."""

    label: str
    z: np.ndarray | None = None  # (z_dim,)
    w: np.ndarray | None = None  # (w_dim,) or (num_ws, w_dim)
    seed: int | None = None
    noise: list[np.ndarray] | None = None  # one (r, r) float32 map per noise input, coarse to fine
    cls: int | None = None  # the class label, for a class-conditional network


def seed_latent(seed: int, z_dim: int) -> Latent:
    return Latent(label=f"seed{seed:04d}", z=z_from_seed(seed, z_dim), seed=seed)


def parse_latents(text: str, z_dim: int, stdin=None) -> list[Latent]:
    """A latent spec: seeds, `file.npz`, `file.npz:i` or `-` (see the module docstring)."""
    if text == "-":
        return _from_npz(_read_stdin(stdin or sys.stdin), "stdin", None)
    if text.endswith(".npz") or ".npz:" in text:
        path_text, _, index = text.partition(".npz")
        path = Path(path_text + ".npz")
        if not path.is_file():
            raise UsageError(f"No latents file at {path}.")
        row = None
        if index:
            if not re.fullmatch(r":\d+", index):
                raise UsageError(f"{text!r}: write file.npz:N to pick row N.")
            row = int(index[1:])
        return _from_npz(path.read_bytes(), path.name, row)
    return [seed_latent(s, z_dim) for s in parse_seeds(text)]


def _read_stdin(stream) -> bytes:
    if getattr(stream, "isatty", lambda: False)():
        raise UsageError("'-' reads latents from stdin, but stdin is a terminal; pipe an .npz or its path in.")
    data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    if isinstance(data, str):
        data = data.encode()
    if data[:2] == b"PK":  # an .npz is a zip archive
        return data
    for line in data.decode(errors="replace").splitlines():
        if line.strip().endswith(".npz") and Path(line.strip()).is_file():
            return Path(line.strip()).read_bytes()
    raise UsageError("stdin holds neither an .npz nor the path of one.")


def _from_npz(data: bytes, name: str, row: int | None) -> list[Latent]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise UsageError(f"{name} is not a readable .npz file ({e}).") from None
    z, w = arrays.get("z"), arrays.get("w")
    if z is None and w is None:
        raise UsageError(f"{name} holds neither a z nor a w array (it has: {', '.join(arrays) or 'nothing'}).")
    n = len(z) if z is not None else len(w)
    seeds, names, labels = arrays.get("seeds"), arrays.get("names"), arrays.get("labels")
    if labels is not None and (labels.shape != (n,) or labels.dtype.kind not in "iu" or (labels < 0).any()):
        raise UsageError(f"{name}: its labels must be {n} class numbers, one per row.")
    noise = [arrays[k] for k in sorted((k for k in arrays if _NOISE.fullmatch(k)), key=lambda k: int(k[5:]))]
    if any(maps.ndim != 3 or len(maps) != n for maps in noise):
        raise UsageError(f"{name}: its noise maps must be (N, r, r) arrays with one map per row ({n}).")
    rows = range(n) if row is None else [row]
    if row is not None and not 0 <= row < n:
        raise UsageError(f"{name} has {n} latents; index {row} is out of range.")

    def label(i: int) -> str:  # a label names files: a stored name only where it is a plain file name
        if seeds is not None:
            return f"seed{int(seeds[i]):04d}"
        if names is not None and _FILE_NAME.fullmatch(str(names[i])):
            return str(names[i])
        return f"{Path(name).stem}-{i}"

    return [Latent(label=label(i),
                   z=None if z is None else np.asarray(z[i], np.float64),
                   w=None if w is None else np.asarray(w[i], np.float32),
                   seed=None if seeds is None else int(seeds[i]),
                   noise=[np.asarray(maps[i], np.float32) for maps in noise] or None,
                   cls=None if labels is None else int(labels[i])) for i in rows]


def save_latents(path: Path, latents: list[Latent], ws: torch.Tensor, names: bool = False) -> Path:
    """An .npz with w (N, num_ws, w_dim), z (N, z_dim) where every latent had one, seeds where every
    latent had one, noise0, noise1, ... (N, r, r) where every latent carries its noise maps, labels where every
    latent has a class, and with `names` each latent's label: what `file.npz[:i]` and `-` read back."""
    arrays = {"w": ws.cpu().numpy().astype(np.float32)}
    if all(latent.z is not None for latent in latents):
        arrays["z"] = np.stack([latent.z for latent in latents]).astype(np.float64)
    if all(latent.seed is not None for latent in latents):
        arrays["seeds"] = np.array([latent.seed for latent in latents], np.int64)
    if latents and all(latent.noise is not None for latent in latents):
        arrays.update({f"noise{i}": np.stack(maps).astype(np.float32)
                       for i, maps in enumerate(zip(*(latent.noise for latent in latents)))})
    if latents and all(latent.cls is not None for latent in latents):
        arrays["labels"] = np.array([latent.cls for latent in latents], np.int64)
    if names:
        arrays["names"] = np.array([latent.label for latent in latents])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return rundir.write_bytes(path, buf.getvalue())
