"""The Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", §4).

IS = exp(E_x KL(p(y|x) || p(y))): p(y|x) is the Inception-v3's class distribution for image x and p(y) its
average over the images, so the score is high when each image is classified with confidence and the
classes are spread over many. As StyleGAN2-ADA computes it (after the original implementation): p(y|x)
is the softmax of the 2015-12-05 graph's 1008 logits without the output layer's bias (metrics/inception.py),
the N images are cut in order into `splits` consecutive parts (part i holds images i*N//splits up to
(i+1)*N//splits), p(y) is taken within each part, and the result is the mean and the (population)
standard deviation of the parts' scores. The number of images and of splits are named where the metric is
registered, in metrics/registry.py.
"""

from __future__ import annotations

import numpy as np


def log_probabilities(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64 and without overflow."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def inception_score(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """(mean, std) over `splits` consecutive parts of exp(mean_x KL(p(y|x) || p(y))), from (N, C) logits."""
    log_p = log_probabilities(logits)
    n = len(log_p)
    assert log_p.ndim == 2 and n >= splits >= 1, (log_p.shape, splits)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        top = part.max(axis=0)
        log_marginal = top + np.log(np.exp(part - top).mean(axis=0))  # log p(y), finite where p(y) underflows
        kl = (np.exp(part) * (part - log_marginal)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
