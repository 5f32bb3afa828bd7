"""`sgan classifiers train`: the attribute classifiers of the linear-separability metric (StyleGAN §4.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stylegan_cli.cli.options import JsonOption, RunOption, power_of_two
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.device import default_device
from stylegan_cli.core.errors import UsageError
from stylegan_cli.metrics.classifiers import INDEX, ClassifierConfig, labelled_set, train_classifiers

app = typer.Typer(help="Attribute classifiers for the linear-separability metric (StyleGAN §4.2).",
                  no_args_is_help=True)
C = ClassifierConfig  # the defaults below are the configuration's own


@app.command("train")
def train(
    images: Annotated[Path, typer.Option("--images", help="Folder of the labelled images.", show_default=False)],
    labels: Annotated[Path, typer.Option("--labels", help="CSV with header file,<attr1>,<attr2>,... and 0/1 labels; "
                                                          "files relative to --images.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Output folder (default: RUN/classifiers).",
                                                show_default=False)] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", callback=power_of_two(4), show_default=False,
                                                      help="Classifier input size (default: the first image's "
                                                           "shorter side rounded to a power of two).")] = C.resolution,
    kimg: Annotated[float, typer.Option("--kimg", min=0.001, help="Thousands of images to train each "
                                                                  "classifier on.")] = C.kimg,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Minibatch size.")] = C.batch,
    lr: Annotated[float, typer.Option("--lr", min=0, help="Adam learning rate.")] = C.lr,
    fmap_base: Annotated[int, typer.Option("--fmap-base", min=16,
                                           help="Feature-map budget, as in sgan train.")] = C.fmap_base,
    fmap_max: Annotated[int, typer.Option("--fmap-max", min=1, help="Most feature maps in any layer.")] = C.fmap_max,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.0, max=0.9, help="Share of the images "
                                                "held out to measure accuracy.")] = C.val_fraction,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, the initial weights and the "
                                                     "image order.")] = C.seed,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train one binary classifier per attribute and report each one's validation accuracy."""
    run_dir = rundir.resolve_run(run)
    out = out if out is not None else rundir.stage_dir(run_dir, "classifiers")
    if out.exists() and not out.is_dir():
        raise UsageError(f"The output folder {out} is a file.")
    config = ClassifierConfig(resolution=resolution, kimg=kimg, batch=batch, lr=lr, fmap_base=fmap_base,
                              fmap_max=fmap_max, val_fraction=val_fraction, seed=seed)
    data = labelled_set(images, labels, config)
    with rundir.stage(run_dir, writes=out) as record:
        index = train_classifiers(data, out, default_device(), record.outputs)
        for name in index["attributes"]:
            report = index["reports"][name]
            err.print(f"{name}: validation accuracy {report['accuracy']:.3f} "
                      f"(always the majority class: {report['baseline']:.3f})")
        paths = [str(out / index["reports"][name]["weights"]) for name in index["attributes"]] + [str(out / INDEX)]
        results(paths, {"outputs": paths, **index} if as_json else None)
