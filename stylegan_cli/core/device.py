"""Which device a process computes on, and in what precision: the choices every stage shares."""

from __future__ import annotations

import resource

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_device(local_rank: int = 0) -> torch.device:
    """The GPU of this process (`local_rank` under torchrun) when there is one, else the CPU."""
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """Autocast to `precision` ("bf16", "fp16") on `device`; "fp32" leaves every operation in float32."""
    assert precision in PRECISIONS, precision
    return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES.get(precision, torch.float32),
                          enabled=precision != "fp32")


def peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
