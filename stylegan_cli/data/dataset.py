"""The multi-resolution LMDB dataset (docs/design.md §4).

One LMDB environment holds every level of every image, 4x4 up to the top resolution, each level
derived from the next finer one by 2x2 box averaging (as Progressive GAN builds its levels).
Keys: `meta` (JSON), `img/<res>/<index>` (pixels), `src/<index>` (JSON: source file, face, top
level's pixel_md5, class label), `reject/<position>` (JSON), `labels` (every record's class as int64,
labelled datasets only), and `prep/...` progress keys while it is being built.

`DatasetWriter` builds one in `<path>.partial` with every batch of results committed in one
transaction together with the position reached, so a build killed at any moment resumes exactly;
`finish` renames it into place. `Dataset` reads one, and is safe to hand to DataLoader workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import lmdb
import numpy as np
import torch

from stylegan_cli.core.errors import SganError, UsageError

FORMAT = "sgan-multires-lmdb"
FORMAT_VERSION = 1
MIN_RESOLUTION = 4
RAW_MAX_RESOLUTION = 128  # levels up to this size are stored raw (fast to read), larger ones as PNG
# Lossless either way: zlib level 1 with PNG's "up" filter encodes a 1024x1024 face in ~30 ms
# (PIL's defaults: ~250 ms) and decodes faster than the adaptive filters, at about the same size.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


def resolutions(top: int) -> list[int]:
    """[4, 8, ..., top] for a power-of-two top resolution."""
    return [2**k for k in range(2, top.bit_length())]


def encoding_for(res: int) -> str:
    return "raw" if res <= RAW_MAX_RESOLUTION else "png"


def build_levels(top: np.ndarray) -> dict[int, np.ndarray]:
    """Every level of one (R, R, 3) uint8 image; level r is the rounded 2x2 mean of level 2r."""
    assert top.ndim == 3 and top.shape[0] == top.shape[1] and top.dtype == np.uint8, (top.shape, top.dtype)
    levels = {top.shape[0]: top}
    img = top
    while img.shape[0] > MIN_RESOLUTION:
        # OpenCV's area resize at exactly half size computes (a + b + c + d + 2) >> 2 per channel.
        half = img.shape[0] // 2
        img = cv2.resize(img, (half, half), interpolation=cv2.INTER_AREA)
        levels[half] = img
    return levels


def encode_level(img: np.ndarray) -> bytes:
    if encoding_for(img.shape[0]) == "raw":
        return np.ascontiguousarray(img).tobytes()
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), PNG_PARAMS)
    assert ok
    return buf.tobytes()


def decode_level(data: bytes, res: int) -> np.ndarray:
    if encoding_for(res) == "raw":
        return np.frombuffer(data, dtype=np.uint8).reshape(res, res, 3)
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def pixel_md5(img: np.ndarray) -> str:
    """md5 of an image's (H, W, 3) pixel array: FFHQ's `pixel_md5`, and what the dataset
    fingerprint is made of."""
    return hashlib.md5(np.ascontiguousarray(img).tobytes()).hexdigest()


def _img_key(res: int, index: int) -> bytes:
    return f"img/{res}/{index:08d}".encode()


def _src_key(index: int) -> bytes:
    return f"src/{index:08d}".encode()


def _reject_key(position: int) -> bytes:
    return f"reject/{position:08d}".encode()


LABELS_KEY = b"labels"
LABEL_DTYPE = np.dtype("<i8")


@dataclass
class Record:
    """One image ready to store: its encoded levels and where it came from."""

    levels: dict[int, bytes]
    source: dict  # {"source": relative path, "face": k, "pixel_md5": md5 of the top level, "label": class, ...}


def _check_complete(env: lmdb.Environment, path: Path) -> None:
    """A truncated data.mdb (a copy cut short, a full disk) would crash the process with SIGBUS on the first read
    past its end, since LMDB maps the file: its meta page says how many pages it needs, so check first."""
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = (path / "data.mdb").stat().st_size
    if size < needed:
        raise SganError(f"The dataset {path} is damaged: its data.mdb has {size:,} bytes of the {needed:,} its index "
                        f"refers to (a truncated copy?); copy it again or rerun `sgan prep --overwrite`.")


def _open_env(path: Path, readonly: bool) -> lmdb.Environment:
    if readonly:
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
    return lmdb.open(str(path), map_size=1 << 30, readahead=False, subdir=True, meminit=False)


def _iter_prefix(txn, prefix: bytes):
    """Values of the keys that start with `prefix`, in key order."""
    cursor = txn.cursor()
    if cursor.set_range(prefix):
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            yield value


def _get_json(txn, key: bytes, default=None):
    value = txn.get(key)
    return default if value is None else json.loads(value)


class DatasetWriter:
    """Builds a dataset in `<path>.partial`, resumable after any interruption. A labelled one is given
    `labels` (a class index or None per input) and `class_names`, kept with the inputs until it is finished."""

    def __init__(self, path: Path, settings: dict, inputs: list[str], labels: list[int | None] | None = None,
                 class_names: list[str] | None = None):
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.resumed = False
        if self.partial.exists():
            env = _open_env(self.partial, readonly=False)
            with env.begin() as txn:
                old = _get_json(txn, b"prep/settings")
            if old == settings:
                self.env, self.resumed = env, True
            else:
                env.close()
                shutil.rmtree(self.partial)
        if not self.resumed:
            self.partial.mkdir(parents=True)
            self.env = _open_env(self.partial, readonly=False)
            with self.env.begin(write=True) as txn:
                txn.put(b"prep/settings", json.dumps(settings).encode())
                txn.put(b"prep/inputs", json.dumps(inputs).encode())
                if class_names is not None:
                    txn.put(b"prep/labels", json.dumps(labels).encode())
                    txn.put(b"prep/class_names", json.dumps(class_names).encode())
                txn.put(b"prep/position", b"0")
                txn.put(b"prep/count", b"0")
                txn.put(b"prep/stats", b"{}")
        with self.env.begin() as txn:
            self.inputs: list[str] = _get_json(txn, b"prep/inputs")
            self.labels: list[int | None] | None = _get_json(txn, b"prep/labels")
            self.class_names: list[str] | None = _get_json(txn, b"prep/class_names")
            self.position = int(txn.get(b"prep/position"))
            self.count = int(txn.get(b"prep/count"))
            self.stats: dict = _get_json(txn, b"prep/stats")

    def commit(self, results: list[tuple[int, list[Record], dict | None]], stats: dict) -> None:
        """Stores the results of consecutive input positions, and the caller's running `stats`,
        in one transaction."""
        if not results:
            return
        assert results[0][0] == self.position, (results[0][0], self.position)
        count = self.count

        def write(txn):
            index = count
            for position, records, reject in results:
                for record in records:
                    for res, data in record.levels.items():
                        txn.put(_img_key(res, index), data)
                    txn.put(_src_key(index), json.dumps(record.source).encode())
                    index += 1
                if reject is not None:
                    txn.put(_reject_key(position), json.dumps(reject).encode())
            txn.put(b"prep/position", str(results[-1][0] + 1).encode())
            txn.put(b"prep/count", str(index).encode())
            txn.put(b"prep/stats", json.dumps(stats).encode())
            return index

        self.count = self._write(write)
        self.position = results[-1][0] + 1
        self.stats = stats

    def _write(self, fn):
        """Runs `fn(txn)` in a write transaction, growing the memory map when it is full."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    return fn(txn)
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def sources(self):
        with self.env.begin() as txn:
            for i in range(self.count):
                yield _get_json(txn, _src_key(i))

    def rejects(self) -> list[dict]:
        with self.env.begin() as txn:
            return [json.loads(v) for v in _iter_prefix(txn, b"reject/")]

    def finish(self, meta: dict) -> None:
        """Writes the metadata (and for a labelled dataset its class names, and every record's label in
        one array), drops the progress keys and renames the dataset into place."""
        digests = hashlib.sha256()
        labels = np.empty(self.count, LABEL_DTYPE)
        for i, source in enumerate(self.sources()):
            digests.update(source["pixel_md5"].encode())
            labels[i] = source.get("label", -1)
        meta = dict(meta, format=FORMAT, version=FORMAT_VERSION, count=self.count, fingerprint=digests.hexdigest())
        if self.class_names is not None:
            assert labels.min(initial=0) >= 0, "every record of a labelled dataset has a label"
            meta["class_names"] = self.class_names

        def write(txn):
            for key in (b"prep/position", b"prep/count", b"prep/stats", b"prep/inputs", b"prep/labels",
                        b"prep/class_names"):
                txn.delete(key)
            if self.class_names is not None:
                txn.put(LABELS_KEY, labels.tobytes())
            txn.put(b"meta", json.dumps(meta).encode())

        self._write(write)
        self.env.sync(True)
        self.env.close()
        if self.path.exists():  # --overwrite: the old dataset goes only once the new one is complete
            old = self.path.with_name(self.path.name + ".old")
            os.replace(self.path, old)
            os.replace(self.partial, self.path)
            shutil.rmtree(old)
        else:
            os.replace(self.partial, self.path)

    def close(self) -> None:
        self.env.close()


