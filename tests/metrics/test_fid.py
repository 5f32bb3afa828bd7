"""FID, KID and precision/recall agree with direct NumPy/SciPy computations of their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from stylegan_cli.metrics import fid


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with a general matrix square root, as pytorch-fid computes it."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root.real))


def gaussian_set(n, d, seed, shift=0.0, scale=1.0):
    """n draws of a fixed correlated d-dimensional Gaussian (the same for every seed), scaled and shifted."""
    mixing = np.random.default_rng(12345).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mixing * scale + shift


def test_frechet_distance_equals_the_scipy_sqrtm_formula():
    a, b = gaussian_set(500, 16, 0), gaussian_set(400, 16, 1, shift=0.3, scale=1.5)
    assert fid.fid(a, b) == pytest.approx(scipy_fid(a, b), rel=1e-9)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    a = gaussian_set(300, 32, 2)
    assert abs(fid.fid(a, a)) < 1e-9


def test_frechet_distance_of_gaussians_with_known_parameters():
    # N(m1, s1^2 I) vs N(m2, s2^2 I): |m1 - m2|^2 + d (s1 - s2)^2.
    d = 8
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    value = fid.frechet_distance(mu1, np.eye(d) * 4.0, mu2, np.eye(d) * 1.0)
    assert value == pytest.approx(d * 0.25 + d * (2 - 1) ** 2, rel=1e-12)


def test_frechet_distance_stays_finite_and_real_with_fewer_samples_than_dimensions():
    a, b = gaussian_set(20, 64, 3), gaussian_set(20, 64, 4, shift=1.0)
    value = fid.fid(a, b)
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(scipy_fid(a, b), rel=1e-4)


def direct_unbiased_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """MMD^2_u with k(a, b) = (a.b / d + 1)^3, summed pair by pair."""
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_on_one_whole_subset_is_the_unbiased_mmd():
    x, y = gaussian_set(30, 6, 5), gaussian_set(30, 6, 6, shift=0.5)
    value = fid.kid(real=y, fake=x, num_subsets=1, max_subset_size=30)
    assert value == pytest.approx(direct_unbiased_mmd(x, y), rel=1e-10)


def test_kid_is_unbiased_zero_for_two_samples_of_one_gaussian_and_positive_for_shifted_ones():
    same = [fid.kid(gaussian_set(200, 16, s), gaussian_set(200, 16, s + 100), num_subsets=10, max_subset_size=100,
                    seed=s) for s in range(20)]
    spread = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * spread  # a biased (V-statistic) estimate sits clearly above 0
    shifted = fid.kid(gaussian_set(200, 16, 1), gaussian_set(200, 16, 2, shift=1.0), num_subsets=10,
                      max_subset_size=100)
    assert shifted > 20 * spread


def brute_force_precision_recall(real, fake, k):
    def radii(x):
        dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(dist, axis=1)[:, k]

    def inside(points, manifold):
        dist = np.linalg.norm(points[:, None] - manifold[None], axis=-1)
        return (dist <= radii(manifold)[None]).any(axis=1).mean()

    return inside(fake, real), inside(real, fake)


def test_precision_recall_match_a_brute_force_count():
    real, fake = gaussian_set(120, 5, 7), gaussian_set(90, 5, 8, shift=0.4, scale=0.6)
    got = fid.precision_recall(real, fake, k=3, row_batch=17)
    assert got == pytest.approx(brute_force_precision_recall(real, fake, 3), abs=1e-6)


def test_precision_and_recall_of_identical_sets_are_one_and_of_far_sets_zero():
    real = gaussian_set(60, 4, 9)
    assert fid.precision_recall(real, real, k=3) == (1.0, 1.0)
    assert fid.precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)


def test_a_collapsed_generator_has_full_precision_but_low_recall():
    real = gaussian_set(200, 4, 10)
    fake = real[0] + gaussian_set(50, 4, 11) * 1e-3  # every fake is nearly the same real image
    precision, recall = fid.precision_recall(real, fake, k=3)
    assert precision == 1.0 and recall < 0.05
