"""How `sgan bench` measures (docs/design.md §8): a timed loop after a warm-up between device
synchronisations, peak memory, and FLOPs counted from torch's formulas at 2 per multiply-add."""

from __future__ import annotations

import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


def synchronize(device: torch.device) -> None:
    """Waits for the work queued on `device` (a no-op on the CPU, which does not queue)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn, warmup: int, iters: int, device: torch.device) -> float:
    """Steady-state seconds per call of `fn`: `warmup` untimed calls, then `iters` timed ones between
    device synchronisations; peak memory is counted from the timed calls on."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / iters


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


class _FlopCounter(TorchDispatchMode):
    """Adds up the FLOPs of every operation torch's flop formulas know (matmuls, convolutions and
    their gradients). Unlike FlopCounterMode it tracks no modules, so double backward (R1, path
    length) is counted too."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(fn) -> int:
    """Floating-point operations of the matrix multiplications and convolutions `fn` runs (eagerly)."""
    with _FlopCounter() as counter:
        fn()
    return counter.total


def sig(x: float) -> float:
    """x to 4 significant digits: small CPU figures stay readable, large GPU ones are not padded."""
    return float(f"{x:.4g}")
