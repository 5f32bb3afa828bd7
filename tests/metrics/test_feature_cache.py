"""The evaluator's Inception features (metrics/evaluator.py): however many image sets one process scores,
each set gets its own features, and so the scores it would get alone. KID stands for every metric on these
features (FID, KID, precision/recall): it is the one that takes no eigendecomposition of 2048x2048 matrices."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from conftest import CIFAR

from stylegan_cli.metrics.evaluator import Evaluator
from stylegan_cli.metrics.imagesets import FolderImages, GeneratedImages
from stylegan_cli.metrics.registry import parse_metric
from stylegan_cli.model.generator import Generator

SCORE = parse_metric("kid3")


def cifar_folder(root: Path, name: str, n: int = 3) -> Path:
    """A folder with the first n CIFAR-10 images of one class."""
    out = root / name
    out.mkdir()
    for path in sorted((CIFAR / name).iterdir())[:n]:
        shutil.copy(path, out / path.name)
    return out


def scored_alone(real: Path, fake) -> tuple[np.ndarray, float]:
    """The features and score of a set in an evaluator of its own."""
    alone = Evaluator(real=FolderImages(real), fake=fake)
    return alone.features(fake, SCORE.count), alone.evaluate(SCORE)[SCORE.name]


def test_folders_scored_and_dropped_one_after_another_each_get_their_own_features(tmp_path):
    real = cifar_folder(tmp_path, "airplane")
    folders = [cifar_folder(tmp_path, name) for name in ("cat", "ship", "frog")]
    shared = Evaluator(real=FolderImages(real), fake=FolderImages(real))
    placeholder = shared.fake
    got = []
    for folder in folders:
        # Each set is made, scored and dropped before the next one is made, so that the next may be given the
        # memory, and so the id, of the one before: what a script scoring folder after folder does.
        images = FolderImages(folder)
        shared.fake = images
        got.append((shared.features(images, SCORE.count), shared.evaluate(SCORE)[SCORE.name]))
        shared.fake = placeholder
        del images
    for folder, (features, score) in zip(folders, got):
        alone_features, alone_score = scored_alone(real, FolderImages(folder))
        assert np.array_equal(features, alone_features), folder.name
        assert score == alone_score, folder.name
    assert len({score for _, score in got}) == len(folders)


def test_generated_sets_scored_one_after_another_each_get_their_own_features(tmp_path):
    real = cifar_folder(tmp_path, "airplane")
    torch.manual_seed(0)
    generators = [Generator("stylegan", 8, z_dim=16, w_dim=16, mapping_layers=2, mapping_width=16, fmap_base=32,
                            fmap_max=16).eval() for _ in range(2)]
    draws = [(G, seed) for G in generators for seed in (0, 1)]  # two generators, two seeds each
    shared = Evaluator(real=FolderImages(real), fake=FolderImages(real))
    placeholder = shared.fake
    got = []
    for G, seed in draws:
        images = GeneratedImages(G, 8, 1.0, seed, f"generator {id(G)} seed {seed}")
        shared.fake = images
        got.append((shared.features(images, SCORE.count), shared.evaluate(SCORE)[SCORE.name]))
        shared.fake = placeholder
        del images
    for (G, seed), (features, score) in zip(draws, got):
        alone_features, alone_score = scored_alone(real, GeneratedImages(G, 8, 1.0, seed, "alone"))
        assert np.array_equal(features, alone_features), seed
        assert score == alone_score, seed
    assert len({score for _, score in got}) == len(draws)
