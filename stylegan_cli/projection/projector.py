"""StyleGAN2's projector (StyleGAN2 §5, App. D; docs/design.md §13): the latent and the noise maps whose
image is closest to a target image in LPIPS-VGG16 distance.

The search starts at the centre of W and moves, with Adam (betas 0.9, 0.999), a w (`space` "w": one
for every style input; "wplus": one per style input) and every noise map of the generator:
- the learning rate peaks at 0.1, ramped up linearly over the first 5% of the steps and down to zero
  with a cosine over the last 25%;
- Gaussian noise of std 0.05 sigma_w max(0, 1 - t / 0.75)^2 is added to w at each step t (a fraction of
  the steps), so the search explores first and settles at the end; sigma_w is the root-mean-square
  distance of mapped latents from their centre;
- the loss is the LPIPS distance of the image to the target, both downsampled to 256x256 (area
  filter) when larger, plus 1e5 times the noise regulariser (`noise_regularizer`), which keeps the
  maps from carrying the image's signal; after each step every map is renormalised to zero mean and
  unit variance.
Every random draw of a projection comes from its own seeded generator on the CPU, so a target's
result depends only on the generator, the target, the settings and the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stylegan_cli.metrics.lpips import LPIPS
from stylegan_cli.model.generator import Generator
from stylegan_cli.synthesis.images import from_uint8, to_uint8

SPACES = ("w", "wplus")


@dataclass(frozen=True)
class ProjectConfig:
    """The projector's settings: StyleGAN2's (App. D) unless a flag says otherwise."""

    steps: int = 1000
    space: str = "w"  # one w for every style input ("w") or one per style input ("wplus")
    lr: float = 0.1  # Adam's peak learning rate
    lr_rampup: float = 0.05  # fraction of the steps over which the rate rises linearly from 0
    lr_rampdown: float = 0.25  # fraction of the steps at the end over which it falls to 0 (cosine)
    w_noise: float = 0.05  # std of the noise added to w at the start, in units of sigma_w
    w_noise_ramp: float = 0.75  # fraction of the steps after which no noise is added
    noise_weight: float = 1e5  # weight of the noise regulariser
    w_samples: int = 10_000  # mapped latents that locate W's centre and spread
    lpips_size: int = 256  # images larger than this are downsampled to it for LPIPS
    frames: int = 50  # snapshots of the search for its animation (plus the start and the end)


def learning_rate(cfg: ProjectConfig, t: float) -> float:
    """Adam's rate at t in [0, 1): linear ramp-up, then a cosine ramp-down over the last `lr_rampdown`."""
    down = 0.5 - 0.5 * math.cos(min(1.0, (1.0 - t) / cfg.lr_rampdown) * math.pi)
    return cfg.lr * down * min(1.0, t / cfg.lr_rampup)


def w_noise_std(cfg: ProjectConfig, t: float, w_std: float) -> float:
    """Std of the noise added to w at t in [0, 1): 0.05 sigma_w max(0, 1 - t / 0.75)^2."""
    return w_std * cfg.w_noise * max(0.0, 1.0 - t / cfg.w_noise_ramp) ** 2


