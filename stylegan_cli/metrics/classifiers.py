"""`sgan classifiers`: the attribute classifiers that label generated images for the linear-separability
metric (StyleGAN §4.2, App. C).

The labelled set is a folder of images and a CSV whose header is `file,<attr1>,<attr2>,...` (file names
relative to the folder, labels 0 or 1), such as CelebA's 40 attributes. As the paper does, each attribute
gets its own binary classifier with the discriminator's architecture, minibatch standard deviation disabled
(App. C), trained on the logistic loss with Adam at learning rate 0.001, minibatch 8, for 150k images (the
paper names no Adam betas; we take StyleGAN's 0 and 0.99). Images are centre-cropped to squares and resized
to the classifiers' resolution. A random share of the images (the same for every attribute) is held out to
measure each classifier's accuracy.

Output (default RUN/classifiers/): `<attribute>.pt` per attribute, a plain state dict, and
`classifiers.json` (attributes, resolution, architecture, training settings, accuracies, counts), both
written atomically. `classifiers.json` is rewritten after each attribute, so a re-run with the same
settings and labels skips the attributes already finished and trains the rest; with anything changed it
trains them all anew. `load_classifiers` reads the folder back for the metric.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, progress
from stylegan_cli.core.download import sha256
from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.data.images import Rejected, load_rgb
from stylegan_cli.model.discriminator import Discriminator
from stylegan_cli.synthesis.images import from_uint8

FORMAT = "sgan-classifiers"
INDEX = "classifiers.json"
ADAM_BETAS = (0.0, 0.99)  # the Adam settings StyleGAN inherits from Progressive GAN (App. C)
ADAM_EPS = 1e-8
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class ClassifierConfig:
    """How the classifiers are trained: the paper's Adam learning rate, minibatch and length (App. C), the
    feature-map budget of `sgan train`'s networks, the share held out for validation and the seed."""

    resolution: int | None = None  # None: the first image's shorter side rounded to a power of two
    kimg: float = 150
    batch: int = 8
    lr: float = 0.001
    fmap_base: int = 8192
    fmap_max: int = 512
    val_fraction: float = 0.1
    seed: int = 0


