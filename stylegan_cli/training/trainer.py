"""The trainer: a run's networks, optimisers and random state, and one training iteration
(docs/design.md §6).

One iteration is NVIDIA's StyleGAN2 training step: a G pass and a D pass on the same global batch, each with
its own optimiser step, plus a pass of its own for each lazy regulariser due (`Trainer.phases`). Every random
draw (latents, mixing crossover, noise) is made for the global batch from generators whose state is in the
checkpoint, and each process takes its share, so a run resumes bitwise and does not depend on the number
of processes.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from stylegan_cli.core.device import autocast
from stylegan_cli.data.dataset import Dataset
from stylegan_cli.model import checkpoint
from stylegan_cli.model.losses import d_loss, g_loss, gradient_penalty, path_length, r1_penalty
from stylegan_cli.synthesis.images import from_uint8, image_grid, to_uint8
from stylegan_cli.training import augment
from stylegan_cli.training.config import TrainConfig
from stylegan_cli.training.distributed import Dist
from stylegan_cli.training.schedule import LR_DEFAULT, batch_size, learning_rate, phase
from stylegan_cli.training.stream import ImageStream, fade_reals


@dataclass
class Draws:
    """The random inputs of one generator pass, for this process's share of the batch."""

    z: torch.Tensor  # (n, z_dim) latents
    noise: list[torch.Tensor]  # (n, 1, r, r) per noise input, as Generator.make_noise gives them
    mix_z: torch.Tensor | None = None  # style mixing's second latents, or None for no mixing
    cutoff: int | None = None  # the first style input that takes mix_z's w
    pl_y: torch.Tensor | None = None  # (n, 3, res, res) N(0, I): the path-length penalty's y before scaling
    c: torch.Tensor | None = None  # (n, c_dim) one-hot labels of a class-conditional run, None otherwise


