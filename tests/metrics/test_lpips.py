"""LPIPS-VGG16 (Zhang et al. 2018, v0.1): the published example distances, the properties of a
distance, reduced precision, and loading weights without trusting the file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.metrics.lpips import load_lpips

# The example images of the LPIPS repository (`imgs/ex_*.png`).
EXAMPLES = REPO / "tests" / "assets" / "lpips"


@pytest.fixture(scope="module")
def lpips():
    return load_lpips()


def example(name: str) -> torch.Tensor:
    """A (1, 3, H, W) image in [-1, 1]."""
    pixels = np.asarray(Image.open(EXAMPLES / f"{name}.png").convert("RGB"), dtype=np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"the LPIPS example images are not in {EXAMPLES}")
def test_example_images_give_the_published_distances(lpips):
    ref, p0, p1 = example("ex_ref"), example("ex_p0"), example("ex_p1")
    assert lpips(ref, p0).item() == pytest.approx(0.569, abs=5e-4)
    assert lpips(ref, p1).item() == pytest.approx(0.422, abs=5e-4)


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_an_image_is_at_distance_zero_from_itself(lpips):
    x = random_images(3)
    assert torch.equal(lpips(x, x), torch.zeros(3))


def test_the_distance_is_symmetric_and_one_value_per_pair(lpips):
    x, y = random_images(3, seed=1), random_images(3, seed=2)
    d = lpips(x, y)
    assert d.shape == (3,) and (d > 0).all()
    torch.testing.assert_close(lpips(y, x), d)


def test_bf16_autocast_and_channels_last_give_nearly_the_same_distance(lpips):
    x, y = random_images(2, seed=3), random_images(2, seed=4)
    expected = lpips(x, y)
    fast = load_lpips().to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = fast(x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last))
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, expected, rtol=0.03, atol=0)


def test_images_too_small_for_vgg16_are_refused_in_one_sentence(lpips):
    x = random_images(1, size=8)
    with pytest.raises(SganError, match="at least 16x16 pixels, not 8x8"):
        lpips(x, x)


def test_the_network_is_frozen(lpips):
    assert not lpips.training
    assert not any(p.requires_grad for p in lpips.parameters())


def test_a_missing_weight_file_named_explicitly_is_a_usage_error(tmp_path):
    missing = tmp_path / "vgg16.ckpt"
    with pytest.raises(UsageError, match=f"--lpips names {missing}, which is not a file"):
        load_lpips(missing)


class RunsACommand:
    """Unpickling this would run `touch FILE`, as a hostile weight file could."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "vgg16.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": RunsACommand(marker)}))
    with pytest.raises(SganError, match="is not a pickle of NumPy arrays"):
        load_lpips(path)
    assert not marker.exists()


def save_params(path: Path, params: dict) -> Path:
    path.write_bytes(pickle.dumps(params))
    return path


def test_a_pickle_without_an_expected_array_names_it(tmp_path):
    path = save_params(tmp_path / "vgg16.ckpt", {"VGG16_0": {"Conv_0": {"bias": np.zeros(64, np.float32)}}})
    with pytest.raises(SganError, match="lacks the LPIPS weight VGG16_0/Conv_0/kernel"):
        load_lpips(path)


def test_an_array_of_the_wrong_shape_is_named_with_both_shapes(tmp_path):
    params = {"VGG16_0": {"Conv_0": {"kernel": np.zeros((3, 3, 3, 32), np.float32)}}}
    path = save_params(tmp_path / "vgg16.ckpt", params)
    with pytest.raises(SganError,
                       match=r"VGG16_0/Conv_0/kernel is \(3, 3, 3, 32\), not an array of shape \(3, 3, 3, 64\)"):
        load_lpips(path)