def build_classifier(resolution: int, fmap_base: int, fmap_max: int) -> Discriminator:
    """The discriminator's architecture with one logit output (StyleGAN App. C). With a minibatch-std group
    of one the layer only appends a constant map, so it is disabled: each image is classified on its own."""
    return Discriminator(resolution, fmap_base=fmap_base, fmap_max=fmap_max, mbstd_group_size=1)


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """(N, 3, H, W) to (N, 3, resolution, resolution): area averaging down, bilinear up."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    if images.shape[-1] > resolution:
        return F.interpolate(images, size=(resolution, resolution), mode="area")
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)


# --- the labelled set --------------------------------------------------------------------------


def read_labels(images_dir: Path, labels_csv: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """The attribute names, the image paths and an (N, A) 0/1 array from the labels CSV, checked."""
    if not images_dir.is_dir():
        raise UsageError(f"The image folder {images_dir} does not exist." if not images_dir.exists() else
                         f"{images_dir} is not a folder.")
    if not labels_csv.is_file():
        raise UsageError(f"The labels file {labels_csv} does not exist.")
    try:
        with open(labels_csv, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{labels_csv} is not a readable CSV file ({e}).") from None
    header = [name.strip() for name in rows[0]] if rows else []
    if "file" not in header:
        raise UsageError(f"{labels_csv} has no `file` column; its header must be file,<attribute>,<attribute>,...")
    attributes = [name for name in header if name != "file"]
    if not attributes:
        raise UsageError(f"{labels_csv} has no attribute columns besides `file`.")
    for name in attributes:
        if not _ATTRIBUTE_NAME.fullmatch(name) or attributes.count(name) > 1:
            raise UsageError(f"{labels_csv}: attribute {name!r} must be unique and made of letters, digits, "
                             "'_', '-' and '.' (it names a file).")
    file_col = header.index("file")
    columns = [header.index(name) for name in attributes]
    paths, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UsageError(f"{labels_csv} line {line} has {len(row)} values; the header has {len(header)}.")
        for name, col in zip(attributes, columns):
            if row[col].strip() not in ("0", "1"):
                raise UsageError(f"{labels_csv} line {line}: {name} is {row[col]!r}; labels must be 0 or 1.")
        paths.append(images_dir / row[file_col].strip())
        labels.append([int(row[col]) for col in columns])
    if not paths:
        raise UsageError(f"{labels_csv} lists no images.")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UsageError(f"{len(missing)} of the {len(paths)} files listed in {labels_csv} cannot be found, "
                         f"e.g. {missing[0]}.")
    labels = np.array(labels, dtype=np.int64)
    for name, column in zip(attributes, labels.T):
        if column.min() == column.max():
            raise UsageError(f"Attribute {name} is {column[0]} for every image in {labels_csv}; "
                             "a classifier needs examples of both 0 and 1.")
    return attributes, paths, labels


def _decode(path: Path) -> np.ndarray:
    try:
        return load_rgb(path)
    except Rejected as e:
        raise UsageError(f"Cannot use {path}: {e}.") from None


def default_resolution(path: Path) -> int:
    """The shorter side of an image rounded to the nearest power of two (at least 4)."""
    return max(4, 2 ** round(math.log2(min(_decode(path).shape[:2]))))


def load_images(paths: list[Path], resolution: int) -> torch.Tensor:
    """(N, 3, R, R) uint8: each image centre-cropped to a square and resized to R (box filter down,
    bilinear up, as `resize` treats generated images), decoded in threads."""

    def load(path: Path) -> np.ndarray:
        rgb = _decode(path)
        h, w, _ = rgb.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = Image.fromarray(rgb[top : top + side, left : left + side])
        method = Image.Resampling.BOX if side > resolution else Image.Resampling.BILINEAR
        return np.asarray(square.resize((resolution, resolution), method))

    images = np.empty((len(paths), resolution, resolution, 3), np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool, progress("load", len(paths)) as bar:
        for i, array in enumerate(pool.map(load, paths)):
            images[i] = array
            bar.advance()
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def split(count: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (train, validation) split of `count` indices; at least one image on each side."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    n_val = min(max(1, round(count * val_fraction)), count - 1)
    return order[n_val:].sort().values, order[:n_val].sort().values


@dataclass(frozen=True)
class LabelledSet:
    """The checked labelled images, and the settings their classifiers are trained with: what
    classifiers.json records and what decides whether a re-run can keep a classifier."""

    attributes: list[str]
    paths: list[Path]
    labels: np.ndarray  # (N, A) 0/1
    settings: dict


def labelled_set(images_dir: Path, labels_csv: Path, config: ClassifierConfig) -> LabelledSet:
    """The labelled set of `read_labels`, with the settings `config` gives for it."""
    attributes, paths, labels = read_labels(images_dir, labels_csv)
    settings = {
        "resolution": config.resolution or default_resolution(paths[0]),
        "architecture": {"network": "Discriminator", "fmap_base": config.fmap_base, "fmap_max": config.fmap_max,
                         "mbstd_group_size": 1},
        "training": {"kimg": config.kimg, "batch": config.batch, "lr": config.lr, "adam_betas": list(ADAM_BETAS),
                     "adam_eps": ADAM_EPS, "loss": "logistic", "val_fraction": config.val_fraction,
                     "seed": config.seed},
        "data": {"images": str(images_dir.resolve()), "labels": str(labels_csv.resolve()),
                 "labels_sha256": sha256(labels_csv), "count": len(paths)},
    }
    return LabelledSet(attributes, paths, labels, settings)




# --- training ----------------------------------------------------------------------------------


def _steps(training: dict) -> int:
    """Minibatches per classifier: `kimg` thousand images, the last minibatch full."""
    return math.ceil(training["kimg"] * 1000 / training["batch"])


def _as_input(images_u8: torch.Tensor, device: torch.device) -> torch.Tensor:
    return from_uint8(images_u8.to(device))


def train_one(images: torch.Tensor, labels: torch.Tensor, settings: dict, device: torch.device, bar) -> Discriminator:
    """One attribute's classifier: logistic loss on its logit, Adam, `kimg` thousand images in minibatches
    drawn epoch by epoch from a seeded permutation. The seed alone decides the initial weights and the
    order, so each attribute's classifier is independent of the other columns of the CSV."""
    arch, train = settings["architecture"], settings["training"]
    torch.manual_seed(train["seed"])
    net = build_classifier(settings["resolution"], arch["fmap_base"], arch["fmap_max"]).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=train["lr"], betas=ADAM_BETAS, eps=ADAM_EPS)
    order = torch.Generator().manual_seed(train["seed"])
    batch, steps = train["batch"], _steps(train)
    queue = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(queue) < batch:
            queue = torch.cat([queue, torch.randperm(len(images), generator=order)])
        picked, queue = queue[:batch], queue[batch:]
        logits = net(_as_input(images[picked], device))
        loss = F.binary_cross_entropy_with_logits(logits, labels[picked].to(device).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.advance(len(picked))
    return net.eval().requires_grad_(False)


@torch.no_grad()
def predict(net: Discriminator, images: torch.Tensor, device: torch.device, batch: int = 256) -> torch.Tensor:
    """The 0/1 predictions of a classifier for uint8 images."""
    return torch.cat([net(_as_input(images[i : i + batch], device)).cpu() > 0 for i in range(0, len(images), batch)])


def _finished(index_path: Path, settings: dict) -> dict:
    """The attributes (name -> report) a previous run with the same settings has finished."""
    try:
        old = json.loads(index_path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or old.get("format") != FORMAT or old.get("settings") != settings:
        return {}
    return {name: report for name, report in old.get("reports", {}).items()
            if (index_path.parent / report["weights"]).is_file()}


def _write_index(out: Path, attributes: list[str], settings: dict, counts: dict, reports: dict) -> dict:
    """classifiers.json: what the loader and a reader need, and what decides whether a re-run can skip."""
    done = [name for name in attributes if name in reports]
    index = {
        "format": FORMAT, "version": 1, "complete": len(done) == len(attributes),
        "attributes": attributes, "resolution": settings["resolution"],
        "architecture": settings["architecture"],
        "accuracy": {name: reports[name]["accuracy"] for name in done},
        "counts": counts,
        "settings": settings, "reports": {name: reports[name] for name in done},
    }
    rundir.write_json(out / INDEX, index)
    return index


def train_classifiers(data: LabelledSet, out: Path, device: torch.device, outputs: list[str]) -> dict:
    """Trains one classifier per attribute into the folder `out` and returns classifiers.json's content.

    The classifiers a previous run with the same settings finished are kept. Each one trained is written
    at once, with classifiers.json after it, so an interrupted run keeps the classifiers it finished and a
    re-run trains the rest. The path of every file written is appended to `outputs` as it is written."""
    reports = _finished(out / INDEX, data.settings)
    training = data.settings["training"]
    pixels = load_images(data.paths, data.settings["resolution"])
    train_idx, val_idx = split(len(data.paths), training["val_fraction"], training["seed"])
    targets = torch.from_numpy(data.labels)
    counts = {"images": len(data.paths), "train": len(train_idx), "validation": len(val_idx)}
    train_pixels, val_pixels = pixels[train_idx], pixels[val_idx]
    todo = [i for i, name in enumerate(data.attributes) if name not in reports]
    if len(todo) < len(data.attributes):
        err.print(f"Keeping {len(data.attributes) - len(todo)} classifiers trained before with these settings.")
    with progress("train", len(todo) * _steps(training) * training["batch"]) as bar:
        for i in todo:
            name = data.attributes[i]
            net = train_one(train_pixels, targets[train_idx, i], data.settings, device, bar)
            truth = targets[val_idx, i].bool()
            majority = bool(targets[train_idx, i].float().mean() >= 0.5)
            correct = int((predict(net, val_pixels, device) == truth).sum())
            weights = f"{name}.pt"
            with rundir.atomic_path(out / weights) as tmp:
                torch.save(net.state_dict(), tmp)
            reports[name] = {
                "weights": weights,
                "accuracy": correct / len(truth),
                "baseline": int((truth == majority).sum()) / len(truth),
                "positives": {"train": int(targets[train_idx, i].sum()), "validation": int(truth.sum())},
            }
            outputs.append(str(out / weights))
            _write_index(out, data.attributes, data.settings, counts, reports)
    index = _write_index(out, data.attributes, data.settings, counts, reports)
    outputs.append(str(out / INDEX))
    return index


# --- loading for the metric --------------------------------------------------------------------


class Classifiers:
    """The trained attribute classifiers, ready to label generated images."""

    def __init__(self, attributes: list[str], resolution: int, networks: list[Discriminator], device: torch.device):
        self.attributes, self.resolution, self.networks, self.device = attributes, resolution, networks, device

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images in [-1, 1], any resolution, to the (N, A) probabilities of each attribute being 1."""
        x = resize(images.to(self.device, torch.float32), self.resolution)
        return torch.stack([torch.sigmoid(net(x)) for net in self.networks], dim=1)


def load_classifiers(path: Path, device: torch.device | str = "cpu") -> Classifiers:
    """The classifiers that `sgan classifiers train` wrote to the folder `path` (or its classifiers.json)."""
    path = Path(path)
    folder = path.parent if path.name == INDEX and path.is_file() else path
    if not folder.exists():
        raise UsageError(f"No classifiers at {folder}; train them with `sgan classifiers train`.")
    if not (folder / INDEX).is_file():
        raise UsageError(f"{folder} is not a classifiers folder: it has no {INDEX} from `sgan classifiers train`.")
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, ValueError):
        index = None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise UsageError(f"{folder / INDEX} is not an sgan classifiers index.")
    if not index["complete"]:
        raise UsageError(f"The classifiers in {folder} are incomplete ({len(index['reports'])} of "
                         f"{len(index['attributes'])} trained); re-run `sgan classifiers train` to finish them.")
    arch = index["architecture"]
    networks = []
    for name in index["attributes"]:
        weights = folder / index["reports"][name]["weights"]
        net = build_classifier(index["resolution"], arch["fmap_base"], arch["fmap_max"])
        try:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as e:
            raise SganError(f"Cannot load the {name} classifier from {weights} ({type(e).__name__}).") from None
        networks.append(net.to(device).eval().requires_grad_(False))
    return Classifiers(list(index["attributes"]), index["resolution"], networks, torch.device(device))
