"""`sgan train`: progressive training of a style-based generator (DESIGN.md §6).

The schedule follows Progressive GAN §3 as StyleGAN runs it: the first level trains for
`lod_kimg` thousand images, then each further level fades in over `lod_kimg` (alpha 0 to 1, the
real images blended the same way) and stabilises for as long. One iteration is a D step and a G
step on the same global batch; every random draw (latents, mixing crossover, noise, data order,
mirroring) is made for the global batch from generators whose state is in the checkpoint, and each
process takes its share, so a run resumes bitwise and does not depend on the number of processes.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import math
import os
import resource
import signal
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import torch.distributed as dist
import typer

from stylegan_cli import __version__, checkpoint, rundir
from stylegan_cli import metrics as metrics_lib
from stylegan_cli.cli import DataOption, JsonOption, RunOption, power_of_two
from stylegan_cli.console import err, results
from stylegan_cli.dataset import Dataset
from stylegan_cli.errors import SganError, UsageError
from stylegan_cli.grid import image_grid, save_png
from stylegan_cli.losses import d_loss, g_loss, gradient_penalty, path_length, r1_penalty
from stylegan_cli.networks import Discriminator, Generator

# StyleGAN's FFHQ schedule (8 GPUs): global minibatch and learning rate per resolution.
BATCH_BY_RES = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}
BATCH_DEFAULT = 32
LR_BY_RES = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}
LR_DEFAULT = 0.001
CHECKPOINT_FORMAT = "sgan-checkpoint"
FAKES_CELL = 512
NETWORK_KEYS = ("arch", "resolution", "fmap_base", "fmap_max")


class Arch(str, Enum):
    stylegan = "stylegan"
    stylegan2 = "stylegan2"
    pggan = "pggan"


class Loss(str, Enum):
    r1 = "r1"
    wgan_gp = "wgan-gp"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


@dataclass
class TrainConfig:
    """Everything that decides a training run; stored in train/config.json and each checkpoint."""

    resolution: int
    arch: str = "stylegan"
    fmap_base: int = 8192
    fmap_max: int = 512
    kimg: float = 25000.0
    lod_kimg: float = 600.0
    progressive: bool = True
    batch: int | None = None
    lr: float | None = None
    loss: str = "r1"
    gamma: float = 10.0
    r1_every: int = 1
    pl_weight: float = 0.0
    pl_every: int = 4
    mixing: float = 0.9
    mirror: bool = False
    ema_kimg: float = 10.0
    precision: str = "fp32"
    compile: bool = False
    seed: int = 0
    snap_kimg: float = 100.0
    tick_kimg: float = 4.0
    image_ticks: int = 5
    keep: int | None = None
    data: str = ""
    workers: int = 2
    metrics: list[str] = field(default_factory=list)
    metrics_kimg: float | None = None  # None: at every snapshot

    def network(self) -> dict:
        return {k: getattr(self, k) for k in NETWORK_KEYS}


# --- schedule ----------------------------------------------------------------------------------


def levels(cfg: TrainConfig, start: int) -> list[int]:
    if not cfg.progressive:
        return [cfg.resolution]
    return [2**k for k in range(int(math.log2(start)), int(math.log2(cfg.resolution)) + 1)]


def phase(nimg: int, cfg: TrainConfig, start: int) -> tuple[int, float]:
    """(resolution, alpha) after `nimg` images: stabilise the first level, then fade in and
    stabilise each next one, `lod_kimg` thousand images each (Progressive GAN §3)."""
    lv = levels(cfg, start)
    kimg = nimg / 1000.0
    if len(lv) == 1 or kimg < cfg.lod_kimg:
        return lv[0], 1.0
    t = kimg - cfg.lod_kimg
    i = int(t // (2 * cfg.lod_kimg)) + 1
    if i >= len(lv):
        return lv[-1], 1.0
    return lv[i], min((t - (i - 1) * 2 * cfg.lod_kimg) / cfg.lod_kimg, 1.0)


def batch_size(cfg: TrainConfig, res: int) -> int:
    return cfg.batch or BATCH_BY_RES.get(res, BATCH_DEFAULT)


def learning_rate(cfg: TrainConfig, res: int) -> float:
    return cfg.lr or LR_BY_RES.get(res, LR_DEFAULT)


# --- data --------------------------------------------------------------------------------------


class ImageStream:
    """The global stream of training images: epoch e is a permutation of the dataset drawn from
    (seed, e), with a mirror coin per position. Position p is the p-th real image shown to D, so
    the stream restarts exactly from the image count stored in a checkpoint."""

    def __init__(self, n: int, seed: int, mirror: bool):
        self.n, self.seed, self.mirror = n, seed, mirror
        self._epoch, self._perm, self._flip = -1, None, None

    def take(self, start: int, count: int) -> list[tuple[int, bool]]:
        out = []
        for p in range(start, start + count):
            epoch, i = divmod(p, self.n)
            if epoch != self._epoch:
                rng = np.random.default_rng([self.seed, epoch])
                self._perm, self._flip = rng.permutation(self.n), rng.random(self.n) < 0.5
                self._epoch = epoch
            out.append((int(self._perm[i]), bool(self.mirror and self._flip[i])))
        return out


class LevelImages(torch.utils.data.Dataset):
    """One level of the LMDB as uint8 (3, res, res) tensors; items are (index, mirror) pairs."""

    def __init__(self, dataset: Dataset, res: int):
        self.dataset, self.res = dataset, res

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, bool]) -> torch.Tensor:
        index, flip = item
        img = self.dataset.image(index, self.res)
        img = img[:, ::-1] if flip else img
        return torch.from_numpy(img.copy()).permute(2, 0, 1)


class _Batches:
    """Batch sampler over the rank's share of each global batch, from a given image count on."""

    def __init__(self, stream: ImageStream, start: int, global_batch: int, rank: int, world: int):
        self.stream, self.start, self.global_batch, self.rank, self.world = stream, start, global_batch, rank, world

    def __iter__(self):
        share = self.global_batch // self.world
        p = self.start
        while True:
            yield self.stream.take(p + self.rank * share, share)
            p += self.global_batch


