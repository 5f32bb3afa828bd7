"""The training loop: ticks, log lines, fakes grids, checkpoints, metrics during training, and
stopping on a signal (docs/design.md §6, §10).

Checkpoints are saved at every snapshot, on entering each resolution, at the end, and on
SIGTERM/SIGINT/SIGUSR1, after which the process exits 128 + the signal's number, ready to resume.
With tensorboard installed, rank 0 also logs ticks, fakes and metrics to RUN/train/tensorboard/
(training/tensorboard.py).
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist

from stylegan_cli.core import rundir, signals
from stylegan_cli.core.console import err
from stylegan_cli.core.device import peak_memory_gib
from stylegan_cli.core.errors import SganError
from stylegan_cli.metrics import evaluator as metrics_lib
from stylegan_cli.metrics.registry import parse_metric
from stylegan_cli.model import checkpoint
from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.images import save_png
from stylegan_cli.training.schedule import batch_size, learning_rate, phase
from stylegan_cli.training.stream import real_batches
from stylegan_cli.training.tensorboard import open_writer
from stylegan_cli.training.trainer import Trainer


class _Tick:
    """Sums of the loss terms since the last log line."""

    def __init__(self, nimg: int):
        self.sums, self.steps, self.nimg, self.start = {}, 0, nimg, time.monotonic()

    def add(self, stats: dict) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1


def _log_line(trainer: Trainer, tick: _Tick, res: int, alpha: float) -> dict:
    """One line of train/log.jsonl; a non-finite loss stops the run before anything is saved."""
    cfg, env = trainer.cfg, trainer.env
    seconds, images = time.monotonic() - tick.start, trainer.nimg - tick.nimg
    line = {"kimg": round(trainer.nimg / 1000, 3), "resolution": res, "alpha": round(alpha, 4),
            "lr": learning_rate(cfg, res), "batch": batch_size(cfg, res)}
    line.update({k: round(float(env.mean(v)) / tick.steps, 5) for k, v in tick.sums.items()})
    if trainer.augment is not None:  # p after the tick (r_t, ADA's heuristic, is the tick's mean above), settings
        line.update({"aug_p": round(float(trainer.augment.p), 6), "aug": cfg.aug, "augpipe": cfg.augpipe})
        if cfg.aug == "ada":
            line["ada_target"] = cfg.ada_target
    if not all(math.isfinite(v) for v in line.values() if isinstance(v, float)):
        raise SganError(f"The loss became non-finite by kimg {line['kimg']} ({json.dumps(line)}); stopped without "
                        f"saving, the last good checkpoint is {checkpoint.latest(trainer.run_dir)}.")
    line.update({"sec_per_kimg": round(seconds / max(images / 1000, 1e-9), 3),
                 "img_per_sec": round(images / max(seconds, 1e-9), 2),
                 "memory_gib": round(peak_memory_gib(env.device), 3),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return line


def _show(line: dict) -> None:
    terms = "  ".join(f"{k} {line[k]:8.4f}" for k in ("loss_G", "loss_D", "r1", "gp", "pl", "r_t", "aug_p")
                      if k in line)
    err.print(f"kimg {line['kimg']:9.3f}  res {line['resolution']:4d}  alpha {line['alpha']:4.2f}  {terms}  "
              f"s/kimg {line['sec_per_kimg']:8.2f}  img/s {line['img_per_sec']:8.1f}  mem {line['memory_gib']:.2f} GiB",
              highlight=False)


def train_loop(trainer: Trainer, record: rundir.StageRecord) -> list[Path]:
    """Trains until cfg.kimg; saves at every snap, on entering each resolution, at the end and on
    SIGTERM/SIGINT/SIGUSR1 (then exits 128+signal, ready to resume)."""
    cfg, env, run_dir = trainer.cfg, trainer.env, trainer.run_dir
    start_res = trainer.G.start_resolution
    total, tick_images, snap_images = int(cfg.kimg * 1000), int(cfg.tick_kimg * 1000), int(cfg.snap_kimg * 1000)
    stop = {"signal": 0}  # set by this process's handler, at any moment; `stopping` is what every rank agreed on
    previous = {s: signal.signal(s, lambda signum, frame: stop.update(signal=signum)) for s in signals.STOP_SIGNALS}
    saved: list[Path] = []
    last_saved = {"nimg": -1 if checkpoint.latest(run_dir) is None else trainer.nimg}
    metrics_images = int((cfg.metrics_kimg or cfg.snap_kimg) * 1000)
    next_metrics = (trainer.nimg // metrics_images + 1) * metrics_images

    def save(reason: str) -> None:
        if env.main and last_saved["nimg"] != trainer.nimg:
            path = checkpoint.save(run_dir, trainer.state(), trainer.nimg // 1000, keep=cfg.keep)
            saved.append(path)
            record.outputs.append(str(path))
            err.print(f"saved {path} ({reason})")
        last_saved["nimg"] = trainer.nimg

    board = open_writer(run_dir, env.main)
    try:
        loader_res, reals, tick, ticks = None, None, _Tick(trainer.nimg), 0
        next_snap = (trainer.nimg // snap_images + 1) * snap_images
        stopping = 0
        while trainer.nimg < total and not stopping:
            res, alpha = phase(trainer.nimg, cfg, start_res)
            if res != loader_res:
                batch = batch_size(cfg, res)
                if loader_res is not None:
                    save(f"entering {res}x{res}")
                reals = real_batches(trainer.dataset, trainer.stream, res, trainer.nimg, batch, env.rank, env.world,
                                     cfg.workers, env.device.type == "cuda")
                loader_res = res
            tick.add(trainer.iteration(*next(reals), res, alpha))
            # Every rank stops at the same step: the signals seen up to here, agreed once per step. A signal
            # arriving later counts at the next step, never in between (a rank leaving the loop alone would
            # leave the others waiting in a collective for a peer that is gone).
            stopping = stop["signal"]
            if env.world > 1:
                flag = torch.tensor(float(stopping), device=env.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stopping = int(flag.item())
            if trainer.nimg - tick.nimg >= tick_images or trainer.nimg >= total or stopping:
                line = _log_line(trainer, tick, res, alpha)
                ticks += 1
                if env.main:
                    rundir.append_jsonl(rundir.train_dir(run_dir) / "log.jsonl", line)
                    _show(line)
                    board.tick(line, trainer.nimg)
                    if ticks % cfg.image_ticks == 0 or trainer.nimg >= total:
                        grid = trainer.fakes_grid(res, alpha)
                        path = save_png(rundir.train_dir(run_dir) / f"fakes-{trainer.nimg // 1000:07d}.png", grid)
                        record.outputs.append(str(path))
                        board.fakes(grid, trainer.nimg)
                    board.flush()
                tick = _Tick(trainer.nimg)
            if trainer.nimg >= next_snap:
                save("snapshot")
                next_snap += snap_images
            if cfg.metrics and (trainer.nimg >= next_metrics or trainer.nimg >= total) and not stopping:
                save("metrics")
                board.metrics(evaluate(trainer, checkpoint.latest(run_dir)), trainer.nimg)
                board.flush()
                next_metrics = (trainer.nimg // metrics_images + 1) * metrics_images
        save(f"stopped by {signal.Signals(stopping).name}" if stopping else "final")
        if env.world > 1:
            # Ranks leave together: one that tears down its connections while rank 0 still writes the last
            # checkpoint can abort inside gloo (seen once in CI as SIGABRT at exit).
            dist.barrier()
    finally:
        board.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopping:
        err.print(f"Stopped at kimg {trainer.nimg / 1000:.3f}; run the same command again to resume.")
        raise signals.Stopped(stopping)
    return saved


def evaluate(trainer: Trainer, ckpt: Path | None) -> list[metrics_lib.Result]:
    """`--metrics` during training: rank 0 evaluates the checkpoint just saved, `ckpt`, exactly as `sgan metrics
    --ckpt` does with its defaults (the moving-average generator it stores, at the resolution and fade-in it
    records, which are those after the step just taken, not the step's own), and appends to RUN/metrics.jsonl
    while the other ranks wait. The training's random state is left untouched, so a resumed run continues
    exactly. Returns rank 0's results (none elsewhere)."""
    cfg, env = trainer.cfg, trainer.env
    found: list[metrics_lib.Result] = []
    if env.main:
        # Building the network to load the checkpoint into draws from the global generator: forked, so untouched.
        with torch.random.fork_rng(devices=[env.device] if env.device.type == "cuda" else []):
            loaded = load_generator(trainer.run_dir, ckpt)
            res, alpha = loaded.resolution, loaded.alpha
            evaluator = metrics_lib.for_checkpoint(loaded.G.to(env.device), res, alpha, trainer.dataset,
                                                   batch=metrics_lib.BATCH, seed=metrics_lib.SEED, device=env.device,
                                                   workers=cfg.workers)
            settings = metrics_lib.checkpoint_settings(loaded.G, res, alpha, metrics_lib.SEED, cfg.data)
            found = metrics_lib.run_metrics(evaluator, [parse_metric(m) for m in cfg.metrics], trainer.run_dir,
                                            str(loaded.ckpt), loaded.kimg, settings)
        err.print(f"metrics of {loaded.ckpt.name} ({res}x{res}, alpha {alpha:.2f}): "
                  + "  ".join(f"{r.metric} {r.value:.4g}" for r in found))
    if env.world > 1:
        dist.barrier()
    return found
