"""`sgan train`: training of a style-based generator on the run's dataset, progressive or (StyleGAN2's
skip and residual networks) at full resolution, resuming from its newest checkpoint (docs/design.md §6).
The flags build a `TrainConfig`; `training/` does the rest."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, replace
from typing import Annotated, Optional

import torch
import torch.distributed as dist
import typer

from stylegan_cli.cli.options import (
    AdaKimgOption,
    Arch,
    AugOption,
    AugpipeOption,
    ConfigFOption,
    DArchOption,
    DataOption,
    GArchOption,
    JsonOption,
    Loss,
    POption,
    Precision,
    RunOption,
    TargetOption,
    architectures,
    augmentation,
    given_augmentation,
    power_of_two,
)
from stylegan_cli.core import locks, rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.data.dataset import Dataset
from stylegan_cli.metrics.registry import parse_metric
from stylegan_cli.model import checkpoint
from stylegan_cli.training.augment import PRESETS
from stylegan_cli.training.config import AUG_FLAGS, TrainConfig
from stylegan_cli.training.distributed import init_distributed
from stylegan_cli.training.loop import train_loop
from stylegan_cli.training.schedule import batch_size, levels
from stylegan_cli.training.trainer import Trainer


def _param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _metric_names(given: list[str] | None) -> list[str]:
    """--metrics values, commas split, each checked now rather than after hours of training."""
    names = [name.strip() for value in given or [] for name in value.split(",") if name.strip()]
    for name in names:
        metric = parse_metric(name)
        if metric.needs_classifiers:
            raise UsageError(f"{name} needs trained attribute classifiers; run `sgan metrics ls` on a checkpoint.")
    return names


def _stored_choices(ctx: typer.Context, config_f: bool, stored: dict) -> dict:
    """What a resumed run (or one started by `sgan import`) keeps from its checkpoint: every setting that shapes the
    networks, and whether it grows, unless given on the command line (a given one must then match)."""
    given = {key for key in ("resolution", "arch", "g_arch", "d_arch", "fmap_base", "fmap_max", "progressive")
             if ctx.get_parameter_source(key).name != "DEFAULT"}
    if config_f:
        given |= {"arch", "g_arch", "d_arch"}
    kept = {**checkpoint.network_config(stored), "progressive": stored.get("progressive")}
    return {k: v for k, v in kept.items() if k not in given and v is not None}


def _stored_augmentation(ctx: typer.Context, flags: dict, state: dict | None) -> dict:
    """What a resumed run keeps of its augmentation: all of it (none, for a run trained before sgan augmented), and a
    flag given to say otherwise is refused. A network that `sgan import` has just written has none to keep."""
    if state is None or ("imported" in state and state["nimg"] == 0):
        return {}
    config = state["config"]
    stored = {k: config[k] for k in AUG_FLAGS} if config.get("aug") else {"aug": "none"}
    differ = [k for k in given_augmentation(ctx) if k in stored and flags[k] != stored[k]]
    if differ:
        was = " ".join(f"{AUG_FLAGS[k]} {stored[k]}" for k in AUG_FLAGS if stored.get(k) is not None)
        raise UsageError(f"This run was trained with {was}; pass the same (or nothing) or use a new run.")
    return stored


def _conditioning(cond: bool, dataset: Dataset, data_path, state: dict | None) -> dict:
    """The run's classes (docs/design.md §15): the dataset's labels with --cond, none without; a resumed run must be
    given --cond exactly when it was trained with it, on as many classes."""
    stored = 0 if state is None else checkpoint.network_config(state["config"])["c_dim"]
    if state is not None and bool(stored) != cond:
        held = f"a class-conditional network ({stored} classes)" if stored else "an unconditional network"
        raise UsageError(f"This run's checkpoint holds {held}; {'pass' if stored else 'leave out'} --cond or use a "
                         f"new run.")
    if not cond:
        return {"c_dim": 0, "class_names": []}
    if not dataset.num_classes:
        raise UsageError(f"--cond needs a labelled dataset and {data_path} has no labels; prepare one with "
                         f"`sgan prep images --labels folders` (or --labels dataset.json).")
    if stored and stored != dataset.num_classes:
        raise UsageError(f"The run's network has {stored} classes and {data_path} has {dataset.num_classes}; "
                         f"use a dataset with the same classes or a new run.")
    return {"c_dim": dataset.num_classes, "class_names": list(dataset.class_names)}


def _say_augmentation(cfg: TrainConfig, defaulted: bool, images: int) -> None:
    if cfg.aug == "none":
        return
    how = (f"p adapted towards r_t {cfg.ada_target} (at most 1 per {cfg.ada_kimg:g} kimg)" if cfg.aug == "ada"
           else f"p {cfg.aug_p}")
    why = f", the default for stylegan2 on {images:,} images" if defaulted else ""
    err.print(f"Augmenting what D sees: --aug {cfg.aug} --augpipe {cfg.augpipe} ({', '.join(PRESETS[cfg.augpipe])}), "
              f"{how}{why}.", highlight=False)


C = TrainConfig  # the defaults below are the configuration's own


def train(
    ctx: typer.Context,
    run: RunOption = None,
    data: DataOption = None,
    resolution: Annotated[Optional[int], typer.Option(
        "--resolution", callback=power_of_two(8), show_default=False,
        help="Target resolution (default: the dataset's largest).")] = None,
    arch: Annotated[Arch, typer.Option(
        "--arch", help="Generator: StyleGAN, StyleGAN2 (weight demodulation), or Progressive GAN.")] = C.arch,
    g_arch: GArchOption = C.g_arch,
    d_arch: DArchOption = C.d_arch,
    config_f: ConfigFOption = False,
    fmap_base: Annotated[Optional[int], typer.Option(
        "--fmap-base", min=16, show_default=False,
        help="Feature-map budget: maps per resolution are min(fmap_base / 2^(log2 res - 1), fmap_max) (default "
             "8192; 16384, as StyleGAN2 config F, with a skip or resnet G or D).")] = C.fmap_base,
    fmap_max: Annotated[int, typer.Option("--fmap-max", min=1, help="Most feature maps in any layer.")] = C.fmap_max,
    kimg: Annotated[float, typer.Option(
        "--kimg", min=0.001, help="Thousands of real images to train on in total.")] = C.kimg,
    lod_kimg: Annotated[float, typer.Option(
        "--lod-kimg", min=0.001,
        help="Thousands of images to fade in each new resolution, and to stabilise it.")] = C.lod_kimg,
    progressive: Annotated[Optional[bool], typer.Option(
        "--progressive/--no-progressive", show_default=False,
        help="Grow from 8x8 (4x4 for pggan), or train at the target size (default: grow, unless G or D is "
             "skip or resnet).")] = C.progressive,
    batch: Annotated[Optional[int], typer.Option(
        "--batch", min=1, show_default=False,
        help="Global minibatch (default: per resolution, 512 at 4x4 down to 32 from 64x64; 32 with a skip or "
             "resnet G or D).")] = C.batch,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", min=0, show_default=False,
        help="Learning rate (default: 0.001, rising to 0.0015/0.002/0.003 at 128/256/512+; 0.002 with a skip "
             "or resnet G or D).")] = C.lr,
    loss: Annotated[Loss, typer.Option("--loss", help="Non-saturating logistic with R1, or WGAN-GP.")] = C.loss,
    gamma: Annotated[float, typer.Option("--gamma", min=0, help="R1 weight.")] = C.gamma,
    r1_every: Annotated[Optional[int], typer.Option(
        "--r1-every", min=1, show_default=False,
        help="Apply R1 every N minibatches (default 1; 16 for stylegan2).")] = None,
    pl_weight: Annotated[Optional[float], typer.Option(
        "--pl-weight", min=0, show_default=False,
        help="Path-length regularisation weight (default 0; 2 for stylegan2).")] = None,
    pl_every: Annotated[int, typer.Option(
        "--pl-every", min=1, help="Apply path-length regularisation every N minibatches.")] = C.pl_every,
    mixing: Annotated[Optional[float], typer.Option(
        "--mixing", min=0, max=1, show_default=False,
        help="Share of images generated from two latents (default 0.9; 0 for pggan).")] = None,
    mirror: Annotated[bool, typer.Option("--mirror", help="Flip half the real images left-right.")] = C.mirror,
    ema_kimg: Annotated[float, typer.Option(
        "--ema-kimg", min=0.001,
        help="Half-life of the generator's moving average, in thousands of images.")] = C.ema_kimg,
    ema_rampup: Annotated[float, typer.Option(
        "--ema-rampup", min=0,
        help="Cap that half-life at this share of the images seen so far, so the average follows G early on "
             "(StyleGAN2-ADA); 0 keeps it constant.")] = C.ema_rampup,
    precision: Annotated[Optional[Precision], typer.Option(
        "--precision", show_default=False,
        help="Arithmetic (default: bf16 on GPUs that have it, else fp32).")] = None,
    compile_: Annotated[bool, typer.Option(
        "--compile", help="torch.compile the generator and discriminator.")] = C.compile,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = C.seed,
    snap: Annotated[float, typer.Option(
        "--snap", min=0.001, help="Save a checkpoint every this many kimg.")] = C.snap_kimg,
    tick: Annotated[float, typer.Option("--tick", min=0.001, help="Log a line every this many kimg.")] = C.tick_kimg,
    image_ticks: Annotated[int, typer.Option(
        "--image-ticks", min=1, help="Save a grid of fakes every N ticks.")] = C.image_ticks,
    keep: Annotated[Optional[int], typer.Option(
        "--keep", min=1, show_default=False, help="Keep only the newest N checkpoints (default: all).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Data-loading processes per GPU.")] = C.workers,
    metrics: Annotated[Optional[list[str]], typer.Option(
        "--metrics", show_default=False,
        help="Metrics to compute during training, as for `sgan metrics` (repeat the flag or separate with "
             "commas), e.g. fid10k.")] = None,
    metrics_every: Annotated[Optional[float], typer.Option(
        "--metrics-every", min=0.001, show_default=False,
        help="Compute --metrics every this many kimg (default: at every snapshot) and at the end.")] = None,
    aug: AugOption = None,
    augpipe: AugpipeOption = C.augpipe,
    target: TargetOption = None,
    p: POption = None,
    ada_kimg: AdaKimgOption = None,
    cond: Annotated[bool, typer.Option(
        "--cond", help="Class-conditional: G and D take the dataset's labels (StyleGAN2-ADA's --cond); needs a "
                       "labelled dataset, and again on every resume.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the configuration and parameter counts (JSON), then exit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train a generator on the run's dataset, resuming from its newest checkpoint if it has one."""
    networks = architectures(ctx, config_f, arch=arch, g_arch=g_arch, d_arch=d_arch)
    flags = augmentation(aug, augpipe, target, p, ada_kimg)
    env = init_distributed()
    run_dir = rundir.resolve_run(run)
    data_path = rundir.dataset_path(run_dir, data)
    dataset = Dataset(data_path)
    writer = env.main and not dry_run
    if writer:  # one trainer per run, from before it reads the newest checkpoint (core/locks.py)
        locks.hold(rundir.checkpoints_dir(run_dir))
    latest, state, damaged = checkpoint.newest_readable(run_dir, env.device, set_aside=writer)
    if damaged and latest is None:
        raise SganError(f"{damaged[0][0].rstrip('.')}, and no older checkpoint of {run_dir} is readable; move the "
                        f"damaged files away to start afresh.")
    for reason, aside in damaged if writer else []:
        err.print(f"{reason} Set aside as {aside}; continuing from {latest}.", style="yellow", markup=False)
    stored = {} if state is None else _stored_choices(ctx, config_f, state["config"])
    resolution = stored.pop("resolution", resolution)
    if resolution is None:
        resolution = dataset.resolutions[-1]
    if resolution not in dataset.resolutions:
        raise UsageError(f"--resolution {resolution} is above the dataset's largest level, "
                         f"{dataset.resolutions[-1]}x{dataset.resolutions[-1]}.")
    cfg = TrainConfig(
        resolution=resolution, **networks, fmap_base=fmap_base, fmap_max=fmap_max, kimg=kimg,
        lod_kimg=lod_kimg, progressive=progressive, batch=batch, lr=lr, loss=Loss(loss).value, gamma=gamma,
        r1_every=r1_every, pl_weight=pl_weight, pl_every=pl_every, mixing=mixing, mirror=mirror, ema_kimg=ema_kimg,
        ema_rampup=ema_rampup, precision=precision.value if precision else None, compile=compile_, seed=seed,
        snap_kimg=snap, tick_kimg=tick, image_ticks=image_ticks, keep=keep, data=str(data_path.resolve()),
        workers=workers, metrics=_metric_names(metrics), metrics_kimg=metrics_every, **flags,
    )
    stored.pop("c_dim", None)
    cfg = replace(cfg, **stored, **_stored_augmentation(ctx, flags, state),
                  **_conditioning(cond, dataset, data_path, state))
    if cfg.progressive and cfg.redesigned:
        raise UsageError("--progressive needs --g-arch orig and --d-arch orig: StyleGAN2's skip and residual "
                         "designs replace growing (§4.1; a resnet D, for one, has no FromRGB below full resolution "
                         "to fade in), so they train at full resolution from the start.")
    defaulted = cfg.aug is None
    cfg = cfg.resolved(env.device, images=len(dataset))
    if env.main and not dry_run:
        _say_augmentation(cfg, defaulted, len(dataset))
    trainer = Trainer(cfg, run_dir, dataset, env)
    for level in levels(cfg, trainer.G.start_resolution):  # checked now rather than after hours of training
        if batch_size(cfg, level) % env.world:
            raise UsageError(f"The batch of {batch_size(cfg, level)} does not split evenly across {env.world} "
                             f"processes.")
        for metric in map(parse_metric, cfg.metrics):
            problem = metric.image_problem(level)
            if problem:
                raise UsageError(f"--metrics {metric.name} at {level}x{level}: {problem}")
    if dry_run:
        summary = {"config": asdict(cfg), "parameters": {
            "G": _param_count(trainer.G), "G.mapping": _param_count(trainer.G.mapping_network),
            "D": _param_count(trainer.D)},
            "num_ws": trainer.G.num_ws, "levels": levels(cfg, trainer.G.start_resolution),
            "processes": env.world, "device": str(env.device)}
        results([], summary)  # the configuration is the result, so JSON either way
        return
    if state is not None:
        old, new = checkpoint.network_config(state["config"]), cfg.network()  # old files: the original networks
        changed = [k for k in new if old[k] != new[k]]
        if changed:
            raise UsageError(f"{latest} was trained with " + ", ".join(f"--{k.replace('_', '-')} {old[k]}" for k in
                                                                       changed) + "; pass the same or use a new run.")
        trainer.load_state(state)
        if env.main and "imported" in state and trainer.nimg == 0:
            err.print(f"Fine-tuning {state['imported']['file']} from {latest}: fresh optimisers, kimg from 0.")
        elif env.main:
            err.print(f"Resuming from {latest} at kimg {trainer.nimg / 1000:.1f}.")
    if env.main:
        rundir.write_json(rundir.train_dir(run_dir) / "config.json", asdict(cfg))
    staged = rundir.stage(run_dir, writes=rundir.checkpoints_dir(run_dir)) if env.main else \
        contextlib.nullcontext(rundir.StageRecord())
    try:
        with staged as record:
            saved = train_loop(trainer, record)
            if env.main:
                results(saved[-1:], {"checkpoint": str(saved[-1]) if saved else None, "kimg": trainer.nimg / 1000}
                        if as_json else None)
    finally:  # also when stopped by a signal: a process group left to the interpreter's exit can abort it
        if env.world > 1:
            dist.destroy_process_group()