def real_batches(dataset: Dataset, stream: ImageStream, res: int, start: int, global_batch: int, rank: int,
                 world: int, workers: int, pin: bool):
    """An endless iterator of this rank's uint8 real batches at `res`, starting at image `start`."""
    loader = torch.utils.data.DataLoader(
        LevelImages(dataset, res), batch_sampler=_Batches(stream, start, global_batch, rank, world),
        num_workers=workers, pin_memory=pin, prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    return iter(loader)


def fade_reals(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """During a fade the reals are blended with their own lower level, as the fakes are
    (Progressive GAN §3): lerp(upsample(downsample(x)), x, alpha)."""
    if alpha >= 1.0:
        return x
    low = torch.nn.functional.avg_pool2d(x, 2)
    low = torch.nn.functional.interpolate(low, scale_factor=2, mode="nearest")
    return low + (x - low) * alpha


# --- distributed -------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t)
            t /= self.world
        return t

    def average_grads(self, module: torch.nn.Module) -> None:
        """Averages gradients across processes in one flat buffer: what DDP does, without its
        hooks, so layers unused at the current resolution keep no gradient, as on one process
        (every rank runs the same layers, so every rank has the same set of gradients)."""
        if self.world == 1:
            return
        params = [p for p in module.parameters() if p.grad is not None]
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def init_distributed() -> Dist:
    """One process per GPU under torchrun (NCCL), or per CPU slot with gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        # Long enough for the other ranks to wait at a barrier while rank 0 computes metrics.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=2))
    return Dist(rank=dist.get_rank() if world > 1 else 0, world=world, device=device)


# --- the trainer -------------------------------------------------------------------------------


def _lazy_ratio(every: int) -> float:
    return every / (every + 1) if every > 1 else 1.0


class Trainer:
    """The networks, optimisers and random state of a run, and one training iteration."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dataset: Dataset, env: Dist):
        self.cfg, self.run_dir, self.dataset, self.env = cfg, run_dir, dataset, env
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        net = cfg.network()
        self.G = Generator(net["arch"], net["resolution"], fmap_base=net["fmap_base"], fmap_max=net["fmap_max"])
        self.D = Discriminator(net["resolution"], fmap_base=net["fmap_base"], fmap_max=net["fmap_max"])
        self.G.to(env.device)
        self.D.to(env.device)
        if env.device.type == "cuda":
            self.D.to(memory_format=torch.channels_last)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # StyleGAN2 §3.1: with a regulariser applied every k steps, lr and beta2 are raised to the
        # power c = k / (k + 1) so the regularised optimiser keeps its strength.
        self.G_lazy = _lazy_ratio(cfg.pl_every if cfg.pl_weight > 0 else 1)
        self.D_lazy = _lazy_ratio(cfg.r1_every if cfg.loss == "r1" else 1)
        self.G_opt = torch.optim.Adam(self.G.parameters(), lr=LR_DEFAULT, betas=(0.0, 0.99**self.G_lazy), eps=1e-8)
        self.D_opt = torch.optim.Adam(self.D.parameters(), lr=LR_DEFAULT, betas=(0.0, 0.99**self.D_lazy), eps=1e-8)
        self.latents = torch.Generator().manual_seed(cfg.seed)
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=cfg.precision == "fp16")
        self.stream = ImageStream(len(dataset), cfg.seed, cfg.mirror)
        self.nimg, self.step = 0, 0
        self.pl_mean = torch.zeros((), device=env.device)
        self.fixed_z = torch.randn(32, self.G.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
        # torch.compile serves the plain passes; the regularisers' double backward runs eagerly.
        # Each resolution compiles a few variants (with and without grad, fading or not), so the
        # recompile limit must cover all levels or dynamo silently falls back to eager.
        if cfg.compile:
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 128)
        self.synthesis = torch.compile(self.G.synthesis) if cfg.compile else self.G.synthesis
        self.D_plain = torch.compile(self.D) if cfg.compile else self.D

    # -- state --

    def state(self) -> dict:
        res, alpha = phase(self.nimg, self.cfg, self.G.start_resolution)
        return {
            "format": CHECKPOINT_FORMAT, "version": 1, "sgan_version": __version__,
            "config": asdict(self.cfg), "nimg": self.nimg, "step": self.step, "resolution": res, "alpha": alpha,
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "G_opt": self.G_opt.state_dict(), "D_opt": self.D_opt.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": {"latents": self.latents.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(self.env.device) if self.env.device.type == "cuda" else None},
            "pl_mean": self.pl_mean.detach().cpu(),
        }

    def load_state(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.G_opt.load_state_dict(state["G_opt"])
        self.D_opt.load_state_dict(state["D_opt"])
        self.scaler.load_state_dict(state["scaler"])
        self.latents.set_state(state["rng"]["latents"])
        if self.env.world == 1:  # the global generators only draw path-length noise, per process
            torch.set_rng_state(state["rng"]["torch"])
            if state["rng"]["cuda"] is not None and self.env.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.env.device)
        self.pl_mean = state["pl_mean"].to(self.env.device)
        self.nimg, self.step = state["nimg"], state["step"]

    # -- one iteration --

    def _autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.precision)
        return torch.autocast(self.env.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def _share(self, t: torch.Tensor) -> torch.Tensor:
        """This process's slice of a tensor drawn for the global batch."""
        n = t.shape[0] // self.env.world
        return t[self.env.rank * n : (self.env.rank + 1) * n].to(self.env.device)

    def _draw_ws(self, batch: int, res: int, mixing: bool) -> torch.Tensor:
        """Latents for the global batch through the mapping network, with style mixing
        (StyleGAN §3.1): two latents and a random crossover among the layers in use at `res`."""
        G, gen = self.G, self.latents
        z = self._share(torch.randn(batch, G.z_dim, generator=gen))
        ws = G.mapping(z).unsqueeze(1).repeat(1, G.num_ws, 1)
        if mixing and self.cfg.mixing > 0 and G.num_ws > 1:
            z2 = self._share(torch.randn(batch, G.z_dim, generator=gen))
            active = sum(1 for r in G.style_layer_resolutions() if r <= res)
            use = self._share(torch.rand(batch, generator=gen) < self.cfg.mixing)
            cut = self._share(torch.randint(1, max(active, 2), (batch,), generator=gen))
            w2 = G.mapping(z2).unsqueeze(1)
            layer = torch.arange(G.num_ws, device=ws.device).unsqueeze(0)
            swap = (use.unsqueeze(1) & (layer >= cut.unsqueeze(1))).unsqueeze(2)
            ws = torch.where(swap, w2.expand_as(ws), ws)
        return ws

    def _noise(self, batch: int, res: int) -> list[torch.Tensor]:
        """Per-layer noise images for the global batch, drawn on the device from a seed taken
        from the latent generator, and this process's share of them."""
        seed = int(torch.randint(0, 2**62, (), generator=self.latents))
        gen = torch.Generator(self.env.device).manual_seed(seed)
        return [self._share(n) for n in self.G.make_noise(batch, res, generator=gen, device=self.env.device)]

    def _optimise(self, net: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One optimiser step on `loss`, gradients averaged across processes (loss scaling for fp16)."""
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.env.average_grads(net)
        self.scaler.step(opt)

    def iteration(self, reals_u8: torch.Tensor, res: int, alpha: float) -> dict:
        cfg, env, G, D = self.cfg, self.env, self.G, self.D
        batch = batch_size(cfg, res)
        lr = learning_rate(cfg, res)
        reals = reals_u8.to(env.device, non_blocking=True).float() / 127.5 - 1
        reals = fade_reals(reals, alpha)
        if env.device.type == "cuda":
            reals = reals.contiguous(memory_format=torch.channels_last)
        stats = {}

        # D step.
        r1_now = cfg.loss == "r1" and cfg.gamma > 0 and self.step % cfg.r1_every == 0
        for g in self.D_opt.param_groups:
            g["lr"] = lr * self.D_lazy
        D.requires_grad_(True)
        G.requires_grad_(False)
        with torch.no_grad(), self._autocast():
            fakes = self.synthesis(self._draw_ws(batch, res, mixing=True), res, alpha, noise=self._noise(batch, res))
        reals.requires_grad_(r1_now)
        with self._autocast():
            real_scores = (D if r1_now else self.D_plain)(reals, res, alpha)
            fake_scores = self.D_plain(fakes.detach(), res, alpha)
        loss = d_loss(cfg.loss, real_scores.float(), fake_scores.float())
        stats["loss_D"] = loss.detach()
        if r1_now:
            penalty = r1_penalty(real_scores, reals, cfg.gamma, cfg.r1_every)
            stats["r1"] = penalty.detach()
            loss = loss + penalty
        if cfg.loss == "wgan-gp":
            with self._autocast():
                gp = gradient_penalty(D, reals, fakes, res, alpha, generator=self.latents)
            stats["gp"] = gp.detach()
            loss = loss + gp
        self._optimise(D, self.D_opt, loss)

        # G step.
        pl_now = cfg.pl_weight > 0 and self.step % cfg.pl_every == 0
        for g in self.G_opt.param_groups:
            g["lr"] = lr * self.G_lazy
        D.requires_grad_(False)
        G.requires_grad_(True)
        with self._autocast():
            ws = self._draw_ws(batch, res, mixing=True)
            fakes = self.synthesis(ws, res, alpha, noise=self._noise(batch, res))
            loss = g_loss(cfg.loss, self.D_plain(fakes, res, alpha).float())
        stats["loss_G"] = loss.detach()
        if pl_now:
            pl_batch = max(batch // 2, env.world)
            with self._autocast():
                penalty, self.pl_mean = path_length(
                    G, self._draw_ws(pl_batch, res, mixing=True), res, alpha, self.pl_mean, cfg.pl_weight,
                    cfg.pl_every, noise=self._noise(pl_batch, res), reduce=env.mean)
            stats["pl"] = penalty.detach()
            loss = loss + penalty
        self._optimise(G, self.G_opt, loss)
        self.scaler.update()

        # Moving averages: w (for truncation) and the generator's weights (half-life ema_kimg).
        with torch.no_grad():
            w_mean = env.mean(ws[:, 0].detach().float().mean(0))
            G.w_avg.lerp_(w_mean, 1 - G.w_avg_beta)
            beta = 0.5 ** (batch / (cfg.ema_kimg * 1000))
            for p_ema, p in zip(self.G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        self.nimg += batch
        self.step += 1
        return stats

    # -- pictures --

    def fakes_grid(self, res: int, alpha: float) -> np.ndarray:
        """A grid from fixed latents through the moving-average generator, each cell shown at the
        target size (at most FAKES_CELL pixels, so a 1024x1024 run writes a 4096x2048 grid)."""
        with torch.no_grad():
            z = self.fixed_z.to(self.env.device)
            images = self.G_ema.synthesis(self.G_ema.mapping(z).unsqueeze(1).repeat(1, self.G_ema.num_ws, 1), res,
                                          alpha, noise_mode="const")
            size = max(res, min(self.cfg.resolution, FAKES_CELL))
            images = torch.nn.functional.interpolate(images.float(), size=size, mode="nearest")
        arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return image_grid(list(arr), cols=8)


def _memory(device: torch.device) -> float:
    """Peak memory in GiB: the GPU's allocator, or the process's resident size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


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
    if not all(math.isfinite(v) for v in line.values() if isinstance(v, float)):
        raise SganError(f"The loss became non-finite by kimg {line['kimg']} ({json.dumps(line)}); stopped without "
                        f"saving, the last good checkpoint is {checkpoint.latest(trainer.run_dir)}.")
    line.update({"sec_per_kimg": round(seconds / max(images / 1000, 1e-9), 3),
                 "img_per_sec": round(images / max(seconds, 1e-9), 2), "memory_gib": round(_memory(env.device), 3),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return line


def _show(line: dict) -> None:
    terms = "  ".join(f"{k} {line[k]:8.4f}" for k in ("loss_G", "loss_D", "r1", "gp", "pl") if k in line)
    err.print(f"kimg {line['kimg']:9.3f}  res {line['resolution']:4d}  alpha {line['alpha']:4.2f}  {terms}  "
              f"s/kimg {line['sec_per_kimg']:8.2f}  img/s {line['img_per_sec']:8.1f}  mem {line['memory_gib']:.2f} GiB",
              highlight=False)


def train_loop(trainer: Trainer, record: rundir.StageRecord) -> list[Path]:
    """Trains until cfg.kimg; saves at every snap, on entering each resolution, at the end and on
    SIGTERM/SIGINT/SIGUSR1 (then exits 128+signal, ready to resume)."""
    cfg, env, run_dir = trainer.cfg, trainer.env, trainer.run_dir
    start_res = trainer.G.start_resolution
    total, tick_images, snap_images = int(cfg.kimg * 1000), int(cfg.tick_kimg * 1000), int(cfg.snap_kimg * 1000)
    stop = {"signal": 0}
    previous = {s: signal.signal(s, lambda signum, frame: stop.update(signal=signum)) for s in _STOP_SIGNALS}
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

    try:
        loader_res, reals, tick, ticks = None, None, _Tick(trainer.nimg), 0
        next_snap = (trainer.nimg // snap_images + 1) * snap_images
        while trainer.nimg < total and not stop["signal"]:
            res, alpha = phase(trainer.nimg, cfg, start_res)
            if res != loader_res:
                batch = batch_size(cfg, res)
                if batch % env.world:
                    raise UsageError(f"The batch of {batch} does not split evenly across {env.world} processes.")
                if loader_res is not None:
                    save(f"entering {res}x{res}")
                reals = real_batches(trainer.dataset, trainer.stream, res, trainer.nimg, batch, env.rank, env.world,
                                     cfg.workers, env.device.type == "cuda")
                loader_res = res
            tick.add(trainer.iteration(next(reals), res, alpha))
            if env.world > 1:  # every rank must see a stop signal at the same step
                flag = torch.tensor(float(stop["signal"]), device=env.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop["signal"] = stop["signal"] or int(flag.item())
            if trainer.nimg - tick.nimg >= tick_images or trainer.nimg >= total or stop["signal"]:
                line = _log_line(trainer, tick, res, alpha)
                ticks += 1
                if env.main:
                    with open(run_dir / "train" / "log.jsonl", "a", encoding="utf-8") as f:
                        f.write(json.dumps(line) + "\n")
                    _show(line)
                    if ticks % cfg.image_ticks == 0 or trainer.nimg >= total:
                        path = save_png(run_dir / "train" / f"fakes-{trainer.nimg // 1000:07d}.png",
                                        trainer.fakes_grid(res, alpha))
                        record.outputs.append(str(path))
                tick = _Tick(trainer.nimg)
            if trainer.nimg >= next_snap:
                save("snapshot")
                next_snap += snap_images
            if cfg.metrics and (trainer.nimg >= next_metrics or trainer.nimg >= total) and not stop["signal"]:
                save("metrics")
                evaluate(trainer, res, alpha, checkpoint.latest(run_dir))
                next_metrics = (trainer.nimg // metrics_images + 1) * metrics_images
        save(f"stopped by {signal.Signals(stop['signal']).name}" if stop["signal"] else "final")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop["signal"]:
        err.print(f"Stopped at kimg {trainer.nimg / 1000:.3f}; run the same command again to resume.")
        raise SystemExit(128 + stop["signal"])
    return saved


def evaluate(trainer: Trainer, res: int, alpha: float, ckpt: Path | None) -> None:
    """`--metrics` during training: rank 0 evaluates the moving-average generator of the checkpoint
    just saved and appends to RUN/metrics.jsonl, while the other ranks wait. The training's random
    state is left untouched, so a resumed run continues exactly."""
    cfg, env = trainer.cfg, trainer.env
    if env.main:
        with torch.random.fork_rng(devices=[env.device] if env.device.type == "cuda" else []):
            evaluator = metrics_lib.for_checkpoint(trainer.G_ema, res, alpha, trainer.dataset, batch=32, seed=0,
                                                   device=env.device, workers=cfg.workers)
            settings = {"resolution": res, "alpha": alpha, "seed": 0, "data": cfg.data}
            found = metrics_lib.run_metrics(evaluator, [metrics_lib.parse_metric(m) for m in cfg.metrics],
                                            trainer.run_dir, str(ckpt) if ckpt else None, trainer.nimg / 1000,
                                            settings)
        err.print("metrics: " + "  ".join(f"{r.metric} {r.value:.4g}" for r in found))
    if env.world > 1:
        dist.barrier()


# --- the command -------------------------------------------------------------------------------


def _param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_config(resolution, arch, fmap_base, fmap_max, kimg, lod_kimg, progressive, batch, lr, loss, gamma, r1_every,
                 pl_weight, pl_every, mixing, mirror, ema_kimg, precision, compile_, seed, snap, tick, image_ticks, keep,
                 workers, data_path, device, metrics=(), metrics_kimg=None) -> TrainConfig:
    if precision is None:
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if r1_every is None:
        r1_every = 16 if arch == "stylegan2" else 1
    if pl_weight is None:
        pl_weight = 2.0 if arch == "stylegan2" else 0.0
    if mixing is None:
        mixing = 0.0 if arch == "pggan" else 0.9
    return TrainConfig(
        resolution=resolution, arch=arch, fmap_base=fmap_base, fmap_max=fmap_max, kimg=kimg, lod_kimg=lod_kimg,
        progressive=progressive, batch=batch, lr=lr, loss=loss, gamma=gamma, r1_every=r1_every, pl_weight=pl_weight,
        pl_every=pl_every,
        mixing=mixing, mirror=mirror, ema_kimg=ema_kimg, precision=precision, compile=compile_, seed=seed, snap_kimg=snap,
        tick_kimg=tick, image_ticks=image_ticks, keep=keep, data=str(data_path), workers=workers,
        metrics=list(metrics), metrics_kimg=metrics_kimg,
    )


def _metric_names(given: list[str] | None) -> list[str]:
    """--metrics values, commas split, each checked now rather than after hours of training."""
    names = [name.strip() for value in given or [] for name in value.split(",") if name.strip()]
    for name in names:
        metric = metrics_lib.parse_metric(name)
        if metric.kind == "ls":
            raise UsageError(f"{name} needs trained attribute classifiers; run `sgan metrics ls` on a checkpoint.")
    return names


def command(
    run: RunOption = None,
    data: DataOption = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", callback=power_of_two(8), show_default=False,
                                                      help="Target resolution (default: the dataset's largest).")] = None,
    arch: Annotated[Arch, typer.Option("--arch", help="Generator: StyleGAN, StyleGAN2 (weight demodulation), or "
                                                      "Progressive GAN.")] = Arch.stylegan,
    fmap_base: Annotated[int, typer.Option("--fmap-base", min=16, help="Feature-map budget: maps per resolution are "
                                                                       "min(fmap_base / 2^(log2 res - 1), fmap_max).")] = 8192,
    fmap_max: Annotated[int, typer.Option("--fmap-max", min=1, help="Most feature maps in any layer.")] = 512,
    kimg: Annotated[float, typer.Option("--kimg", min=0.001, help="Thousands of real images to train on in total.")] = 25000,
    lod_kimg: Annotated[float, typer.Option("--lod-kimg", min=0.001, help="Thousands of images to fade in each new "
                                                                          "resolution, and to stabilise it.")] = 600,
    progressive: Annotated[bool, typer.Option("--progressive/--no-progressive",
                                              help="Grow from 8x8 (4x4 for pggan), or train at the target size.")] = True,
    batch: Annotated[Optional[int], typer.Option("--batch", min=1, show_default=False, help="Global minibatch "
                                                 "(default: per resolution, 512 at 4x4 down to 32 from 64x64).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", min=0, show_default=False, help="Learning rate (default: "
                                                "0.001, rising to 0.0015/0.002/0.003 at 128/256/512+).")] = None,
    loss: Annotated[Loss, typer.Option("--loss", help="Non-saturating logistic with R1, or WGAN-GP.")] = Loss.r1,
    gamma: Annotated[float, typer.Option("--gamma", min=0, help="R1 weight.")] = 10.0,
    r1_every: Annotated[Optional[int], typer.Option("--r1-every", min=1, show_default=False, help="Apply R1 every N "
                                                    "minibatches (default 1; 16 for stylegan2).")] = None,
    pl_weight: Annotated[Optional[float], typer.Option("--pl-weight", min=0, show_default=False, help="Path-length "
                                                       "regularisation weight (default 0; 2 for stylegan2).")] = None,
    pl_every: Annotated[int, typer.Option("--pl-every", min=1, help="Apply path-length regularisation every N "
                                                                    "minibatches.")] = 4,
    mixing: Annotated[Optional[float], typer.Option("--mixing", min=0, max=1, show_default=False, help="Share of "
                                                    "images generated from two latents (default 0.9; 0 for pggan).")] = None,
    mirror: Annotated[bool, typer.Option("--mirror", help="Flip half the real images left-right.")] = False,
    ema_kimg: Annotated[float, typer.Option("--ema-kimg", min=0.001, help="Half-life of the generator's moving "
                                                                          "average, in thousands of images.")] = 10.0,
    precision: Annotated[Optional[Precision], typer.Option("--precision", show_default=False, help="Arithmetic "
                                                           "(default: bf16 on GPUs that have it, else fp32).")] = None,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the generator and discriminator.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    snap: Annotated[float, typer.Option("--snap", min=0.001, help="Save a checkpoint every this many kimg.")] = 100,
    tick: Annotated[float, typer.Option("--tick", min=0.001, help="Log a line every this many kimg.")] = 4,
    image_ticks: Annotated[int, typer.Option("--image-ticks", min=1, help="Save a grid of fakes every N ticks.")] = 5,
    keep: Annotated[Optional[int], typer.Option("--keep", min=1, show_default=False,
                                                help="Keep only the newest N checkpoints (default: all).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Data-loading processes per GPU.")] = 2,
    metrics: Annotated[Optional[list[str]], typer.Option("--metrics", show_default=False, help="Metrics to compute "
                                                         "during training, as for `sgan metrics` (repeat the flag "
                                                         "or separate with commas), e.g. fid10k.")] = None,
    metrics_every: Annotated[Optional[float], typer.Option("--metrics-every", min=0.001, show_default=False,
                                                           help="Compute --metrics every this many kimg (default: "
                                                                "at every snapshot) and at the end.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the configuration and parameter counts (JSON), "
                                                            "then exit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train a generator on the run's dataset, resuming from its newest checkpoint if it has one."""
    env = init_distributed()
    run_dir = rundir.resolve_run(run)
    data_path = data if data is not None else run_dir / "data" / "dataset.lmdb"
    dataset = Dataset(data_path)
    if resolution is None:
        resolution = dataset.resolutions[-1]
    if resolution not in dataset.resolutions:
        raise UsageError(f"--resolution {resolution} is above the dataset's largest level, "
                         f"{dataset.resolutions[-1]}x{dataset.resolutions[-1]}.")
    cfg = build_config(resolution, arch.value, fmap_base, fmap_max, kimg, lod_kimg, progressive, batch, lr,
                       loss.value, gamma, r1_every, pl_weight, pl_every, mixing, mirror, ema_kimg,
                       precision.value if precision else None,
                       compile_, seed, snap, tick, image_ticks, keep, workers, data_path.resolve(), env.device,
                       metrics=_metric_names(metrics), metrics_kimg=metrics_every)
    trainer = Trainer(cfg, run_dir, dataset, env)
    if dry_run:
        summary = {"config": asdict(cfg), "parameters": {
            "G": _param_count(trainer.G), "G.mapping": _param_count(trainer.G.mapping_network),
            "D": _param_count(trainer.D)},
            "num_ws": trainer.G.num_ws, "levels": levels(cfg, trainer.G.start_resolution),
            "processes": env.world, "device": str(env.device)}
        results([], summary)  # the configuration is the result, so JSON either way
        return
    latest = checkpoint.latest(run_dir)
    if latest is not None:
        state = checkpoint.load(latest, env.device)
        old = state["config"]
        changed = [k for k in NETWORK_KEYS if old[k] != getattr(cfg, k)]
        if changed:
            raise UsageError(f"{latest} was trained with " + ", ".join(f"--{k.replace('_', '-')} {old[k]}" for k in
                                                                       changed) + "; pass the same or use a new run.")
        trainer.load_state(state)
        if env.main:
            err.print(f"Resuming from {latest} at kimg {trainer.nimg / 1000:.1f}.")
    if env.main:
        rundir.write_json(run_dir / "train" / "config.json", asdict(cfg))
    with rundir.stage(run_dir) if env.main else contextlib.nullcontext(rundir.StageRecord()) as record:
        saved = train_loop(trainer, record)
        if env.main:
            results(saved[-1:], {"checkpoint": str(saved[-1]) if saved else None, "kimg": trainer.nimg / 1000}
                    if as_json else None)
    if env.world > 1:
        dist.destroy_process_group()
