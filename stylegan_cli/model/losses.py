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


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """`x` in fp32 when autocast computed it in lower precision; fp32 and fp64 (the parity tests') kept."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def g_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator's loss on the discriminator's scores of its images."""
    fake_scores = at_least_fp32(fake_scores)
    if kind == "r1":
        return F.softplus(-fake_scores).mean()
    return -fake_scores.mean()


def d_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor, drift: float = 0.001) -> torch.Tensor:
    """The discriminator's loss, without its gradient penalty."""
    real_scores, fake_scores = at_least_fp32(real_scores), at_least_fp32(fake_scores)
    if kind == "r1":
        return F.softplus(fake_scores).mean() + F.softplus(-real_scores).mean()
    return fake_scores.mean() - real_scores.mean() + drift * real_scores.square().mean()


def r1_penalty(real_scores: torch.Tensor, reals: torch.Tensor, gamma: float, every: int) -> torch.Tensor:
    """gamma/2 * E[|grad_x D(x)|^2] on reals, times `every` when applied lazily (StyleGAN2 §3.1)."""
    (grad,) = torch.autograd.grad(at_least_fp32(real_scores).sum(), reals, create_graph=True)
    penalty = at_least_fp32(grad).square().sum(dim=[1, 2, 3]).mean() * (gamma / 2 * every)
    return penalty + _every_parameter(real_scores)


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
                noise: list | None = None, y: torch.Tensor | None = None, decay: float = 0.01,
                reduce=None) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2 §3.2: (|J_w^T y| - a)^2 with y ~ N(0, I)/sqrt(pixels) and a the running mean of the lengths.

    `ws` comes from the mapping network with its graph, so the penalty trains the mapping network too, and
    the new mean keeps the batch's lengths in its graph, as NVIDIA's code has both. `y` is the unscaled
    N(0, I) draw (drawn here when None). Returns the weighted penalty and the updated running mean (detached);
    `reduce` averages a scalar across processes, so every rank keeps the same mean while each
    backpropagates through its own share."""
    images = G.synthesis(ws, res, alpha, noise=noise)
    y = torch.randn_like(images) if y is None else y.to(images.dtype)
    y = y / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    lengths = at_least_fp32(grad).square().sum(dim=2).mean(dim=1).sqrt()
    batch_mean = lengths.mean()
    if reduce is not None:
        batch_mean = batch_mean + (reduce(batch_mean.detach()) - batch_mean.detach())
    new_mean = pl_mean.lerp(batch_mean, decay)
    penalty = (lengths - new_mean).square().mean() * (weight * every)
    return penalty + _every_parameter(images), new_mean.detach()


def _every_parameter(output: torch.Tensor) -> torch.Tensor:
    """Zero that depends on every parameter `output` does. Added to a regulariser, it gives the parameters the
    penalty does not reach (D's last bias for R1, G's output biases for path length) a zero gradient rather than
    none, so the optimiser step counts them, as NVIDIA's code does: Adam then advances their step count and
    decays their second moment, which changes their next steps."""
    return at_least_fp32(output).sum() * 0
