"""Writes pickles that carry the global names NVIDIA's published network files carry, for tests of `sgan import`.

NVIDIA's files name their classes by the modules that defined them: `tfutil.Network` (Progressive GAN),
`dnnlib.tflib.network.Network` (StyleGAN, StyleGAN2), `torch_utils.persistence._reconstruct_persistent_obj`
and `dnnlib.util.EasyDict` (StyleGAN2-ADA, StyleGAN3), and, having been written with numpy 1.x,
`numpy.core.multiarray._reconstruct` / `scalar` for their arrays. `nvidia_stubs()` puts stand-in modules
of those names into `sys.modules` for as long as it is open, so that `pickle` records exactly those module/name
pairs; nothing here imports or runs NVIDIA's code, and nothing stays registered afterwards.

The TF networks are written as `Network.__getstate__` writes them (network.py, tfutil.py); the PyTorch
modules as `persistence.persistent_class`'s `__reduce__` reduces them: a call of
`_reconstruct_persistent_obj(meta)` with meta = {type, version, module_src, class_name, state}.

This module only writes. The tests read every file back with the product's reader,
`stylegan_cli.nvidia.unpickler.load`; the stand-in functions raise if anything calls them.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylegan_cli.nvidia import unpickler

PERSISTENCE_VERSION = 6  # torch_utils/persistence.py's _version in StyleGAN2-ADA and StyleGAN3

TF_BUILD_MODULE_SRC = '''\
"""Network architectures (stand-in source text for tests; never executed)."""

import numpy as np


def network(*args, **kwargs):
    """Builds nothing: this text only stands where NVIDIA's pickles keep their module source."""
    raise NotImplementedError
'''

TORCH_MODULE_SRC = '''\
"""Network architectures (stand-in source text for tests; never executed)."""

import numpy as np
import torch


class Module(torch.nn.Module):
    """Holds parameters only: this text only stands where NVIDIA's pickles keep their module source."""
