"""Linear separability (StyleGAN §4.2): how well a hyperplane in latent space splits generated images by
each binary attribute, as exp(sum_i H(Y_i | X_i)).

The recipe of the paper: generate images from z ~ N(0, I) (200,000 of them; no truncation), label each
with every attribute classifier (`sgan classifiers train`), keep for each attribute the more confident
half of the samples, fit a linear SVM that predicts the classifier's label from the latent (w for a
style-based generator, z for a traditional one), and measure the conditional entropy H(Y | X) of the
classifier's label Y given the SVM's side X. The score is 1 when every attribute is linearly separable
and 2^A when no hyperplane tells anything about any of A attributes; lower is better.

The SVM is the one the paper's measurements used, scikit-learn's LinearSVC with its defaults (liblinear:
L2-regularised squared hinge loss, C = 1, the intercept learnt as the weight of a constant feature 1 and
regularised with the others), solved here in float64 by Newton's method.
"""

from __future__ import annotations

import math

import torch

SPACES = ("w", "z")


def _svm_objective(beta: torch.Tensor, x: torch.Tensor, s: torch.Tensor, C: float) -> torch.Tensor:
    """1/2 |beta|^2 + C sum_i max(0, 1 - s_i beta.x_i)^2, for labels s_i in {-1, +1}."""
    return 0.5 * beta.square().sum() + C * (1 - s * (x @ beta)).clamp(min=0).square().sum()


def fit_linear_svm(x: torch.Tensor, y: torch.Tensor, C: float = 1.0, max_iter: int = 100,
                   tol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear SVM fitted to (N, D) points `x` and 0/1 labels `y`: float64 (weight (D,), bias ()) such that
    x @ weight + bias > 0 predicts 1. Minimises liblinear's primal problem (see the module docstring).

    The objective is strictly convex and once differentiable, so Newton's method with the generalised
    Hessian I + 2C X_A^T X_A (X_A: the points inside the margin) and a backtracking line search converges
    to its unique minimum (Keerthi & DeCoste 2005); it stops when the gradient has shrunk by `tol`.
    Deterministic; runs on x's device."""
    x = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64, device=x.device)], dim=1)
    s = torch.as_tensor(y, device=x.device).double() * 2 - 1
    beta = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    eye = torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
    stop = None
    for _ in range(max_iter):
        margin = x @ beta
        inside = s * margin < 1
        xa = x[inside]
        grad = beta + 2 * C * xa.T @ (margin[inside] - s[inside])
        norm = grad.norm().item()
        stop = tol * max(norm, 1.0) if stop is None else stop
        if norm <= stop:
            break
        step = torch.linalg.solve(eye + 2 * C * xa.T @ xa, grad)
        f0, slope, t = _svm_objective(beta, x, s, C), (grad @ step).item(), 1.0
        while _svm_objective(beta - t * step, x, s, C) > f0 - 0.01 * t * slope and t > 1e-10:
            t /= 2
        beta = beta - t * step
    return beta[:-1], beta[-1]


def conditional_entropy(y, x) -> float:
    """H(Y | X) in nats for two binary arrays of equal length: -sum_{x,y} p(x, y) ln(p(x, y) / p(x))."""
    y, x = torch.as_tensor(y).bool().flatten(), torch.as_tensor(x).bool().flatten()
    assert len(y) == len(x) > 0, (len(y), len(x))
    h = 0.0
    for x_value in (False, True):
        given = x == x_value
        n_x = int(given.sum())
        for y_value in (False, True):
            n_xy = int((given & (y == y_value)).sum())
            if n_xy:
                h -= n_xy / len(y) * math.log(n_xy / n_x)
    return h


def attribute_entropies(latents: torch.Tensor, probabilities: torch.Tensor) -> list[float]:
    """H(Y_i | X_i) for each attribute i, from (N, D) latents and the classifiers' (N, A) probabilities
    of each attribute being 1 (StyleGAN §4.2): the more confident half of the samples (|p - 1/2| largest)
    labelled Y = p > 1/2, and X the side of the SVM fitted to them on which each latent lies."""
    probabilities = probabilities.to(latents.device)
    keep = len(latents) // 2
    entropies = []
    for p in probabilities.T:
        confident = torch.argsort((p - 0.5).abs(), descending=True, stable=True)[:keep]
        x, y = latents[confident], p[confident] > 0.5
        weight, bias = fit_linear_svm(x, y)
        entropies.append(conditional_entropy(y.cpu(), (x.double() @ weight + bias > 0).cpu()))
    return entropies


@torch.no_grad()
def linear_separability(G, classifiers, *, num_samples: int, space: str = "w", batch: int = 32, seed: int = 0,
                        device=None, progress=None) -> float:
    """exp(sum_i H(Y_i | X_i)) over the classifiers' attributes, for `num_samples` images of G (StyleGAN §4.2;
    the paper: 200,000) from z ~ N(0, I) without truncation, with random per-image noise, and the SVM on
    z or w (`space`). G has `mapping(z)`, `synthesis(ws, noise_mode=...)`, `num_ws` and `z_dim`; classifiers
    has `attributes` and `probabilities(images)`. G runs on `device` (default: where its parameters are);
    `seed` decides z and the noise; `progress.advance(n)` is called per batch of images."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}, not {space!r}")
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, not {num_samples}")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    z_source = torch.Generator().manual_seed(seed)
    latents, probabilities = [], []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # the noise inputs, drawn by synthesis from the global generator
        for start in range(0, num_samples, batch):
            z = torch.randn(min(batch, num_samples - start), G.z_dim, generator=z_source).to(device)
            w = G.mapping(z)
            images = G.synthesis(w.unsqueeze(1).repeat(1, G.num_ws, 1), noise_mode="random")
            latents.append((w if space == "w" else z).float())
            probabilities.append(classifiers.probabilities(images).float())
            if progress is not None:
                progress.advance(len(z))
    return math.exp(sum(attribute_entropies(torch.cat(latents), torch.cat(probabilities))))