def noise_regularizer(maps: list[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2 §5's noise regulariser: for each (r, r) map, at every level of its pyramid (2x2 average
    pooling down to 8x8), the squared mean product of each pixel with its neighbour one step across
    and one step down (wrapping around), summed. Zero for noise without spatial correlation."""
    total = torch.zeros((), device=maps[0].device)
    for noise in maps:
        x = noise[None, None]
        while True:
            total = total + (x * x.roll(1, dims=3)).mean().square() + (x * x.roll(1, dims=2)).mean().square()
            if x.shape[-1] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return total


def w_statistics(G: Generator, samples: int, seed: int) -> tuple[torch.Tensor, float]:
    """(centre, sigma_w): the mean of `samples` mapped latents drawn from `seed`, and their root-mean-square
    distance from it (StyleGAN2's projector)."""
    z = torch.randn(samples, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        w = torch.cat([G.mapping(chunk.to(G.w_avg.device)).float() for chunk in z.split(4096)])
    centre = w.mean(dim=0)
    return centre, float((w - centre).square().sum(dim=1).mean().sqrt())


@dataclass
class Projection:
    """What a projection found, and what it looked like on the way (all on the CPU)."""

    w: torch.Tensor  # (num_ws, w_dim), float32
    noise: list[np.ndarray]  # one (r, r) float32 map per noise input, coarse to fine
    frames: list[np.ndarray]  # (R, R, 3) uint8 snapshots: the start, every few steps, the result
    losses: list[float]  # LPIPS (of the step's image, w noise and all, at lpips_size) at each frame but the first


class Projector:
    """Projects images into one generator's latent space with one set of settings (`project`).

    `G` must have a mapping network (not pggan) and run without gradients of its own; `lpips` is
    LPIPS-VGG16 on G's device. W's centre and spread are estimated once, from `seed`."""

    def __init__(self, G: Generator, lpips: LPIPS, cfg: ProjectConfig, seed: int):
        if G.arch == "pggan":
            raise ValueError("a projection needs a mapping network, which Progressive GAN's generator lacks")
        if cfg.space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}, not {cfg.space!r}")
        self.G, self.lpips, self.cfg, self.seed = G, lpips, cfg, seed
        self.w_avg, self.w_std = w_statistics(G, cfg.w_samples, seed)

    def _lpips_input(self, images: torch.Tensor) -> torch.Tensor:
        size = self.cfg.lpips_size
        return F.interpolate(images, size=(size, size), mode="area") if images.shape[-1] > size else images

    def _image(self, w: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        """(1, 3, R, R): the (1, k, w_dim) latent through synthesis, k = 1 broadcasting to every style input."""
        ws = w.expand(1, self.G.num_ws, -1)
        return self.G.synthesis(ws, noise=[m[None, None] for m in maps])

    def project(self, target: np.ndarray, on_step: Callable[[], None] | None = None) -> Projection:
        """Finds the latent and noise maps of one (R, R, 3) uint8 target at G's resolution; `on_step()` is
        called after every step (a progress bar). The step reads nothing back to the host but at frames."""
        G, cfg = self.G, self.cfg
        device = G.w_avg.device
        assert target.shape == (G.resolution, G.resolution, 3) and target.dtype == np.uint8, target.shape
        draws = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            goal = self.lpips.embed(self._lpips_input(from_uint8(torch.from_numpy(target).permute(2, 0, 1)[None])
                                                      .to(device)))
        rows = G.num_ws if cfg.space == "wplus" else 1
        w = self.w_avg.to(device).view(1, 1, -1).repeat(1, rows, 1).requires_grad_(True)
        maps = [torch.randn(r, r, generator=draws).to(device).requires_grad_(True)
                for r in (m.shape[-1] for m in G.make_noise(1, device="cpu"))]
        opt = torch.optim.Adam([w, *maps], lr=cfg.lr, betas=(0.9, 0.999))
        every = max(1, cfg.steps // cfg.frames)
        frames, losses = [self._snapshot(w, maps)], []
        for step in range(cfg.steps):
            t = step / cfg.steps
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, t)
            jitter = torch.randn(w.shape, generator=draws).to(device) * w_noise_std(cfg, t, self.w_std)
            image = self._image(w + jitter, maps)
            distance = self.lpips.distance(goal, self.lpips.embed(self._lpips_input(image))).sum()
            opt.zero_grad(set_to_none=True)
            (distance + cfg.noise_weight * noise_regularizer(maps)).backward()
            opt.step()
            with torch.no_grad():
                for m in maps:
                    m -= m.mean()
                    m *= m.square().mean().rsqrt()
            if (step + 1) % every == 0 or step + 1 == cfg.steps:
                frames.append(self._snapshot(w, maps))
                losses.append(float(distance.detach()))
            if on_step is not None:
                on_step()
        return Projection(w=w.detach().expand(1, G.num_ws, -1)[0].float().cpu().clone(),
                          noise=[m.detach().float().cpu().numpy() for m in maps], frames=frames, losses=losses)

    def score(self, image: np.ndarray, target: np.ndarray) -> tuple[float, float | None]:
        """(LPIPS, PSNR in dB) of an (R, R, 3) uint8 image against the target: LPIPS as the search measures
        it (at `lpips_size`), PSNR over every pixel (None for identical images)."""
        device = self.G.w_avg.device
        pair = torch.from_numpy(np.stack([image, target])).permute(0, 3, 1, 2).to(device)
        with torch.no_grad():
            x = self._lpips_input(from_uint8(pair))
            distance = float(self.lpips(x[:1], x[1:])[0])
        mse = float(np.mean((image.astype(np.float64) - target.astype(np.float64)) ** 2))
        return distance, 10 * math.log10(255**2 / mse) if mse > 0 else None

    def _snapshot(self, w: torch.Tensor, maps: list[torch.Tensor]) -> np.ndarray:
        with torch.no_grad():
            return to_uint8(self._image(w, maps))[0]