class Dataset:
    """Read access to a finished dataset; opens LMDB lazily, once per process."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise UsageError(f"No dataset at {self.path}; run `sgan prep` first or pass --data.")
        if not (self.path / "data.mdb").is_file():
            raise UsageError(f"{self.path} is not an sgan dataset (no data.mdb inside).")
        self._env, self._pid = None, None
        try:
            with self._txn() as txn:
                _check_complete(self._env, self.path)
                meta = _get_json(txn, b"meta")
        except (lmdb.Error, json.JSONDecodeError) as e:
            raise SganError(f"Cannot read the dataset {self.path}: {e}.") from e
        finally:
            self._close()  # opened again on first read, in whichever process reads
        if meta is None or meta.get("format") != FORMAT:
            raise SganError(f"{self.path} is not a finished sgan dataset (no metadata record).")
        if meta["version"] > FORMAT_VERSION:
            raise SganError(f"{self.path} has format version {meta['version']}; this sgan reads up to "
                            f"{FORMAT_VERSION}.")
        self.meta: dict = meta
        self.resolutions: list[int] = meta["resolutions"]
        self._labels: np.ndarray | None = None  # read on first use

    @property
    def class_names(self) -> list[str] | None:
        """The class names, index order; None for an unlabelled dataset (every dataset before labels was)."""
        return self.meta.get("class_names")

    @property
    def num_classes(self) -> int:
        """How many classes the labels index into (some may have no images); 0 when unlabelled."""
        return len(self.class_names or [])

    @property
    def labels(self) -> np.ndarray | None:
        """Every record's class, an (N,) int64 array in index order (read-only: index or copy it), read in one
        piece; None when unlabelled."""
        if self.class_names is None:
            return None
        if self._labels is None:
            with self._txn() as txn:
                data = txn.get(LABELS_KEY)
            if data is None or len(data) != len(self) * LABEL_DTYPE.itemsize:
                raise SganError(f"The dataset {self.path} is damaged: its labels record is missing or does not "
                                f"hold {len(self)} labels; copy it again or rerun `sgan prep --overwrite`.")
            self._labels = np.frombuffer(data, LABEL_DTYPE).astype(np.int64, copy=False)
        return self._labels

    def label(self, index: int) -> int | None:
        """The class of image `index`; None when unlabelled."""
        self._check(index, self.resolutions[-1])
        labels = self.labels
        return None if labels is None else int(labels[index])

    def _txn(self):
        if self._pid != os.getpid():  # first read here, or a forked child holding its parent's handle
            self._close()
            self._env, self._pid = _open_env(self.path, readonly=True), os.getpid()
        return self._env.begin(buffers=False)

    def _close(self) -> None:
        if self._env is not None:
            self._env.close()
        self._env, self._pid = None, None

    def __getstate__(self):
        return {**self.__dict__, "_env": None, "_pid": None, "_labels": None}

    def __len__(self) -> int:
        return self.meta["count"]

    def _check(self, index: int, res: int) -> None:
        """Callers ask only for levels and images that exist; commands check their flags first."""
        if res not in self.resolutions:
            raise ValueError(f"{self.path} has no {res}x{res} level, only {self.resolutions}")
        if not 0 <= index < len(self):
            raise IndexError(f"image {index} is out of range: {self.path} holds {len(self)} images")

    def image(self, index: int, res: int) -> np.ndarray:
        """The (res, res, 3) uint8 RGB image `index` at level `res`."""
        self._check(index, res)
        with self._txn() as txn:
            try:
                return decode_level(txn.get(_img_key(res, index)), res)
            except (lmdb.Error, ValueError, TypeError, OSError) as e:  # a missing, cut or overwritten record
                raise SganError(f"The dataset {self.path} is damaged: image {index} at {res}x{res} cannot be read "
                                f"({type(e).__name__}); copy it again or rerun `sgan prep --overwrite`.") from None

    def source(self, index: int) -> dict:
        self._check(index, self.resolutions[-1])
        with self._txn() as txn:
            return _get_json(txn, _src_key(index))

    def sources(self):
        """The source record of every image, in index order."""
        with self._txn() as txn:
            for i in range(len(self)):
                yield _get_json(txn, _src_key(i))

    def rejects(self) -> list[dict]:
        with self._txn() as txn:
            return [json.loads(v) for v in _iter_prefix(txn, b"reject/")]


class LevelImages(torch.utils.data.Dataset):
    """One level of the LMDB as uint8 (3, res, res) tensors, for a DataLoader: what training and metrics
    read. Items are (index, mirror) pairs."""

    def __init__(self, dataset: Dataset, res: int):
        self.dataset, self.res = dataset, res

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, bool]) -> torch.Tensor:
        index, flip = item
        img = self.dataset.image(index, self.res)
        img = img[:, ::-1] if flip else img
        return torch.from_numpy(img.copy()).permute(2, 0, 1)
