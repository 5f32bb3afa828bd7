"""How `sgan bench` measures (docs/design.md §8): a timed loop after a warm-up between device
synchronisations, peak memory, FLOPs counted from torch's formulas at 2 per multiply-add, and the operators and
host synchronisations of a piece of work counted as it dispatches them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry
from torch.utils.weak import WeakTensorKeyDictionary

aten = torch.ops.aten


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


# What the host waits for: a tensor's value (`.item()`, `float()`, a Python branch on a tensor) or a result whose
# shape depends on the values.
_READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default, aten.equal.default}
_ALLOCATIONS = {aten.empty.memory_format, aten.empty_strided.default}  # memory only, no kernel


@dataclass
class Work:
    """What a piece of work costs besides time (docs/design.md §8)."""

    flops: int  # of the matrix multiplications and convolutions, 2 per multiply-add
    ops: int  # operators that compute, each at least one kernel launch or copy on a GPU
    syncs: int  # host synchronisations: points where the host waits for the device


class _WorkCounter(TorchDispatchMode):
    """Counts, for every operator dispatched: the FLOPs of those torch's flop formulas know (matmuls, convolutions
    and their gradients; unlike FlopCounterMode it tracks no modules, so double backward, as in R1 and path length,
    is counted too); the operators that compute, views, bare allocations and the profiler's marks aside; and the
    host synchronisations: reads of a device value (`_READS`) and copies between host and device that wait (not
    non_blocking; from host to device PyTorch then synchronises the stream).

    On the CPU, host and device are one, so the device's values are taken to be those computed from the
    `on_device` tensors (the networks, the reals): reading a host-side scalar such as an optimiser's step count on
    the CPU or a draw from a CPU generator is no synchronisation on a GPU either, and is not counted."""

    def __init__(self, on_device):
        super().__init__()
        self.work = Work(0, 0, 0)
        self.derived = WeakTensorKeyDictionary()
        for t in on_device:
            self.derived[t] = True

    def _on_device(self, t: torch.Tensor) -> bool:
        return t.device.type != "cpu" or t in self.derived

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.work.flops += formula(*args, **kwargs, out_val=out)
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if any(self._on_device(t) for t in inputs):
            if func in _READS:
                self.work.syncs += 1
            # What the operator returns or writes to (the optimiser's moments, a scaler's inf flag) is the device's.
            written = [args[i] if i < len(args) else kwargs.get(a.name) for i, a in enumerate(func._schema.arguments)
                       if a.alias_info is not None and a.alias_info.is_write]
            for t in tree_leaves((out, written)):
                if isinstance(t, torch.Tensor):
                    self.derived[t] = True
        if func in (aten._to_copy.default, aten.copy_.default):
            source, target = (args[0], out) if func == aten._to_copy.default else (args[1], args[0])
            blocking = not (kwargs.get("non_blocking") or (len(args) > 2 and args[2]))
            self.work.syncs += blocking and (source.device.type == "cpu") != (target.device.type == "cpu")
        self.work.ops += not (func.is_view or func in _ALLOCATIONS or func.namespace == "profiler")
        return out


def count_work(fn, on_device=()) -> Work:
    """The FLOPs, operators and host synchronisations of `fn` run eagerly (see _WorkCounter for `on_device`)."""
    with _WorkCounter(on_device) as counter:
        fn()
    return counter.work


def profile_table(fn, device: torch.device, rows: int = 30) -> str:
    """torch.profiler's table of `fn`: the `rows` operators that took the most device time (CPU time on the CPU),
    then how often the host called the CUDA runtime, to launch, to copy, to wait (the last wait is the profile's
    own end)."""
    cuda = device.type == "cuda"
    with torch.profiler.profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        fn()
        synchronize(device)
    averages = prof.key_averages()
    table = averages.table(sort_by="device_time_total" if cuda else "cpu_time_total", row_limit=rows)
    runtime = sorted(((e.count, e.key) for e in averages if e.key.startswith(("cuda", "cuLaunch"))), reverse=True)
    return table + "".join(f"{key}: {count} calls\n" for count, key in runtime)


def sig(x: float) -> float:
    """x to 4 significant digits: small CPU figures stay readable, large GPU ones are not padded."""
    return float(f"{x:.4g}")
