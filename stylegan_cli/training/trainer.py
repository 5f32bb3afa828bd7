"""The trainer: a run's networks, optimisers and random state, and one training iteration
(docs/design.md §6).

One iteration is a D step and a G step on the same global batch; every random draw (latents, mixing
crossover, noise) is made for the global batch from generators whose state is in the checkpoint, and
each process takes its share, so a run resumes bitwise and does not depend on the number of processes.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.data.dataset import Dataset
from stylegan_cli.model import checkpoint
from stylegan_cli.model.losses import d_loss, g_loss, gradient_penalty, path_length, r1_penalty
from stylegan_cli.synthesis.images import from_uint8, image_grid, to_uint8
from stylegan_cli.training.config import TrainConfig
from stylegan_cli.training.distributed import Dist
from stylegan_cli.training.schedule import LR_DEFAULT, batch_size, learning_rate, phase
from stylegan_cli.training.stream import ImageStream, fade_reals

FAKES_CELL = 512  # the largest cell of a fakes grid, so a 1024x1024 run writes a 4096x2048 grid


def _lazy_ratio(every: int) -> float:
    return every / (every + 1) if every > 1 else 1.0


class Trainer:
    """The networks, optimisers and random state of a run, and one training iteration."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dataset: Dataset, env: Dist):
        self.cfg, self.run_dir, self.dataset, self.env = cfg, run_dir, dataset, env
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.G = checkpoint.build_generator(cfg.network())
        self.D = checkpoint.build_discriminator(cfg.network())
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
            **checkpoint.header(),
            "config": asdict(self.cfg), "nimg": self.nimg, "step": self.step, "resolution": res, "alpha": alpha,
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "G_opt": self.G_opt.state_dict(), "D_opt": self.D_opt.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": {"latents": self.latents.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(self.env.device) if self.env.device.type == "cuda" else None},
            "pl_mean": self.pl_mean.detach().cpu(),
        }

    def load_state(self, state: dict) -> None:
        """Continues from a checkpoint; one that `sgan import` wrote holds networks only (D not always), so
        the optimisers, random state and path-length mean start afresh."""
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        if "D" in state:
            self.D.load_state_dict(state["D"])
        self.nimg, self.step = state["nimg"], state["step"]
        if "G_opt" not in state:
            return
        self.G_opt.load_state_dict(state["G_opt"])
        self.D_opt.load_state_dict(state["D_opt"])
        self.scaler.load_state_dict(state["scaler"])
        self.latents.set_state(state["rng"]["latents"])
        if self.env.world == 1:  # the global generators only draw path-length noise, per process
            torch.set_rng_state(state["rng"]["torch"])
            if state["rng"]["cuda"] is not None and self.env.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.env.device)
        self.pl_mean = state["pl_mean"].to(self.env.device)

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
        ws = G.mapping(z, broadcast=True)
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
        reals = from_uint8(reals_u8.to(env.device, non_blocking=True))
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

        # Moving averages: w (for truncation) and the generator's weights, with a half-life of ema_kimg
        # (StyleGAN App. C) that ramps up over the start of training (StyleGAN2-ADA's code: at most
        # ema_rampup times the images seen), so early averages follow G rather than its initial weights.
        with torch.no_grad():
            w_mean = env.mean(ws[:, 0].detach().float().mean(0))
            G.w_avg.lerp_(w_mean, 1 - G.w_avg_beta)
            half_life = cfg.ema_kimg * 1000
            if cfg.ema_rampup > 0:
                half_life = min(half_life, cfg.ema_rampup * self.nimg)
            beta = 0.5 ** (batch / max(half_life, 1e-8))
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
            images = self.G_ema.synthesis(self.G_ema.mapping(z, broadcast=True), res,
                                          alpha, noise_mode="const")
            size = max(res, min(self.cfg.resolution, FAKES_CELL))
            images = torch.nn.functional.interpolate(images.float(), size=size, mode="nearest")
        return image_grid(list(to_uint8(images)), cols=8)
