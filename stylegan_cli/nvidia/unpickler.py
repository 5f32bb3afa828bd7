"""A restricted unpickler that reads NVIDIA's network pickles as plain data, without TensorFlow.

Progressive GAN (`tfutil.Network`, state version 2) and StyleGAN/StyleGAN2(-ADA) TF1 pickles
(`dnnlib.tflib.network.Network`, versions 3-4) load as (G, D, Gs) tuples of TFNetwork; StyleGAN2-ADA PyTorch and
StyleGAN3 pickles as dicts of PersistentObject. NVIDIA's loaders `exec` the source embedded in the file; this one never
runs it, admits only the globals those formats need and refuses the rest before anything is called. It builds on the
pure-Python `pickle._Unpickler` so that BUILD can be checked: a forged numpy dtype state could turn bytes into pointers.
"""

from __future__ import annotations

import copyreg
import io
import pathlib
import pickle
import re
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from stylegan_cli.core.errors import SganError, UsageError


class RefusedError(SganError):
    """The file asks for something an NVIDIA network pickle never needs; nothing from it was run."""


class _Refused(Exception):
    """Raised while unpickling; `load` turns it into a RefusedError naming the file."""


class EasyDict(dict):
    """dnnlib's EasyDict: a dict whose keys read as attributes too."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _plain(value: Any) -> Any:
    """Dicts (EasyDicts included) as plain dicts, recursively through dicts, lists and tuples."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return type(value)(map(_plain, value)) if type(value) in (list, tuple) else value


class TFNetwork:
    """Stand-in for `dnnlib.tflib.network.Network` and `tfutil.Network`: their pickled state as plain data."""

    name: str
    version: int
    static_kwargs: dict
    build_func_name: str
    build_module_src: str  # kept for messages only, never executed
    components: dict[str, TFNetwork]  # {} for version 2
    variables: dict[str, np.ndarray]  # own variables, in file order

    def __setstate__(self, state: Any) -> None:
        version = state.get("version") if isinstance(state, dict) else None
        if hasattr(self, "variables"):
            raise _Refused("sets the state of a TensorFlow network twice, which an NVIDIA network pickle never does")
        if version not in (2, 3, 4):
            raise _Refused(f"holds a TensorFlow network with state version {version!r}, which no NVIDIA release wrote")
        components, variables = dict(state.get("components") or {}), list(state.get("variables") or [])
        if not all(isinstance(c, TFNetwork) for c in components.values()):
            raise _Refused("holds a TensorFlow network whose components are not networks")
        if not all(isinstance(n, str) and isinstance(v, (np.ndarray, np.generic)) for n, v in variables):
            raise _Refused("holds a TensorFlow network whose variables are not named numpy arrays")
        self.name, self.version, self.components = str(state.get("name")), version, components
        self.static_kwargs = _plain(dict(state.get("static_kwargs") or {}))
        self.build_func_name = str(state.get("build_func_name"))
        self.build_module_src = str(state.get("build_module_src"))
        self.variables = {name: np.asarray(value) for name, value in variables}

    def params(self) -> dict[str, np.ndarray]:
        """Own variables plus every component's, recursively, prefixed "component/"."""
        out = dict(self.variables)
        for prefix, component in self.components.items():
            out.update({f"{prefix}/{name}": value for name, value in component.params().items()})
        return out

    def take_params(self) -> dict[str, np.ndarray]:
        """`params()`, handed over: the network and its components keep no array afterwards, so a converter
        that drops each array once converted holds one copy of the weights, not two."""
        out = self.params()
        stack: list[TFNetwork] = [self]
        while stack:
            net = stack.pop()
            net.variables = {}
            stack.extend(net.components.values())
        return out

    def __repr__(self) -> str:
        return f"TFNetwork({self.name!r}, version={self.version}, components={list(self.components)})"


