"""Evaluating metrics: an evaluator that holds the image sets and the generator, shares Inception
features between metrics and caches the reals' on disk by the dataset's fingerprint; each metric is
computed by the function metrics/registry.py holds for its kind, and logged to RUN/metrics.jsonl."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core import rundir
from stylegan_cli.core.console import progress
from stylegan_cli.core.errors import SganError
from stylegan_cli.data.dataset import Dataset
from stylegan_cli.metrics import weights
from stylegan_cli.metrics.imagesets import MAX_REAL, AtResolution, DatasetImages, GeneratedImages, ImageSet
from stylegan_cli.metrics.inception import load_inception
from stylegan_cli.metrics.registry import Metric
from stylegan_cli.model.generator import Generator

# `sgan metrics`'s defaults (images per forward pass; seed of the latents, noise and projections), with which
# `sgan train --metrics` evaluates its checkpoints, so that each result is what `sgan metrics --ckpt` gives.
BATCH = 32
SEED = 0


@dataclass
class Evaluator:
    """Computes metrics, sharing features between them: the reals' (cached on disk) and the fakes'."""

    real: ImageSet | None  # None: a given set scored alone (`sgan metrics is --fake A`)
    fake: ImageSet
    G: AtResolution | None = None  # the generator at the evaluated resolution (PPL, LS)
    batch: int = 32
    seed: int = 0
    device: torch.device = torch.device("cpu")
    inception_path: Path | None = None
    lpips_path: Path | None = None
    classifiers_path: Path | None = None
    crop: bool = True  # PPL: crop generated faces to the face region
    _inception: torch.nn.Module | None = None
    # (id(set), n) -> (the set, its features, its logits or None). Each entry holds its set, so no other set can take
    # that id while this evaluator lives: a set scored, dropped and followed by another never lends the next one its
    # features.
    _features: dict = field(default_factory=dict)

    def inception(self):
        if self._inception is None:
            self._inception = load_inception(self.inception_path, self.device)
        return self._inception

    def features(self, images: ImageSet, n: int) -> np.ndarray:
        """(n, 2048) Inception features of the first n images of the set."""
        return self._inception_outputs(images, n, logits=False)[0]

    def logits(self, images: ImageSet, n: int) -> np.ndarray:
        """(n, 1008) Inception logits without the output bias (the Inception Score's) of the first n images of the
        set, from the pass that gives their features; a set whose features alone are cached takes one more pass."""
        self.inception().check_logits()
        return self._inception_outputs(images, n, logits=True)[1]

    def _inception_outputs(self, images: ImageSet, n: int, logits: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Features and logits (None where the network has no output layer) of the first n images of the set."""
        n = n if images.count is None else min(n, images.count)
        key = (id(images), n)
        if key in self._features and not (logits and self._features[key][2] is None):
            return self._features[key][1:]
        cache = None
        if images.cache_key is not None:
            cache = weights.cache_dir() / "stats" / f"{images.cache_key}-{n}-inception.npy"
            if cache.is_file() and not logits:
                feats = np.load(cache, allow_pickle=False)
                self._features[key] = (images, feats, None)
                return feats, None
        net = self.inception()
        out = []
        with progress(f"Inception features of {images.description}", n) as bar:
            for batch in images.batches(n, self.batch):
                out.append([None if t is None else t.cpu().numpy() for t in net.outputs(batch.to(self.device))])
                bar.advance(len(batch))
        feats = np.concatenate([f for f, _ in out])
        found = np.concatenate([g for _, g in out]) if net.has_logits else None
        if cache is not None:
            with rundir.atomic_path(cache) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, feats)
        self._features[key] = (images, feats, found)
        return feats, found

    def real_features(self) -> np.ndarray:
        """Inception features of the reals: all of them, or the first MAX_REAL of a larger dataset."""
        return self.features(self.real, min(self.real.count, MAX_REAL))

    def evaluate(self, metric: Metric) -> dict[str, float]:
        """{result name: value} for one metric (precision/recall and SWD give several), computed by the
        function the registry holds for its kind. A metric the images cannot give (SWD or MS-SSIM of
        images under 16x16, as while `sgan train --metrics` is at 8x8) is a run-time failure; `sgan
        metrics` refuses it up front."""
        problem = metric.image_problem(self.fake.size)
        if problem:
            raise SganError(problem)
        return metric.compute(self)


@dataclass
class Result:
    metric: str
    value: float
    seconds: float
    checkpoint: str | None
    kimg: float | None
    settings: dict


def run_metrics(evaluator: Evaluator, metrics: list[Metric], run_dir: Path, checkpoint: str | None,
                kimg: float | None, settings: dict) -> list[Result]:
    """Evaluates each metric in turn, appending each result to RUN/metrics.jsonl as soon as it is known."""
    results = []
    for metric in metrics:
        start = time.time()
        values = evaluator.evaluate(metric)
        seconds = time.time() - start
        extra = {"count": metric.count}
        if metric.neighbours is not None:
            extra["neighbours"] = metric.neighbours
        for name, value in values.items():
            result = Result(name, float(value), round(seconds, 3), checkpoint, kimg, {**settings, **extra})
            results.append(result)
            rundir.append_jsonl(rundir.metrics_file(run_dir), asdict(result))
    return results


def checkpoint_settings(G: Generator, res: int, alpha: float, seed: int, data: str) -> dict:
    """The settings recorded with a checkpoint's results: where and from what it was evaluated, and, for a
    class-conditional G, that its images took labels drawn from the dataset's."""
    settings = {"resolution": res, "alpha": alpha, "seed": seed, "data": data}
    if G.c_dim:
        settings["labels"] = "drawn from the dataset"
    return settings


def for_checkpoint(G: Generator, res: int, alpha: float, dataset: Dataset, *, batch: int, seed: int,
                   device: torch.device, workers: int, inception: Path | None = None, lpips: Path | None = None,
                   classifiers: Path | None = None, crop: bool = True, precision: str = "fp32") -> Evaluator:
    """An evaluator of generator G (at `res`, fade `alpha`) against `dataset` at the same resolution; the images
    the metrics compare are generated under `precision` autocast (PPL's always in fp32, metrics/ppl.py); a
    class-conditional G's labels are drawn from the dataset's (docs/design.md §15)."""
    labels = dataset.labels if G.c_dim else None
    at_res = AtResolution(G, res, alpha, labels, seed)
    return Evaluator(real=DatasetImages(dataset, res, workers),
                     fake=GeneratedImages(G, res, alpha, seed, f"the generator at {res}x{res}", precision, labels),
                     G=at_res, batch=batch, seed=seed, device=device, inception_path=inception,
                     lpips_path=lpips, classifiers_path=classifiers, crop=crop)
