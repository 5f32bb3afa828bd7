"""Perceptual path length (StyleGAN §4.1), checked on generators whose path lengths are known by
construction, then run on a real trained generator with LPIPS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stylegan_cli.metrics.lpips import load_lpips
from stylegan_cli.metrics.ppl import mean_without_outliers, perceptual_path_length, prepare_images, slerp
from stylegan_cli.synthesis.generator import load_generator

DIM = 48  # z, w and a 3x4x4 image all have 48 values


class LinearGenerator(torch.nn.Module):
    """Generator's interface with the identity as mapping and a linear synthesis: image = A w."""

    z_dim = w_dim = DIM
    num_ws = 3
    resolution = 4

    def __init__(self, A: torch.Tensor):
        super().__init__()
        self.A = torch.nn.Parameter(A, requires_grad=False)

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        assert noise_mode == "const", "only the latent may move along the path"
        assert torch.equal(ws, ws[:, :1].expand_as(ws)), "every style input gets the same w"
        return (ws[:, 0] @ self.A.T).view(-1, 3, 4, 4)


def squared_distance(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    return (x0 - x1).square().sum(dim=(1, 2, 3))


def random_matrix(seed: int = 0) -> torch.Tensor:
    return torch.randn(DIM, DIM, generator=torch.Generator().manual_seed(seed))


def ppl(G, **kwargs) -> float:
    options = dict(space="w", sampling="full", num_samples=2000, crop=False, batch=500)
    return perceptual_path_length(G, squared_distance, **{**options, **kwargs})


@pytest.mark.parametrize("sampling", ["full", "end"])
def test_in_w_a_linear_generator_has_path_length_2_trace_AtA(sampling):
    # The lerp moves w at speed w1 - w0 ~ N(0, 2I), so every segment has length |A (w1 - w0)|^2,
    # whose expectation is 2 trace(A^T A).
    A = random_matrix()
    expected = 2 * torch.trace(A.T @ A).item()
    assert ppl(LinearGenerator(A), sampling=sampling) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("sampling", ["full", "end"])
def test_in_z_an_orthogonal_generator_has_path_length_s2_times_the_mean_squared_angle(sampling):
    # The slerp moves along the unit sphere at a speed equal to the angle between z0 and z1; an
    # orthogonal A scaled by s turns that into image distances s^2 angle^2.
    s = 3.0
    Q, _ = torch.linalg.qr(random_matrix(1))
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((2, 100_000, DIM))
    cos = (z0 * z1).sum(1) / np.linalg.norm(z0, axis=1) / np.linalg.norm(z1, axis=1)
    expected = s**2 * np.mean(np.arccos(cos) ** 2)
    assert ppl(LinearGenerator(s * Q), space="z", sampling=sampling) == pytest.approx(expected, rel=0.03)


def test_the_same_seed_gives_the_same_value_and_another_seed_another():
    G = LinearGenerator(random_matrix())
    assert ppl(G, num_samples=64, seed=5) == ppl(G, num_samples=64, seed=5)
    assert ppl(G, num_samples=64, seed=5) != ppl(G, num_samples=64, seed=6)


def test_generation_stays_in_float32_under_an_outer_autocast():
    G = LinearGenerator(random_matrix())
    plain = ppl(G, num_samples=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ppl(G, num_samples=64) == pytest.approx(plain, rel=1e-6)


def test_progress_advances_once_per_sample_in_batches():
    class Counter:
        steps: list[int] = []

        def advance(self, n: int) -> None:
            self.steps.append(n)

    counter = Counter()
    ppl(LinearGenerator(random_matrix()), num_samples=10, batch=4, progress=counter)
    assert counter.steps == [4, 4, 2]


@pytest.mark.parametrize("option", [dict(space="x"), dict(sampling="middle"), dict(num_samples=0)])
def test_bad_options_are_usage_errors(option):
    with pytest.raises(ValueError):
        ppl(LinearGenerator(random_matrix()), **option)


def test_slerp_runs_from_the_direction_of_a_to_that_of_b_on_the_unit_sphere():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 16, generator=g) * 7
    unit_a, unit_b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    torch.testing.assert_close(slerp(a, b, 0.0), unit_a)
    torch.testing.assert_close(slerp(a, b, 1.0), unit_b)
    angle = torch.acos((unit_a * unit_b).sum(1))
    for t in [0.1, 0.5, 0.9, torch.full((5,), 0.3)]:
        point = slerp(a, b, t)
        torch.testing.assert_close(point.norm(dim=1), torch.ones(5))
        torch.testing.assert_close(torch.acos((point * unit_a).sum(1).clamp(-1, 1)), t * angle, atol=1e-3, rtol=0)


def test_outlier_rejection_keeps_the_1st_to_99th_percentile_rounded_outwards():
    # Of 0..100 in any order, the 1st percentile is 1 and the 99th is 99: only 0 and 100 go.
    values = np.random.default_rng(0).permutation(101).astype(float) ** 2
    assert mean_without_outliers(values) == pytest.approx(np.mean(np.arange(1, 100) ** 2))
    # Of 0..999 the percentiles fall between values (9.99 and 989.01): the 1st rounds down to 9
    # and the 99th up to 990, so 9 and 990 stay.
    values = np.arange(1000.0) ** 2
    assert mean_without_outliers(values) == pytest.approx(np.mean(np.arange(9, 991) ** 2))


def test_outliers_cannot_move_the_mean():
    values = np.concatenate([np.full(99, 2.0), [1e9, -1e9]])
    assert mean_without_outliers(values) == 2.0


def test_images_are_cropped_to_the_face_then_brought_to_256():
    rows, cols = torch.meshgrid(torch.arange(1024.0), torch.arange(1024.0), indexing="ij")
    image = torch.stack([rows, cols, rows]).unsqueeze(0)
    out = prepare_images(image, crop=True)  # rows 384..895, columns 256..767, then 2x2 means
    assert out.shape == (1, 3, 256, 256)
    assert out[0, 0, 0, 0] == 384.5 and out[0, 0, -1, 0] == 894.5
    assert out[0, 1, 0, 0] == 256.5 and out[0, 1, 0, -1] == 766.5
    uncropped = prepare_images(image, crop=False)  # 4x4 means
    assert uncropped.shape == (1, 3, 256, 256) and uncropped[0, 0, 0, 0] == 1.5
    small = image[:, :, :256, :256]
    assert torch.equal(prepare_images(small, crop=True), small[:, :, 96:224, 64:192])
    assert torch.equal(prepare_images(small, crop=False), small)


@pytest.mark.parametrize("space", ["z", "w"])
def test_a_trained_generator_has_a_finite_positive_path_length(trained, space):
    G = load_generator(trained, None).G
    # At 16x16 the face crop would leave 8x8, too small for VGG16's five blocks.
    value = perceptual_path_length(G, load_lpips(), space=space, sampling="full", num_samples=8, batch=4,
                                   crop=False)
    assert math.isfinite(value) and value > 0