class PersistentObject:
    """A `torch_utils.persistence` object (one of NVIDIA's nn.Modules) as data; its module source is never run."""

    def __init__(self, class_name: str, module_src: str, version: Any, state: dict) -> None:
        self.class_name, self.module_src, self.version, self.state = class_name, module_src, version, state

    @property
    def init_kwargs(self) -> dict:
        """The keyword arguments it was constructed with, as a plain dict ({} when absent)."""
        return _plain(dict(self.state.get("_init_kwargs") or {}))

    @property
    def init_args(self) -> tuple:
        """The positional arguments it was constructed with (() when absent)."""
        return _plain(tuple(self.state.get("_init_args") or ()))

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """What nn.Module.state_dict holds, under its names: parameters and persistent buffers, recursively."""
        skip = self.state.get("_non_persistent_buffers_set") or set()
        buffers = {n: t for n, t in (self.state.get("_buffers") or {}).items() if n not in skip}
        out = {prefix + n: t for n, t in {**(self.state.get("_parameters") or {}), **buffers}.items() if t is not None}
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentObject):
                out.update(child.tensors(f"{prefix}{name}."))
        return out

    def take_tensors(self) -> dict[str, torch.Tensor]:
        """`tensors()`, handed over: the object keeps no tensor afterwards (see TFNetwork.take_params)."""
        out = self.tensors()
        stack = [self]
        while stack:
            obj = stack.pop()
            obj.state["_parameters"], obj.state["_buffers"] = {}, {}
            stack.extend(c for c in (obj.state.get("_modules") or {}).values() if isinstance(c, PersistentObject))
        return out

    def attribute(self, name: str, default: Any = None) -> Any:
        """A plain attribute of the state, e.g. "z_dim" or "img_resolution"."""
        return self.state.get(name, default)

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r})"


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    """Stand-in for `torch_utils.persistence._reconstruct_persistent_obj`: keeps the meta as data."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        kind = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
        raise _Refused(f"holds a persistent object of type {kind!r}, where NVIDIA's are all of type 'class'")
    if not isinstance(meta.get("state"), dict) or not isinstance(meta.get("class_name"), str):
        raise _Refused("holds a persistent object without a class name and a state")
    return PersistentObject(meta["class_name"], str(meta.get("module_src")), meta.get("version"), meta["state"])


_PLAIN_DTYPE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248]|c(8|16)|[SU]\d+)")
_NDARRAY = object()  # stands for numpy.ndarray, which NEWOBJ could otherwise call with an object dtype


def _dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """numpy.dtype, for booleans, numbers and fixed-width strings only."""
    if isinstance(spec, str) and spec.lstrip("<>|=").startswith("O"):
        raise _Refused(f"holds a numpy array of object dtype ({spec!r}), which could hide any Python object")
    if not isinstance(spec, str) or not _PLAIN_DTYPE.fullmatch(spec):
        raise _Refused(f"holds numpy dtype {spec!r}, which NVIDIA network pickles never use")
    return np.dtype(spec, bool(align), bool(copy))


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    """numpy's `_reconstruct`: an empty array for the BUILD that follows to fill in."""
    if subtype is not _NDARRAY:
        raise _Refused(f"asks numpy to reconstruct a {type(subtype).__name__} instead of an array")
    return np.empty((0,), np.uint8)


def _scalar(dtype: Any, data: Any) -> np.generic:
    """numpy's `scalar`: one value of a plain dtype from its bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused("holds a numpy scalar that is not the bytes of a plain dtype")
    return np.frombuffer(data, dtype, count=1)[0]


def _latin1(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode` as protocol 2 uses it to store bytes: latin1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused(f"asks `_codecs.encode` for {encoding!r}, where NVIDIA network pickles use only 'latin1'")
    return text.encode("latin1")


def _load_storage(blob: Any) -> torch.storage.TypedStorage:
    """Replaces `torch.storage._load_from_bytes` (a torch.load that runs anything): one storage, weights only."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage's deprecation
            storage = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception as exc:
        raise _Refused(f"holds a tensor storage that torch.load refuses to read ({type(exc).__name__})") from None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise _Refused(f"holds a {type(storage).__name__} where a tensor storage belongs")
    return storage


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any,
                    metadata: Any = None) -> torch.Tensor:
    """`torch._utils._rebuild_tensor_v2`, refusing backward hooks."""
    if not isinstance(storage, torch.storage.TypedStorage) or hooks or not isinstance(metadata, (dict, type(None))):
        raise _Refused("holds a tensor with backward hooks or without a storage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensor = torch.empty((0,), dtype=storage.dtype).set_(storage.untyped(), offset, tuple(size), tuple(stride))
    if metadata:
        torch._utils.set_tensor_metadata(tensor, metadata)
    return tensor.requires_grad_(bool(requires_grad))


def _rebuild_parameter(data: Any, requires_grad: Any, hooks: Any, state: Any = None) -> torch.nn.Parameter:
    """`torch._utils._rebuild_parameter` (and `_with_state`, whose Python attributes are dropped)."""
    if not isinstance(data, torch.Tensor) or hooks:
        raise _Refused("holds a parameter with backward hooks or without a tensor")
    return torch.nn.Parameter(data, bool(requires_grad))


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """`copyreg._reconstructor`, for the stand-in classes only."""
    if cls not in (TFNetwork, EasyDict) or base not in (object, dict):
        name = f"{cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else type(cls).__name__
        raise _Refused(f"wants `copyreg._reconstructor` for `{name}`, which an NVIDIA network pickle never needs")
    return copyreg._reconstructor(cls, base, state)


_NUMPY = {"_reconstruct": _reconstruct, "scalar": _scalar, "ndarray": _NDARRAY, "dtype": _dtype}
_ALLOWED: dict[tuple[str, str], Any] = {
    ("tfutil", "Network"): TFNetwork, ("dnnlib.tflib.network", "Network"): TFNetwork,
    ("dnnlib.util", "EasyDict"): EasyDict, ("dnnlib", "EasyDict"): EasyDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): OrderedDict, ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("copyreg", "_reconstructor"): _reconstructor, ("builtins", "object"): object, ("builtins", "dict"): dict,
    ("_codecs", "encode"): _latin1, ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _dtype,
    **{(f"numpy.{core}.multiarray", name): f for core in ("core", "_core") for name, f in _NUMPY.items()},
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor, ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
}
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # as protocol 2 writes them


