"""Which device a process computes on: the one choice every stage shares."""

from __future__ import annotations

import resource

import torch


def default_device(local_rank: int = 0) -> torch.device:
    """The GPU of this process (`local_rank` under torchrun) when there is one, else the CPU."""
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
