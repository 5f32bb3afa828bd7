"""The stream of real images a training run consumes, split across processes.

Every draw (data order, mirroring) is made for the global batch from (seed, epoch), and each process
takes its share, so a run resumes bitwise from the image count in a checkpoint and does not depend
on the number of processes.
"""

from __future__ import annotations

import numpy as np
import torch

from stylegan_cli.core import signals
from stylegan_cli.data.dataset import Dataset, LevelImages


class ImageStream:
    """The global stream of training images: epoch e is a permutation of the dataset drawn from
    (seed, e), with a mirror coin per position. Position p is the p-th real image shown to D, so
    the stream restarts exactly from the image count stored in a checkpoint."""

    def __init__(self, n: int, seed: int, mirror: bool):
        self.n, self.seed, self.mirror = n, seed, mirror
        self._epoch, self._perm, self._flip = -1, None, None

    def take(self, start: int, count: int) -> list[tuple[int, bool]]:
        out = []
        for p in range(start, start + count):
            epoch, i = divmod(p, self.n)
            if epoch != self._epoch:
                rng = np.random.default_rng([self.seed, epoch])
                self._perm, self._flip = rng.permutation(self.n), rng.random(self.n) < 0.5
                self._epoch = epoch
            out.append((int(self._perm[i]), bool(self.mirror and self._flip[i])))
        return out


class _Batches:
    """Batch sampler over the rank's share of each global batch, from a given image count on."""

    def __init__(self, stream: ImageStream, start: int, global_batch: int, rank: int, world: int):
        self.stream, self.start, self.global_batch, self.rank, self.world = stream, start, global_batch, rank, world

    def __iter__(self):
        p = self.start
        while True:  # every world-th image, as the trainer shares its draws (Trainer._share)
            yield self.stream.take(p, self.global_batch)[self.rank :: self.world]
            p += self.global_batch


class _LabelledImages(torch.utils.data.Dataset):
    """The images of one level with their labels (-1 for an unlabelled dataset)."""

    def __init__(self, dataset: Dataset, res: int):
        self.images, self.labels = LevelImages(dataset, res), dataset.labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, bool]) -> tuple[torch.Tensor, int]:
        return self.images[item], -1 if self.labels is None else int(self.labels[item[0]])


def real_batches(dataset: Dataset, stream: ImageStream, res: int, start: int, global_batch: int, rank: int,
                 world: int, workers: int, pin: bool):
    """An endless iterator of this rank's uint8 real batches at `res` and their (n,) int64 labels, starting at
    image `start`."""
    loader = torch.utils.data.DataLoader(
        _LabelledImages(dataset, res), batch_sampler=_Batches(stream, start, global_batch, rank, world),
        num_workers=workers, pin_memory=pin, prefetch_factor=4 if workers else None,
        persistent_workers=False, worker_init_fn=signals.leave_to_parent,
        # Its own source of worker seeds: otherwise each new loader (on resuming, say) draws from the global
        # RNG, whose checkpointed state the path-length noise continues from, and a resume is not bitwise.
        generator=torch.Generator(),
    )
    return iter(loader)


def fade_reals(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """During a fade the reals are blended with their own lower level, as the fakes are
    (Progressive GAN §3): lerp(upsample(downsample(x)), x, alpha)."""
    if alpha >= 1.0:
        return x
    low = torch.nn.functional.avg_pool2d(x, 2)
    low = torch.nn.functional.interpolate(low, scale_factor=2, mode="nearest")
    return low + (x - low) * alpha
