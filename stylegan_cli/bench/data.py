"""`sgan bench data`: images per second the training loader delivers from the LMDB (docs/design.md §8)."""

from __future__ import annotations

import time

import torch

from stylegan_cli.data.dataset import Dataset
from stylegan_cli.training.stream import ImageStream, real_batches


def loader_figures(dataset: Dataset, workers: int, batch: int, batches: int) -> dict:
    """img/s at every level from 8x8 up, with `workers` loader processes, pinned memory on GPU
    machines, and the trainer's shuffling and mirroring; `batches` timed batches per level."""
    stream = ImageStream(len(dataset), 0, mirror=True)
    pin = torch.cuda.is_available()
    measured: dict = {"dataset": str(dataset.path), "images": len(dataset), "workers": workers, "batch": batch}
    for res in dataset.resolutions:
        if res < 8:
            continue
        loader = real_batches(dataset, stream, res, 0, batch, 0, 1, workers, pin)
        next(loader)  # workers started, first batches in flight
        start = time.perf_counter()
        for _ in range(batches):
            next(loader)
        measured[f"img_per_s_{res}"] = round(batches * batch / (time.perf_counter() - start), 1)
        del loader
    return measured
