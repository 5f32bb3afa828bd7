"""The image sets metrics compare, as uint8 batches: a dataset level, a folder of images, a generator;
and a generator fixed at one resolution and fade, which PPL and linear separability sample from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylegan_cli.core import rundir, signals
from stylegan_cli.core.device import autocast
from stylegan_cli.core.errors import UsageError
from stylegan_cli.data.dataset import Dataset, LevelImages
from stylegan_cli.data.images import Rejected, list_images, load_rgb
from stylegan_cli.model.generator import Generator
from stylegan_cli.synthesis.images import quantize

MAX_REAL = 50_000  # real images per dataset statistic (StyleGAN's fid50k draws 50k reals)


class ImageSet:
    """Images as uint8 (N, 3, R, R) batches: `size`, `count` (None: endless), `cache_key` (None: not cached)."""

    description: str
    size: int
    count: int | None
    cache_key: str | None = None

    def batches(self, n: int, batch: int) -> Iterator[torch.Tensor]:
        raise NotImplementedError


class DatasetImages(ImageSet):
    """One level of an sgan LMDB; the first MAX_REAL images of a seeded permutation when larger."""

    def __init__(self, dataset: Dataset, res: int, workers: int):
        if res not in dataset.resolutions:
            raise UsageError(f"The dataset {dataset.path} has no {res}x{res} level.")
        self.dataset, self.size, self.workers = dataset, res, workers
        self.count = len(dataset)
        self.description = f"{dataset.path} at {res}x{res}"
        self.cache_key = f"{dataset.meta['fingerprint']}-{res}"

    def batches(self, n: int, batch: int) -> Iterator[torch.Tensor]:
        order = np.arange(self.count) if self.count <= MAX_REAL else \
            np.random.default_rng(0).permutation(self.count)[:MAX_REAL]
        items = [(int(i), False) for i in order[:n]]
        yield from torch.utils.data.DataLoader(LevelImages(self.dataset, self.size), batch_size=batch,
                                               sampler=items, num_workers=self.workers,
                                               worker_init_fn=signals.leave_to_parent)


class FolderImages(ImageSet):
    """Every image under a folder, all of one square size (checked from the headers up front)."""

    def __init__(self, path: Path):
        self.paths = list_images(path)
        if not self.paths:
            raise UsageError(f"{path} holds no images.")
        sizes = {}
        for p in self.paths:
            try:
                with Image.open(p) as img:
                    sizes.setdefault(img.size, p)
            except (OSError, Image.DecompressionBombError) as e:
                raise UsageError(f"{p} cannot be read as an image ({e}).") from None
            if len(sizes) > 1:
                (a, first), (b, other) = sizes.items()
                raise UsageError(f"{other} is {b[0]}x{b[1]}, unlike the {a[0]}x{a[1]} of {first}; "
                                 f"a set must have one size.")
        (width, height), = sizes
        if width != height:
            raise UsageError(f"The images in {path} are {width}x{height}; metrics compare square images.")
        self.size, self.count = width, len(self.paths)
        self.description = f"{path} ({self.count} images)"

    def batches(self, n: int, batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, min(n, self.count), batch):
            images = []
            for path in self.paths[start : min(start + batch, n)]:
                try:
                    img = load_rgb(path)
                except Rejected as e:
                    raise UsageError(f"{path} cannot be used ({e}).") from None
                images.append(torch.from_numpy(img).permute(2, 0, 1))
            yield torch.stack(images)


def draw_labels(G: Generator, labels: np.ndarray | None, n: int, gen: torch.Generator) -> torch.Tensor | None:
    """(n, c_dim) one-hot labels for a class-conditional G, each that of a random real image (`labels`, the
    dataset's), as NVIDIA's metrics draw them; None for an unconditional G."""
    if not G.c_dim:
        return None
    if labels is None:
        raise UsageError(f"This network is class-conditional ({G.c_dim} classes) and its metrics draw the labels of "
                         f"generated images from the dataset's, but the dataset has none; pass a labelled --data.")
    picked = torch.as_tensor(labels)[torch.randint(len(labels), (n,), generator=gen)]
    return torch.nn.functional.one_hot(picked.long(), G.c_dim).float().to(G.w_avg.device)


class GeneratedImages(ImageSet):
    """The generator at `res` (fading in with `alpha`), z and noise drawn from `seed`, truncation psi 1, run
    under `precision` autocast (core/device.py); a class-conditional G's labels drawn from `labels`."""

    def __init__(self, G: Generator, res: int, alpha: float, seed: int, description: str, precision: str = "fp32",
                 labels: np.ndarray | None = None):
        self.G, self.size, self.alpha, self.seed, self.precision = G, res, alpha, seed, precision
        self.count, self.description, self.labels = None, description, labels

    def batches(self, n: int, batch: int) -> Iterator[torch.Tensor]:
        G, device = self.G, self.G.w_avg.device
        gen = torch.Generator().manual_seed(self.seed)
        for start in range(0, n, batch):
            b = min(batch, n - start)
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            c = draw_labels(G, self.labels, b, gen)
            noise = G.make_noise(b, self.size, generator=gen, device=device)
            with torch.no_grad(), autocast(device, self.precision):
                ws = G.mapping(z, c, broadcast=True)
                img = G.synthesis(ws, self.size, self.alpha, noise=noise)
            yield quantize(img)


class AtResolution(torch.nn.Module):
    """A generator that synthesises at a fixed resolution and fade: what PPL and LS sample from. A class-conditional
    G maps with labels drawn from `labels` (from `seed`); the two halves of a mapped batch share theirs, so PPL's
    pairs (row i and row N + i) are two points of one class's path."""

    def __init__(self, G: Generator, res: int, alpha: float, labels: np.ndarray | None = None, seed: int = 0):
        super().__init__()
        self.G, self.res, self.alpha, self.labels = G, res, alpha, labels
        self.z_dim, self.num_ws = G.z_dim, G.num_ws
        self.label_gen = torch.Generator().manual_seed(seed)

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        c = draw_labels(self.G, self.labels, (len(z) + 1) // 2, self.label_gen)
        return self.G.mapping(z, None if c is None else torch.cat([c, c])[: len(z)])

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        return self.G.synthesis(ws, self.res, self.alpha, noise_mode=noise_mode)


def image_set(path: Path, workers: int) -> ImageSet:
    """The image set a user names: an sgan dataset (or a run holding one) at its largest level, or a folder."""
    if not path.exists():
        raise UsageError(f"{path} does not exist.")
    if (path / "data.mdb").is_file() or rundir.dataset_path(path).is_dir():
        dataset = Dataset(path if (path / "data.mdb").is_file() else rundir.dataset_path(path))
        return DatasetImages(dataset, dataset.resolutions[-1], workers)
    return FolderImages(path)
