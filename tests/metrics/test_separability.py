"""Linear separability (StyleGAN §4.2): the SVM, the conditional entropy, and the metric on generators
whose attributes are known to be linear in the latent, or not related to it at all."""

from __future__ import annotations

import math

import pytest
import torch
from test_classifiers import train_cifar_classifiers

from stylegan_cli.metrics.classifiers import load_classifiers
from stylegan_cli.metrics.separability import (
    _svm_objective,
    attribute_entropies,
    conditional_entropy,
    fit_linear_svm,
    linear_separability,
)
from stylegan_cli.synthesis.generator import load_generator


def two_sided_cloud(normal: torch.Tensor, offset: float, n: int, gap: float, seed: int = 0):
    """Points around the hyperplane normal.x + offset = 0 (unit normal), none closer to it than `gap`,
    labelled 1 on the side the normal points to."""
    x = torch.randn(4 * n, len(normal), generator=torch.Generator().manual_seed(seed)) * 3
    distance = x @ normal + offset
    x, distance = x[distance.abs() > gap][:n], distance[distance.abs() > gap][:n]
    return x, (distance > 0).long()


def test_the_svm_separates_a_separable_set_along_the_true_boundary():
    normal = torch.tensor([3.0, -4.0, 0.0]) / 5
    x, y = two_sided_cloud(normal, offset=1.5, n=2000, gap=1.0)
    weight, bias = fit_linear_svm(x, y)
    assert torch.equal((x.double() @ weight + bias > 0).long(), y)
    assert torch.dot(weight / weight.norm(), normal.double()) > 0.999
    assert bias / weight.norm() == pytest.approx(1.5, abs=0.05)  # where the boundary crosses the normal


def test_the_svm_solves_liblinears_problem_to_convergence():
    """Squared hinge, C = 1, regularised intercept: at the minimum the objective's gradient vanishes."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 8, generator=g) + 0.3
    y = (x[:, 0] - x[:, 1] + torch.randn(500, generator=g) > 0).long()  # overlapping classes
    weight, bias = fit_linear_svm(x, y)
    beta = torch.cat([weight, bias.view(1)]).requires_grad_(True)
    augmented = torch.cat([x.double(), torch.ones(500, 1, dtype=torch.float64)], dim=1)
    (grad,) = torch.autograd.grad(_svm_objective(beta, augmented, y.double() * 2 - 1, 1.0), beta)
    assert grad.norm() < 1e-6
    again = fit_linear_svm(x, y)
    assert torch.equal(again[0], weight) and torch.equal(again[1], bias)


def test_conditional_entropy_matches_hand_computed_values():
    x = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert conditional_entropy(x, x) == 0
    assert conditional_entropy(1 - x, x) == 0  # Y determined by X, whichever way round
    assert conditional_entropy(torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]), x) == pytest.approx(math.log(2))
    # X = 0: Y all 0; X = 1: one Y in four is 0, so H = 1/2 (-1/4 ln 1/4 - 3/4 ln 3/4).
    y = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    assert conditional_entropy(y, x) == pytest.approx(0.5 * -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert conditional_entropy([1, 1, 0], [1, 1, 1]) == pytest.approx(
        -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))


class SquareMapping(torch.nn.Module):
    """A stand-in generator with 4-dimensional latents: w = (z1, z2^2, z3, z4), drawn as a 2x2 image whose
    pixels are w; its attributes are read back from those pixels."""

    z_dim, num_ws = 4, 2

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # where the generator lives

    def mapping(self, z):
        return torch.stack([z[:, 0], z[:, 1] ** 2, z[:, 2], z[:, 3]], dim=1)

    def synthesis(self, ws, noise_mode="random"):
        assert noise_mode == "random" and ws.shape[1] == self.num_ws
        return ws[:, 0].view(-1, 1, 2, 2).expand(-1, 3, -1, -1)


class PixelClassifiers:
    """Classifiers that see through the images: `rules` turn the pixels (w) into logits."""

    def __init__(self, **rules):
        self.attributes, self.rules = list(rules), list(rules.values())

    def probabilities(self, images):
        w = images[:, 0].flatten(1)
        return torch.stack([torch.sigmoid(rule(w)) for rule in self.rules], dim=1)


def coin(w):
    """A random attribute, unrelated to the image."""
    return torch.randn(len(w))


def test_attributes_linear_in_w_are_perfectly_separable():
    classifiers = PixelClassifiers(first=lambda w: 4 * (w[:, 0] - 0.2), square=lambda w: 4 * (w[:, 1] - 1 + w[:, 3]))
    score = linear_separability(SquareMapping(), classifiers, num_samples=2000, space="w", batch=256)
    assert score == pytest.approx(1.0, abs=1e-9)  # exp(0)


def test_the_space_decides_which_latent_the_svm_sees():
    """z2^2 + z4 > 1 is linear in w but not in z: the SVM on z cannot tell which side a sample is on."""
    classifiers = PixelClassifiers(square=lambda w: 4 * (w[:, 1] - 1 + w[:, 3]))
    assert linear_separability(SquareMapping(), classifiers, num_samples=2000, space="z", batch=256) > 1.3


def test_random_attributes_score_two_to_the_number_of_attributes():
    classifiers = PixelClassifiers(a=coin, b=coin, c=coin)
    score = linear_separability(SquareMapping(), classifiers, num_samples=4000, batch=500)
    assert score == pytest.approx(math.exp(3 * math.log(2)), rel=0.03)  # 8: each H(Y|X) = ln 2


def test_only_the_more_confident_half_is_kept_for_each_attribute():
    """On a line, five confident labels follow the sign of the latent and five unsure ones (p near 1/2)
    contradict it. All ten are not linearly separable; the confident five are, so H = 0."""
    latents = torch.tensor([-5.0, -4.0, 3.0, 4.0, 5.0, -3.0, -2.0, -1.0, 1.0, 2.0]).view(-1, 1)
    p = torch.tensor([0.01, 0.01, 0.99, 0.99, 0.99, 0.6, 0.6, 0.6, 0.4, 0.4])
    assert attribute_entropies(latents, p.view(-1, 1)) == [0.0]
    weight, bias = fit_linear_svm(latents, p > 0.5)
    assert conditional_entropy(p > 0.5, latents.double() @ weight + bias > 0) > 0.5


@pytest.fixture(scope="session")
def cifar_classifiers_folder(tmp_path_factory):
    return train_cifar_classifiers(tmp_path_factory.getbasetemp())[0]


@pytest.fixture()
def one_thread():
    """Networks this small run fastest on one thread, and do not stall when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_separability_of_a_trained_generator_with_trained_classifiers(trained, cifar_classifiers_folder, one_thread):
    G = load_generator(trained, None).G
    classifiers = load_classifiers(cifar_classifiers_folder, "cpu")

    class Count:
        done = 0

        def advance(self, n):
            self.done += n

    bar = Count()
    scores = {space: linear_separability(G, classifiers, num_samples=48, space=space, batch=16, progress=bar)
              for space in ("w", "z")}
    assert bar.done == 96
    for score in scores.values():
        assert math.isfinite(score) and 1.0 <= score <= 2.0 ** len(classifiers.attributes)
    assert linear_separability(G, classifiers, num_samples=48, batch=16) == scores["w"]  # seeded
