"""One process per GPU under torchrun (NCCL), or per CPU slot with gloo: the process's rank, its
device, and the collective operations training needs."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from stylegan_cli.core.device import default_device


@dataclass
class Dist:
    """This process's place in the job: rank, number of processes, device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t)
            t /= self.world
        return t

    def average_grads(self, module: torch.nn.Module) -> None:
        """Averages gradients across processes in one flat buffer: what DDP does, without its
        hooks, so layers unused at the current resolution keep no gradient, as on one process
        (every rank runs the same layers, so every rank has the same set of gradients)."""
        if self.world == 1:
            return
        params = [p for p in module.parameters() if p.grad is not None]
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def init_distributed() -> Dist:
    """One process per GPU under torchrun (NCCL), or per CPU slot with gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = default_device(local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        # Long enough for the other ranks to wait at a barrier while rank 0 computes metrics.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=2))
    return Dist(rank=dist.get_rank() if world > 1 else 0, world=world, device=device)
