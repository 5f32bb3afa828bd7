"""The adversarial losses and regularisers of the papers (docs/design.md §6).

- `r1`: non-saturating logistic loss (Goodfellow 2014) with the R1 penalty on reals
  (Mescheder 2018), gamma 10: StyleGAN's FFHQ setup; `r1_every` > 1 is StyleGAN2's lazy version.
- `wgan-gp`: Progressive GAN's WGAN-GP (lambda 10, target 1) with its drift term 0.001.
- `path_length`: StyleGAN2's path-length regulariser, its running mean decayed by 0.01.

Each function takes the discriminator's scores (or the networks) and returns a scalar loss
already multiplied by its weight, so the trainer only sums and backpropagates.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def g_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator's loss on the discriminator's scores of its images."""
    if kind == "r1":
        return F.softplus(-fake_scores).mean()
    return -fake_scores.mean()


def d_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor, drift: float = 0.001) -> torch.Tensor:
    """The discriminator's loss, without its gradient penalty."""
    if kind == "r1":
        return F.softplus(fake_scores).mean() + F.softplus(-real_scores).mean()
    return fake_scores.mean() - real_scores.mean() + drift * real_scores.square().mean()


def r1_penalty(real_scores: torch.Tensor, reals: torch.Tensor, gamma: float, every: int) -> torch.Tensor:
    """gamma/2 * E[|grad_x D(x)|^2] on reals, times `every` when applied lazily (StyleGAN2 §3.1)."""
    (grad,) = torch.autograd.grad(real_scores.float().sum(), reals, create_graph=True)
    return grad.float().square().sum(dim=[1, 2, 3]).mean() * (gamma / 2 * every)


def gradient_penalty(D, reals: torch.Tensor, fakes: torch.Tensor, res: int, alpha: float, weight: float = 10.0,
                     target: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani 2017) at random interpolates of reals and fakes, as Progressive GAN uses it."""
    t = torch.rand(reals.shape[0], 1, 1, 1, generator=generator).to(reals.device, reals.dtype)
    mixed = (reals.detach() + (fakes.detach() - reals.detach()) * t).requires_grad_(True)
    scores = D(mixed, res, alpha)
    (grad,) = torch.autograd.grad(scores.float().sum(), mixed, create_graph=True)
    norm = grad.float().square().sum(dim=[1, 2, 3]).sqrt()
    return weight * ((norm - target) / target).square().mean()


def path_length(G, ws: torch.Tensor, res: int, alpha: float, pl_mean: torch.Tensor, weight: float, every: int,
                noise: list | None = None, decay: float = 0.01, reduce=None) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2 §3.2: (|J_w^T y| - a)^2 with y ~ N(0, I)/sqrt(pixels) and a the running mean of
    the lengths. Returns the weighted penalty and the updated running mean; `reduce` averages a
    scalar across processes so every rank keeps the same mean."""
    ws = ws.detach().requires_grad_(True)
    images = G.synthesis(ws, res, alpha, noise=noise)
    y = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    lengths = grad.float().square().sum(dim=2).mean(dim=1).sqrt()
    batch_mean = lengths.mean().detach()
    if reduce is not None:
        batch_mean = reduce(batch_mean)
    new_mean = pl_mean + decay * (batch_mean - pl_mean)
    return (lengths - new_mean).square().mean() * (weight * every), new_mean
