"""The metrics by name, in the manner of NVIDIA's StyleGAN2-ADA `metric_main.py` (docs/design.md §6).

Each kind of metric is one function below, registered with `register`: the form of its names, the
paper's count (a name gives its own as N or Nk, e.g. fid10k or fid500), the parameters a name may
leave out, and the constants of its definition. It computes its results from an `Evaluator`
(metrics/evaluator.py), which holds the image sets, the generator and the shared Inception features.
The names listed by `sgan metrics --help` and by errors, the kinds that compare two given image sets or
score one, and the checks the command layer makes up front all come from these registrations.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stylegan_cli.core.console import progress
from stylegan_cli.core.errors import UsageError
from stylegan_cli.metrics import fid, inception_score, msssim, ppl, separability, swd
from stylegan_cli.metrics.classifiers import load_classifiers
from stylegan_cli.metrics.lpips import load_lpips

COUNTS = "counts as in fid10k or fid500"
_COUNT = r"(?:(?P<digits>\d+)(?P<k>k?))?"  # N or Nk, optional


@dataclass(frozen=True)
class Metric:
    """One requested metric: its name as typed, its kind and its parameters (None where the kind has none)."""

    name: str
    kind: str
    count: int  # generated images (pairs for msssim, samples for ppl and ls)
    neighbours: int | None = None  # pr
    space: str | None = None  # ppl, ls
    sampling: str | None = None  # ppl

    @property
    def needs_classifiers(self) -> bool:
        """Whether it labels images with attribute classifiers from `sgan classifiers train`."""
        return _KINDS[self.kind].needs_classifiers

    def image_problem(self, side: int) -> str | None:
        """Why it cannot be computed on side x side images, as one sentence; None when it can."""
        check = _KINDS[self.kind].image_problem
        return check(side) if check else None

    def compute(self, ev) -> dict[str, float]:
        """{result name: value} from the Evaluator `ev`, by the function registered for this kind."""
        return _KINDS[self.kind].compute(ev, self)


@dataclass(frozen=True)
class _Kind:
    form: re.Pattern
    count: int
    names: tuple[str, ...]
    defaults: dict
    compares_sets: bool
    one_set: bool
    needs_classifiers: bool
    image_problem: Callable[[int], str | None] | None
    compute: Callable


_KINDS: dict[str, _Kind] = {}


def register(kind: str, form: str, *, count: int, names: tuple[str, ...], compares_sets: bool = False,
             one_set: bool = False, needs_classifiers: bool = False,
             image_problem: Callable[[int], str | None] | None = None, **defaults):
    """Registers the decorated function `f(ev, metric) -> {result name: value}` as the metric `kind`.

    `form` is the regular expression of its names, with the groups `digits` and `k` for the count and
    one group per parameter (`neighbours`, `space`, `sampling`); `count` the paper's count; `names`
    the names `sgan metrics --help` lists; `defaults` the parameters a name may leave out;
    `compares_sets` whether it can compare two given image sets (`sgan metrics --real A --fake B`); `one_set`
    whether it scores the generated set alone, and so also a given one (`sgan metrics --fake A`, with or without
    --real); `image_problem(side)` says why images of a size will not do."""

    def decorator(compute: Callable) -> Callable:
        _KINDS[kind] = _Kind(re.compile(form), count, names, defaults, compares_sets, one_set, needs_classifiers,
                             image_problem, compute)
        return compute

    return decorator


def parse_metric(text: str) -> Metric:
    """'fid50k' -> Metric('fid50k', 'fid', 50000), 'pr50k3' -> neighbours 3, 'ppl_wend' -> W, endpoints."""
    for kind, spec in _KINDS.items():
        match = spec.form.fullmatch(text)
        if not match:
            continue
        groups = match.groupdict()
        digits, thousands = groups.pop("digits"), groups.pop("k")
        count = int(digits) * (1000 if thousands else 1) if digits else spec.count
        given = {name: int(value) if value.isdigit() else value for name, value in groups.items() if value}
        metric = Metric(text, kind, count, **{**spec.defaults, **given})
        if metric.count < 2 or (metric.neighbours is not None and metric.neighbours < 1):
            raise UsageError(f"{text}: a metric needs at least 2 images and 1 neighbour.")
        return metric
    raise UsageError(f"Unknown metric {text!r}; known: {NAMES} ({COUNTS}).")


def _one_of(choices: tuple[str, ...]) -> str:
    return "|".join(map(re.escape, choices))


# --- the metrics ---------------------------------------------------------------------------------


def _features(ev, metric: Metric, need: int) -> tuple[np.ndarray, np.ndarray]:
    """The Inception features of the reals (`Evaluator.real_features`) and of `metric.count` fakes, at
    least `need` of each."""
    real, fake = ev.real_features(), ev.features(ev.fake, metric.count)
    if len(real) < need or len(fake) < need:
        raise UsageError(f"{metric.name} needs at least {need} images in each set; there are {len(real)} real "
                         f"and {len(fake)} generated.")
    return real, fake


@register("fid", rf"fid{_COUNT}", count=50_000, names=("fid50k",), compares_sets=True)
def _fid(ev, metric: Metric) -> dict[str, float]:
    """FID (Heusel et al. 2017; StyleGAN §4): the Fréchet distance between Gaussians fitted to the
    Inception-v3 features of the generated images and of the reals."""
    return {metric.name: fid.fid(*_features(ev, metric, need=2))}


@register("kid", rf"kid{_COUNT}", count=50_000, names=("kid50k",), compares_sets=True)
def _kid(ev, metric: Metric) -> dict[str, float]:
    """KID (Bińkowski et al. 2018) on the same features, averaged over random subsets of them with
    the sizes NVIDIA's StyleGAN2-ADA uses."""
    real, fake = _features(ev, metric, need=2)
    return {metric.name: fid.kid(real, fake, num_subsets=100, max_subset_size=1000, seed=ev.seed)}