'''


# ----------------------------------------------------------------------------------------------------------------
# Stand-ins for NVIDIA's classes and functions: what pickle needs to write their names, nothing to read them.


class _TFNetwork:
    """What a TF `Network` pickles as: its class's global name, then the state dict `__getstate__` returns
    (`state`, which a test may change before writing, e.g. to plant something in it)."""

    def __init__(self, state: dict):
        self.state = state

    def __getstate__(self) -> dict:
        return self.state


TfutilNetwork = type("Network", (_TFNetwork,), {"__module__": "tfutil", "__qualname__": "Network"})
TfutilNetwork.__doc__ = "Stand-in for Progressive GAN's `tfutil.Network` (pickle state version 2)."
DnnlibNetwork = type("Network", (_TFNetwork,), {"__module__": "dnnlib.tflib.network", "__qualname__": "Network"})
DnnlibNetwork.__doc__ = "Stand-in for StyleGAN's and StyleGAN2's `dnnlib.tflib.network.Network` (versions 3, 4)."


class EasyDict(unpickler.EasyDict):
    """`dnnlib.util.EasyDict` as NVIDIA's files name it: the product's EasyDict, pickled under dnnlib's name."""


EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"


def _write_only(module: str, name: str) -> Any:
    """A function that pickles as `module.name`; the tests read files with the product's unpickler, never with it."""

    def stand_in(*args: Any) -> Any:
        raise AssertionError(f"{module}.{name} is a stand-in for writing pickles; read them with "
                             "stylegan_cli.nvidia.unpickler.load")

    stand_in.__module__, stand_in.__name__, stand_in.__qualname__ = module, name, name
    return stand_in


_reconstruct_persistent_obj = _write_only("torch_utils.persistence", "_reconstruct_persistent_obj")

# The functions numpy's own reductions name; where they already live in numpy.core.multiarray (numpy 1.x) the
# arrays pickle under NVIDIA's names by themselves, else they are written as calls of these stand-ins.
_NP_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_NP_SCALAR = np.float32(0).__reduce__()[0]
_NP_LEGACY = getattr(_NP_RECONSTRUCT, "__module__", "") == "numpy.core.multiarray"
_np_reconstruct = _write_only("numpy.core.multiarray", "_reconstruct")
_np_scalar = _write_only("numpy.core.multiarray", "scalar")


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name, "Stand-in registered by tests/nvidia/nvidia_pickling.py.")
    module.__dict__.update(attrs)
    return module


def _numpy_core_module() -> types.ModuleType:
    from numpy._core import multiarray as real

    module = _module("numpy.core.multiarray", _reconstruct=_np_reconstruct, scalar=_np_scalar)
    module.__getattr__ = lambda attr: getattr(real, attr)  # everything else as numpy has it
    return module


def _stub_modules() -> dict[str, types.ModuleType]:
    network = _module("dnnlib.tflib.network", Network=DnnlibNetwork)
    tflib = _module("dnnlib.tflib", network=network)
    util = _module("dnnlib.util", EasyDict=EasyDict)
    dnnlib = _module("dnnlib", tflib=tflib, util=util, EasyDict=EasyDict)
    persistence = _module("torch_utils.persistence", _reconstruct_persistent_obj=_reconstruct_persistent_obj)
    torch_utils = _module("torch_utils", persistence=persistence)
    modules = {
        "tfutil": _module("tfutil", Network=TfutilNetwork),
        "dnnlib": dnnlib,
        "dnnlib.tflib": tflib,
        "dnnlib.tflib.network": network,
        "dnnlib.util": util,
        "torch_utils": torch_utils,
        "torch_utils.persistence": persistence,
    }
    if not _NP_LEGACY:
        modules["numpy.core.multiarray"] = _numpy_core_module()
    return modules


_lock = threading.RLock()
_depth = 0
_saved: dict[str, types.ModuleType | None] = {}


@contextlib.contextmanager
def nvidia_stubs() -> Iterator[None]:
    """Registers the stand-in modules in `sys.modules` while open (re-entrant), restoring what was there."""
    global _depth
    with _lock:
        if _depth == 0:
            for name, module in _stub_modules().items():
                _saved[name] = sys.modules.get(name)
                sys.modules[name] = module
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for name, previous in _saved.items():
                    if previous is None:
                        sys.modules.pop(name, None)
                    else:
                        sys.modules[name] = previous
                _saved.clear()


# ----------------------------------------------------------------------------------------------------------------
# Writing.


def tf_network(name: str, variables: Mapping[str, np.ndarray], components: Mapping[str, Any] | None = None, *,
               version: int, static_kwargs: Mapping[str, Any] | None = None, build_func_name: str = "G_main",
               build_module_src: str = TF_BUILD_MODULE_SRC, components_type: type[dict] = dict) -> _TFNetwork:
    """A TF network as NVIDIA pickles it: `tfutil.Network` for version 2 (no components), else
    `dnnlib.tflib.network.Network`. Variables become float32 arrays, and 0-d ones numpy float32 scalars,
    which is what TensorFlow's `Session.run` returned for them when NVIDIA wrote the files. The components are
    held in a `components_type` (dict, as `Network.__getstate__` writes them, or dnnlib's EasyDict)."""
    if version not in (2, 3, 4):
        raise ValueError(f"TF Network pickles have state versions 2, 3 and 4, not {version}")
    if version == 2 and components:
        raise ValueError("a version 2 (tfutil) Network has no components")
    values = []
    for var_name, value in variables.items():
        array = np.asarray(value, dtype=np.float32)
        values.append((var_name, np.float32(array) if array.ndim == 0 else np.ascontiguousarray(array)))
    state: dict[str, Any] = {"version": version, "name": name, "static_kwargs": dict(static_kwargs or {})}
    if version >= 3:
        state["components"] = components_type(components or {})
    state["build_module_src"] = build_module_src
    state["build_func_name"] = build_func_name
    state["variables"] = values
    return (TfutilNetwork if version == 2 else DnnlibNetwork)(state)


def persistent_reduction(meta: Mapping[str, Any]) -> tuple:
    """What `persistence.persistent_class`'s `__reduce__` returns: a call of `_reconstruct_persistent_obj(meta)`.
    A `__reduce__` that returns it writes a persistent object with any meta, NVIDIA's or not."""
    return (_reconstruct_persistent_obj, (dict(meta),), None)


class NvidiaPickler(pickle.Pickler):
    """Pickles torch modules as StyleGAN2-ADA's persistence decorator reduces them, and numpy arrays and
    scalars under numpy 1.x's names, as NVIDIA's files have them (numpy1=False leaves them under the installed
    numpy's names, numpy._core.multiarray with numpy 2, as in a file re-pickled with numpy 2). Each module carries
    `module_src` when given, else its class's `nvidia_module_src`, else TORCH_MODULE_SRC; its class name is the
    class's `nvidia_class_name`, else `__name__`."""

    def __init__(self, file: Any, protocol: int = 4, *, module_src: str | None = None, numpy1: bool = True):
        super().__init__(file, protocol=protocol)
        self.module_src = module_src
        self.rename_numpy = numpy1 and not _NP_LEGACY  # numpy 1 writes its own names

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.nn.Module):
            cls = type(obj)
            return persistent_reduction({
                "type": "class",
                "version": PERSISTENCE_VERSION,
                "module_src": self.module_src or getattr(cls, "nvidia_module_src", TORCH_MODULE_SRC),
                "class_name": getattr(cls, "nvidia_class_name", cls.__name__),
                "state": obj.__getstate__(),  # what object.__reduce__ hands the decorator: the module's __dict__
            })
        if self.rename_numpy and isinstance(obj, (np.ndarray, np.generic)) and type(obj).__module__ == "numpy":
            reduced = obj.__reduce__()
            if reduced[0] is _NP_RECONSTRUCT:
                return (_np_reconstruct, *reduced[1:])
            if reduced[0] is _NP_SCALAR:
                return (_np_scalar, *reduced[1:])
        return NotImplemented


def dumps(obj: Any, protocol: int = 4, *, module_src: str | None = None, numpy1: bool = True) -> bytes:
    """`obj` pickled with NVIDIA's global names (see NvidiaPickler for `module_src` and `numpy1`)."""
    buffer = io.BytesIO()
    _dump(buffer, obj, protocol, module_src, numpy1)
    return buffer.getvalue()


def _dump(file: Any, obj: Any, protocol: int, module_src: str | None, numpy1: bool) -> None:
    with nvidia_stubs():
        NvidiaPickler(file, protocol, module_src=module_src, numpy1=numpy1).dump(obj)


def dump_tf(path: str | Path, G: _TFNetwork, D: _TFNetwork, Gs: _TFNetwork, protocol: int = 4, *,
            numpy1: bool = True) -> None:
    """Writes (G, D, Gs) as Progressive GAN's, StyleGAN's and StyleGAN2's training loops do."""
    with open(path, "wb") as f:
        _dump(f, (G, D, Gs), protocol, None, numpy1)


def dump_persistent(path: str | Path, data: Mapping[str, Any], protocol: int = 4, *, module_src: str | None = None,
                    numpy1: bool = True) -> None:
    """Writes a StyleGAN2-ADA-style snapshot dict; every torch module in it (and each submodule) is reduced to
    `torch_utils.persistence._reconstruct_persistent_obj(meta)`, tensors and parameters by torch's own reducers
    (views keep their storage, offset and strides; several views of one storage share it). See NvidiaPickler
    for `module_src` and `numpy1`."""
    with open(path, "wb") as f:
        _dump(f, dict(data), protocol, module_src, numpy1)
