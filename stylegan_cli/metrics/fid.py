"""Distances between two sets of image features: FID, KID, and precision/recall.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to the Inception features
of real and generated images; KID (Bińkowski et al. 2018) the unbiased MMD with a cubic polynomial
kernel, averaged over subsets; precision and recall (Kynkäänniemi et al. 2019) the share of each
set that falls inside the other's k-nearest-neighbour manifold. The metrics' constants (subsets,
neighbours, image counts) are named where each metric is registered, in metrics/registry.py.
"""

from __future__ import annotations

import numpy as np
import torch


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    x = np.asarray(features, dtype=np.float64)
    assert x.ndim == 2 and len(x) >= 2, x.shape
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    Tr((S1 S2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the symmetric
    S1^(1/2) S2 S1^(1/2), which has the same spectrum; unlike a general matrix square root this
    stays real and stable when the covariances are singular (fewer images than dimensions).
    Eigenvalues below the numerical rank threshold count as 0, so that round-off in the null space
    does not add up over 2048 square roots."""
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape == (len(mu1), len(mu1))
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(_above_noise(values))) @ vectors.T
    trace_root = np.sqrt(_above_noise(np.linalg.eigvalsh(root1 @ sigma2 @ root1))).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)


def _above_noise(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric PSD matrix with those under its rank tolerance (as numpy's
    matrix_rank sets it: largest * size * machine epsilon) set to 0."""
    tolerance = max(eigenvalues.max(), 0) * len(eigenvalues) * np.finfo(eigenvalues.dtype).eps
    return np.where(eigenvalues > tolerance, eigenvalues, 0.0)


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance(*gaussian(real), *gaussian(fake))


def kid(real: np.ndarray, fake: np.ndarray, num_subsets: int, max_subset_size: int, seed: int = 0) -> float:
    """Kernel Inception distance: the unbiased MMD^2 estimate with k(x, y) = (x.y / d + 1)^3,
    averaged over `num_subsets` random subsets of m = min(N_real, N_fake, max_subset_size)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    d = real.shape[1]
    m = min(len(real), len(fake), max_subset_size)
    assert m >= 2, "KID needs at least two images in each set"
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        total += within - 2 * kxy.mean()
    return float(total / num_subsets)


def _knn_radii(x: torch.Tensor, k: int, row_batch: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour within the set (itself excluded)."""
    radii = []
    for start in range(0, len(x), row_batch):
        dist = torch.cdist(x[start : start + row_batch], x)
        radii.append(dist.kthvalue(k + 1, dim=1).values)  # the 0 to itself is the first
    return torch.cat(radii)


def _inside(points: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, row_batch: int) -> torch.Tensor:
    """For each point: does it lie within some manifold point's k-NN ball?"""
    hits = []
    for start in range(0, len(points), row_batch):
        dist = torch.cdist(points[start : start + row_batch], manifold)
        hits.append((dist <= radii[None, :]).any(dim=1))
    return torch.cat(hits)


def precision_recall(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int,
                     row_batch: int = 10000, device: torch.device | str = "cpu") -> tuple[float, float]:
    """Precision: share of fakes inside the real manifold; recall: share of reals inside the fake one.
    Each manifold is the union of balls reaching every point's k-th nearest neighbour."""
    real = torch.as_tensor(np.asarray(real), dtype=torch.float32, device=device)
    fake = torch.as_tensor(np.asarray(fake), dtype=torch.float32, device=device)
    assert len(real) > k and len(fake) > k, f"precision/recall with k={k} needs more than {k} images per set"
    precision = _inside(fake, real, _knn_radii(real, k, row_batch), row_batch).float().mean()
    recall = _inside(real, fake, _knn_radii(fake, k, row_batch), row_batch).float().mean()
    return float(precision), float(recall)