@register("pr", r"pr(?:(?P<digits>\d+)(?:(?P<k>k)(?P<neighbours>\d*))?)?", count=50_000, names=("pr50k3",),
          compares_sets=True, neighbours=3)
def _pr(ev, metric: Metric) -> dict[str, float]:
    """Precision and recall (Kynkäänniemi et al. 2019) on the same features, with K nearest neighbours
    (prNkK, as StyleGAN2-ADA's pr50k3): two results, name_precision and name_recall."""
    real, fake = _features(ev, metric, need=metric.neighbours + 1)
    precision, recall = fid.precision_recall(real, fake, metric.neighbours, device=ev.device)
    return {f"{metric.name}_precision": precision, f"{metric.name}_recall": recall}


@register("is", rf"is{_COUNT}", count=50_000, names=("is50k",), one_set=True)
def _is(ev, metric: Metric) -> dict[str, float]:
    """The Inception Score (Salimans et al. 2016 §4) of the generated images, as StyleGAN2-ADA's is50k computes it
    (metrics/inception_score.py) with its number of splits: two results, name_mean and name_std."""
    splits = 10
    n = metric.count if ev.fake.count is None else min(metric.count, ev.fake.count)
    if n < splits:
        raise UsageError(f"{metric.name} needs at least {splits} images, one per split; there are {n}.")
    mean, std = inception_score.inception_score(ev.logits(ev.fake, n), splits)
    return {f"{metric.name}_mean": mean, f"{metric.name}_std": std}


@register("ppl", rf"ppl_(?P<space>{_one_of(ppl.SPACES)})(?P<sampling>{_one_of(ppl.SAMPLINGS)}){_COUNT}",
          count=100_000, names=("ppl_zfull", "ppl_wfull", "ppl_zend", "ppl_wend"))
def _ppl(ev, metric: Metric) -> dict[str, float]:
    """Perceptual path length (StyleGAN §4.1) in Z or W, over the whole path or at its endpoints: the
    LPIPS-VGG16 distance of images a small step apart, as metrics/ppl.py defines it."""
    lpips = load_lpips(ev.lpips_path, ev.device)
    with progress(metric.name, metric.count) as bar:
        value = ppl.perceptual_path_length(ev.G, lpips, space=metric.space, sampling=metric.sampling,
                                           num_samples=metric.count, crop=ev.crop, batch=ev.batch, seed=ev.seed,
                                           device=ev.device, progress=bar)
    return {metric.name: value}


@register("ls", rf"ls(?:_(?P<space>{_one_of(separability.SPACES)}))?{_COUNT}", count=200_000, names=("ls", "ls_z"),
          needs_classifiers=True, space="w")
def _ls(ev, metric: Metric) -> dict[str, float]:
    """Linear separability (StyleGAN §4.2) in W (ls, ls_w) or Z (ls_z), with the attribute classifiers
    of `sgan classifiers train`; lower is better."""
    if ev.classifiers_path is None:
        raise ValueError(f"{metric.name} needs attribute classifiers; the evaluator has none.")
    classifiers = load_classifiers(ev.classifiers_path, ev.device)
    with progress(metric.name, metric.count) as bar:
        value = separability.linear_separability(ev.G, classifiers, num_samples=metric.count, space=metric.space,
                                                 batch=ev.batch, seed=ev.seed, device=ev.device, progress=bar)
    return {metric.name: value}


@register("swd", rf"swd{_COUNT}", count=16_384, names=("swd",), compares_sets=True,
          image_problem=lambda side: swd.image_problem(side, side, "real"))
def _swd(ev, metric: Metric) -> dict[str, float]:
    """Sliced Wasserstein distance (Progressive GAN §5) between as many reals as fakes, x1e3 per
    Laplacian-pyramid level (name_R for level RxR) and their mean (name)."""
    n = min(metric.count, ev.real.count)  # SWD compares sets of equal size
    by_level = swd.sliced_wasserstein(ev.real.batches(n, ev.batch), ev.fake.batches(n, ev.batch), seed=ev.seed,
                                      device=ev.device)
    levels = {f"{metric.name}_{res}": value for res, value in by_level.items()}
    return {metric.name: float(np.mean(list(by_level.values()))), **levels}


@register("msssim", rf"msssim{_COUNT}", count=10_000, names=("msssim",),
          image_problem=lambda side: msssim.image_problem(side, side))
def _msssim(ev, metric: Metric) -> dict[str, float]:
    """Mean MS-SSIM of pairs of generated images (Progressive GAN §5): lower means more diverse."""
    return {metric.name: msssim.mean_pairwise_ms_ssim(ev.fake.batches(2 * metric.count, ev.batch))}


NAMES = ", ".join(name for spec in _KINDS.values() for name in spec.names)  # fid50k, kid50k, ..., msssim
# The kinds that given image sets can give: two (--real A --fake B: fid, kid, pr, is, swd) and one (--fake A: is).
FOLDER_METRICS = tuple(kind for kind, spec in _KINDS.items() if spec.compares_sets or spec.one_set)
ONE_SET_METRICS = tuple(kind for kind, spec in _KINDS.items() if spec.one_set)