def _build(obj: Any, state: Any) -> None:
    """The BUILD opcode for what needs it; a numpy array's state is checked before numpy sees it."""
    if isinstance(obj, TFNetwork):
        obj.__setstate__(state)
    elif isinstance(obj, np.dtype):
        if state != obj.__reduce__()[2]:  # anything but the state it has could forge object pointers
            raise _Refused(f"asks to change the state of numpy dtype {obj.str!r}, which could forge object pointers")
    elif type(obj) is np.ndarray and isinstance(state, tuple) and len(state) == 5:
        if not isinstance(state[2], np.dtype) or state[2].hasobject or not isinstance(state[4], bytes):
            raise _Refused("holds a numpy array that is not the bytes of a plain dtype")
        obj.__setstate__(state)
    elif state or not isinstance(obj, (EasyDict, OrderedDict)):
        raise _Refused(f"asks to set the state of a {type(obj).__name__}, which an NVIDIA network pickle never does")


class _Unpickler(pickle._Unpickler):
    """The pure-Python unpickler with only `_ALLOWED` globals and a checked BUILD."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) not in _ALLOWED:
            raise _Refused(f"wants `{module}.{name}`, which an NVIDIA network pickle never needs")
        return _ALLOWED[module, name]

    def load_global(self) -> None:
        module, name = self.readline(), self.readline()
        if not (module.endswith(b"\n") and name.endswith(b"\n")):
            raise EOFError  # a name cut short by the end of the file, not a global to refuse
        self.append(self.find_class(module[:-1].decode(), name[:-1].decode()))

    def load_build(self) -> None:
        state = self.stack.pop()
        _build(self.stack[-1], state)

    dispatch[pickle.GLOBAL[0]] = load_global
    dispatch[pickle.BUILD[0]] = load_build


def load(path: pathlib.Path) -> object:
    """The unpickled top-level object: a (G, D, Gs) tuple of TFNetwork, or a dict with PersistentObject values."""
    path = pathlib.Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist; pass one of NVIDIA's network pickles (.pkl).")
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not one of NVIDIA's network pickles (.pkl).")
    with open(path, "rb") as f:
        head = f.read(2)
        if not head:
            raise SganError(f"{path} is empty, not one of NVIDIA's network pickles.")
        if head == b"PK":
            raise SganError(f"{path} looks like a PyTorch checkpoint or zip archive, not an NVIDIA network pickle.")
        if head[0] != pickle.PROTO[0] or head[1:] and not 2 <= head[1] <= 5:
            raise SganError(f"{path} is not a pickle of protocol 2 or later, so not one of NVIDIA's network pickles.")
        f.seek(0)
        try:
            data = _Unpickler(f).load()
        except _Refused as exc:
            raise RefusedError(f"{path} {exc}; refusing to load it (nothing from the file was run).") from None
        except Exception as exc:  # anything a damaged pickle raises: EOFError, UnpicklingError, KeyError, ...
            cause = "it is truncated" if not f.read(1) else "it is damaged"
            raise SganError(f"{path} cannot be unpickled ({type(exc).__name__}): {cause}; download it again.") from None
    if not isinstance(data, (tuple, dict)):
        raise SganError(f"{path} holds a {type(data).__name__}, not the networks of an NVIDIA pickle.")
    return data