ADA_INTERVAL = 4  # steps between adjustments of ADA's p (NVIDIA's ada_interval)
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
        # Fused Adam: one kernel for all of a network's parameters, step counts on the device (so no step count is
        # read back per parameter), and fp16's loss scaling checked on the device (docs/design.md §8).
        self.G_opt = torch.optim.Adam(self.G.parameters(), lr=LR_DEFAULT, betas=(0.0, 0.99**self.G_lazy), eps=1e-8,
                                      fused=True)
        self.D_opt = torch.optim.Adam(self.D.parameters(), lr=LR_DEFAULT, betas=(0.0, 0.99**self.D_lazy), eps=1e-8,
                                      fused=True)
        self.latents = torch.Generator().manual_seed(cfg.seed)
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=cfg.precision == "fp16")
        self.stream = ImageStream(len(dataset), cfg.seed, cfg.mirror)
        self.nimg, self.step = 0, 0
        self.pl_mean = torch.zeros((), device=env.device)
        self.fixed_z = torch.randn(32, self.G.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
        # A class-conditional run's labels: the fakes' are drawn from the dataset's (as NVIDIA's training draws them),
        # and each row of the fixed grid (8 wide) shows one class, the classes in turn.
        self.labels = torch.tensor(dataset.labels) if cfg.c_dim else None
        self.fixed_c = self.one_hot(torch.arange(32) // 8 % cfg.c_dim) if cfg.c_dim else None
        # torch.compile serves the plain passes; the regularisers' double backward runs eagerly.
        # Each resolution compiles a few variants (with and without grad, fading or not), so the
        # recompile limit must cover all levels or dynamo silently falls back to eager.
        if cfg.compile:
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 128)
        self.synthesis = torch.compile(self.G.synthesis) if cfg.compile else self.G.synthesis
        self.D_plain = torch.compile(self.D) if cfg.compile else self.D
        # StyleGAN2-ADA: the augmentation in front of every discriminator pass, its own random draws, and the
        # signs of D's outputs on reals since p was last adjusted (sum, count).
        self.augment = None
        if cfg.aug != "none":
            self.augment = augment.AugmentPipe(augment.PRESETS[cfg.augpipe], p=cfg.aug_p or 0.0).to(env.device)
            self.augment_rng = torch.Generator(env.device).manual_seed(cfg.seed + 2)
            self.ada_signs = torch.zeros(2, dtype=torch.float64, device=env.device)

    # -- state --

    def state(self) -> dict:
        res, alpha = phase(self.nimg, self.cfg, self.G.start_resolution)
        return {
            **checkpoint.header(),
            "config": asdict(self.cfg), "nimg": self.nimg, "step": self.step, "resolution": res, "alpha": alpha,
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "G_opt": self.G_opt.state_dict(), "D_opt": self.D_opt.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": {"latents": self.latents.get_state()},
            "pl_mean": self.pl_mean.detach().cpu(),
            **({"augment": {"p": self.augment.p.cpu(), "rng": self.augment_rng.get_state(),
                            "signs": self.ada_signs.cpu()}} if self.augment is not None else {}),
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
        self.pl_mean = state["pl_mean"].to(self.env.device)
        if self.augment is not None and "augment" in state:  # (a run started without augmentation is refused)
            self.augment.p.copy_(state["augment"]["p"])
            self.augment_rng.set_state(state["augment"]["rng"])
            self.ada_signs.copy_(state["augment"]["signs"])

    # -- one iteration --

    def _autocast(self):
        return autocast(self.env.device, self.cfg.precision)

    def _share(self, t: torch.Tensor) -> torch.Tensor:
        """This process's share of a tensor drawn for the global batch: every world-th sample from its rank on,
        the stride by which the minibatch-std groups are formed (model/discriminator.py MinibatchStd)."""
        return t[self.env.rank :: self.env.world].to(self.env.device, non_blocking=True)

    def one_hot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """(n,) class indices -> (n, c_dim) one-hot labels as G and D take them; None for an unconditional run."""
        if not self.cfg.c_dim:
            return None
        return torch.nn.functional.one_hot(labels.long(), self.cfg.c_dim).float()

    def _device_generator(self) -> torch.Generator:
        """A generator on the device for the large draws (noise images), seeded from the latent generator."""
        return torch.Generator(self.env.device).manual_seed(int(torch.randint(0, 2**62, (), generator=self.latents)))

    def draw(self, batch: int, res: int, pl: bool = False) -> Draws:
        """The random inputs of one generator pass for a global batch, and this process's share of them: latents,
        the style-mixing draw (StyleGAN §3.1, made per batch as NVIDIA's code makes it: with probability
        `mixing`, one crossover point among the style inputs in use at `res`, after which a second latent's w
        takes over), the noise images, and for the path-length pass its y; for a class-conditional run, first the
        labels, each that of a random image of the dataset."""
        G, gen = self.G, self.latents
        c = None
        if self.labels is not None:
            c = self._share(self.one_hot(self.labels[torch.randint(len(self.labels), (batch,), generator=gen)]))
        z = torch.randn(batch, G.z_dim, generator=gen)
        mix_z, cutoff = None, None
        if self.cfg.mixing > 0 and G.num_ws > 1:
            active = sum(1 for r in G.style_layer_resolutions() if r <= res)
            mixing = float(torch.rand((), generator=gen)) < self.cfg.mixing
            cut = int(torch.randint(1, max(active, 2), (), generator=gen))
            if mixing:
                mix_z, cutoff = self._share(torch.randn(batch, G.z_dim, generator=gen)), cut
        device = self.env.device
        noise = [self._share(n) for n in G.make_noise(batch, res, generator=self._device_generator(), device=device)]
        y = None
        if pl:
            y = self._share(torch.randn(batch, 3, res, res, generator=self._device_generator(), device=device))
        return Draws(self._share(z), noise, mix_z, cutoff, y, c)

    def _ws(self, d: Draws) -> torch.Tensor:
        """The styles of a pass: z through the mapping network, broadcast to every style input, mixed with the
        second latent's from the crossover on. Each pass moves w_avg towards its batch's mean (over all
        processes), as NVIDIA's training moves it in every mapping call but the mixing one's."""
        G = self.G
        w = G.mapping(d.z, d.c)
        with torch.no_grad():
            G.w_avg.copy_(self.env.mean(w.detach().to(G.w_avg.dtype).mean(0)).lerp(G.w_avg, G.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, G.num_ws, 1)
        if d.mix_z is not None:
            w2 = G.mapping(d.mix_z, d.c).unsqueeze(1).expand(-1, G.num_ws - d.cutoff, -1)
            ws = torch.cat([ws[:, : d.cutoff], w2], dim=1)
        return ws

    def _D(self, images: torch.Tensor, res: int, alpha: float, c: torch.Tensor | None, plain: bool = True
           ) -> torch.Tensor:
        """The discriminator's scores of this process's images (and labels `c`, when conditional), augmented first
        when the run augments (ADA §2: every image D sees, real or generated, in every pass): the draws are made for
        the global batch, in the order of the passes, and each process applies its share. `plain`: through the
        compiled D (no double backward)."""
        if self.augment is not None:
            env = self.env
            draws = self.augment.draw((images.shape[0] * env.world, *images.shape[1:]), self.augment_rng)
            images = self.augment(images, draws, env.rank, env.world).to(images.dtype)
            if env.device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
        return (self.D_plain if plain else self.D)(images, res, alpha, c)

    def _adapt(self, batch: int) -> None:
        """ADA's p controller (StyleGAN2-ADA §3.1, NVIDIA's training loop): every ADA_INTERVAL steps, r_t = E[sign
        D(real)] over the reals of those steps (all processes) is compared with the target, and p moves by
        batch * interval / (ada_kimg * 1000) towards it, so that it can cross [0, 1] in ada_kimg kimg; p >= 0."""
        signs = self.ada_signs.clone()
        if self.env.world > 1:
            torch.distributed.all_reduce(signs)
        r_t = signs[0] / signs[1]
        adjust = float(torch.sign(r_t - self.cfg.ada_target)) * (batch * ADA_INTERVAL) / (self.cfg.ada_kimg * 1000)
        self.augment.p.copy_((self.augment.p + adjust).clamp(min=0))
        self.ada_signs.zero_()

    def _optimise(self, net: torch.nn.Module, opt: torch.optim.Optimizer, lr: float, loss: torch.Tensor) -> None:
        """One optimiser step on `loss` at learning rate `lr`, gradients averaged across processes (loss scaling
        for fp16)."""
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.env.average_grads(net)
        self.scaler.step(opt)
        self.scaler.update()

    def iteration(self, reals_u8: torch.Tensor, labels: torch.Tensor | None, res: int, alpha: float) -> dict:
        """One training iteration on this process's uint8 reals and their (n,) labels (used when conditional), its
        random inputs drawn from the run's generators."""
        batch = batch_size(self.cfg, res)
        phases = self.phases()
        draws = {name: self.draw(max(batch // 2, self.env.world) if name == "G_pl" else batch, res,
                                 pl=name == "G_pl") for name in ("G", "G_pl", "D") if name in phases}
        reals = fade_reals(from_uint8(reals_u8.to(self.env.device, non_blocking=True)), alpha)
        real_c = None if self.labels is None else self.one_hot(labels).to(self.env.device, non_blocking=True)
        return self.train_step(reals, res, alpha, draws, real_c)

    def _due(self) -> tuple[bool, bool]:
        """Whether the path-length penalty and R1 apply at this step."""
        cfg = self.cfg
        return (cfg.pl_weight > 0 and self.step % cfg.pl_every == 0,
                cfg.loss == "r1" and cfg.gamma > 0 and self.step % cfg.r1_every == 0)

    def phases(self) -> list[str]:
        """The passes of this step, in order. As in NVIDIA's code, a lazy regulariser (StyleGAN2 §3.1: every k > 1
        steps) is a pass of its own with its own optimiser step ("G_pl", "D_r1"), while one applied every step
        joins the main loss; StyleGAN2 trains G first, StyleGAN and Progressive GAN D first."""
        cfg = self.cfg
        pl_now, r1_now = self._due()
        g = ["G"] + (["G_pl"] if pl_now and cfg.pl_every > 1 else [])
        d = ["D"] + (["D_r1"] if r1_now and cfg.r1_every > 1 else [])
        return g + d if cfg.arch == "stylegan2" else d + g

    def train_step(self, reals: torch.Tensor, res: int, alpha: float, draws: dict[str, Draws],
                   real_c: torch.Tensor | None = None) -> dict:
        """The passes of `phases()` on this process's float reals (in [-1, 1], faded; `real_c` their one-hot labels
        in a conditional run) and the given random inputs ("G", "G_pl", "D" as `draw` makes them, or explicit
        ones), then the moving averages. Returns the loss terms (detached)."""
        cfg, env, G, D = self.cfg, self.env, self.G, self.D
        batch = batch_size(cfg, res)
        lr = learning_rate(cfg, res)
        if env.device.type == "cuda":
            reals = reals.contiguous(memory_format=torch.channels_last)
        stats = {}
        pl_now, r1_now = self._due()
        for name in self.phases():
            if name.startswith("G"):
                G.requires_grad_(True)
                with self._autocast():
                    ws = self._ws(draws[name])
                    if name == "G":
                        fakes = self.synthesis(ws, res, alpha, noise=draws[name].noise)
                        loss = stats["loss_G"] = g_loss(cfg.loss, self._D(fakes, res, alpha, draws[name].c))
                    pl_joined = name == "G" and pl_now and cfg.pl_every == 1
                    if name == "G_pl" or pl_joined:
                        penalty, self.pl_mean = path_length(
                            G, ws, res, alpha, self.pl_mean, cfg.pl_weight, cfg.pl_every, noise=draws[name].noise,
                            y=draws[name].pl_y, reduce=env.mean)
                        stats["pl"] = penalty
                        loss = loss + penalty if pl_joined else penalty
                self._optimise(G, self.G_opt, lr * self.G_lazy, loss)
                G.requires_grad_(False)
            else:
                D.requires_grad_(True)
                r1_joined = name == "D" and r1_now and cfg.r1_every == 1
                if name == "D":  # fakes first, then reals, as NVIDIA's code (the order of the augmentation's draws)
                    with torch.no_grad(), self._autocast():
                        fakes = self.synthesis(self._ws(draws["D"]), res, alpha, noise=draws["D"].noise)
                    with self._autocast():
                        fake_scores = self._D(fakes, res, alpha, draws["D"].c)
                real = reals.detach().requires_grad_(name == "D_r1" or r1_joined)
                with self._autocast():
                    real_scores = self._D(real, res, alpha, real_c, plain=not real.requires_grad)
                if name == "D":
                    loss = stats["loss_D"] = d_loss(cfg.loss, real_scores, fake_scores)
                    if self.augment is not None:  # the overfitting heuristic r_t (ADA §3.1), over this step's reals
                        signs = real_scores.detach().double().sign()
                        stats["r_t"] = signs.mean()
                        if cfg.aug == "ada":
                            self.ada_signs[0] += signs.sum()
                            self.ada_signs[1] += signs.numel()
                    if cfg.loss == "wgan-gp":
                        with self._autocast():
                            # each mix of a real and a fake is judged with the real's label
                            stats["gp"] = gradient_penalty(partial(self._D, c=real_c, plain=False), reals, fakes,
                                                           res, alpha, generator=self.latents)
                        loss = loss + stats["gp"]
                if name == "D_r1" or r1_joined:
                    stats["r1"] = r1_penalty(real_scores, real, cfg.gamma, cfg.r1_every)
                    loss = loss + stats["r1"] if r1_joined else stats["r1"]
                self._optimise(D, self.D_opt, lr * self.D_lazy, loss)
                D.requires_grad_(False)

        # The generator's moving average, with a half-life of ema_kimg (StyleGAN App. C) that ramps up over the
        # start of training (StyleGAN2-ADA's code: at most ema_rampup times the images seen), so early
        # averages follow G rather than its initial weights.
        with torch.no_grad():
            half_life = cfg.ema_kimg * 1000
            if cfg.ema_rampup > 0:
                half_life = min(half_life, cfg.ema_rampup * self.nimg)
            beta = 0.5 ** (batch / max(half_life, 1e-8))
            # NVIDIA's p_ema = lerp(p, p_ema, beta), for all parameters at once (a few launches, not two per tensor).
            ema = list(self.G_ema.parameters())
            torch._foreach_copy_(ema, torch._foreach_lerp(list(G.parameters()), ema, beta))
            torch._foreach_copy_(list(self.G_ema.buffers()), list(G.buffers()))
        self.nimg += batch
        self.step += 1
        if self.augment is not None and cfg.aug == "ada" and self.step % ADA_INTERVAL == 0:
            self._adapt(batch)
        return {k: v.detach() for k, v in stats.items()}

    # -- pictures --

    def fakes_grid(self, res: int, alpha: float) -> np.ndarray:
        """A grid from fixed latents through the moving-average generator, each cell shown at the
        target size (at most FAKES_CELL pixels, so a 1024x1024 run writes a 4096x2048 grid)."""
        with torch.no_grad():
            z = self.fixed_z.to(self.env.device)
            c = None if self.fixed_c is None else self.fixed_c.to(self.env.device)
            images = self.G_ema.synthesis(self.G_ema.mapping(z, c, broadcast=True), res,
                                          alpha, noise_mode="const")
            size = max(res, min(self.cfg.resolution, FAKES_CELL))
            images = torch.nn.functional.interpolate(images.float(), size=size, mode="nearest")
        return image_grid(list(to_uint8(images)), cols=8)
