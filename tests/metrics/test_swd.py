"""The multi-scale sliced Wasserstein distance of Progressive GAN §5 (stylegan_cli.metrics.swd)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
from conftest import CIFAR
from PIL import Image

from stylegan_cli.metrics.swd import downsample, laplacian_pyramid, sliced_wasserstein, upsample


@pytest.fixture(scope="session")
def cifar() -> torch.Tensor:
    """32 CIFAR-10 training images (32x32, uint8 NCHW), spread over the ten classes."""
    files = sorted(CIFAR.glob("*/*.jpg"))[::31]
    pixels = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="session")
def face(faces_dir) -> torch.Tensor:
    """One example photo at 128x128, as a float 1x3x128x128 batch."""
    photo = Image.open(sorted(faces_dir.glob("*.jpg"))[0]).convert("RGB").resize((128, 128), Image.LANCZOS)
    return torch.from_numpy(np.asarray(photo, dtype=np.float32)).permute(2, 0, 1)[None]


def noisy(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """The images plus Gaussian noise of `sigma` grey levels, rounded back to uint8."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1)) * sigma
    return (images + noise).round().clamp(0, 255).to(torch.uint8)


# The Laplacian pyramid


def test_pyramid_runs_from_the_image_resolution_down_to_16(face):
    assert [level.shape[-1] for level in laplacian_pyramid(face, 4)] == [128, 64, 32, 16]


def test_collapsing_the_pyramid_gives_the_image_back(face):
    pyramid = laplacian_pyramid(face, 4)
    image = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        image = upsample(image) + detail
    assert torch.allclose(image, face, atol=1e-3)


def test_a_flat_image_has_no_detail_at_any_band():
    pyramid = laplacian_pyramid(torch.full((1, 3, 64, 64), 77.0), 3)
    assert all(level.abs().max() < 1e-4 for level in pyramid[:-1])
    assert torch.allclose(pyramid[-1], torch.full((1, 3, 16, 16), 77.0))


def test_pyramid_steps_match_the_references_mirrored_binomial_filter(face):
    """The reference filters with the 5x5 binomial kernel in SciPy's 'mirror' mode (cv2.pyrDown / pyrUp)."""
    kernel = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None] / 256.0
    image = face.numpy()
    expected_down = scipy.ndimage.convolve(image, kernel, mode="mirror")[:, :, ::2, ::2]
    assert np.allclose(downsample(face).numpy(), expected_down, atol=1e-3)
    spread = np.zeros((1, 3, 256, 256), np.float32)
    spread[:, :, ::2, ::2] = image
    expected_up = scipy.ndimage.convolve(spread, kernel * 4, mode="mirror")
    assert np.allclose(upsample(face).numpy(), expected_up, atol=1e-3)


# The distance


def test_identical_sets_are_at_distance_zero_at_every_level_finest_first(cifar):
    assert sliced_wasserstein([cifar[:16]], [cifar[:16]]) == {32: 0.0, 16: 0.0}


def test_distance_grows_with_the_noise_added_to_the_images(cifar):
    real = cifar[:16]
    distances = [sliced_wasserstein([real], [noisy(real, sigma)]) for sigma in (4, 16, 48)]
    for resolution in (32, 16):
        by_noise = [d[resolution] for d in distances]
        assert 0 < by_noise[0] < by_noise[1] < by_noise[2], (resolution, by_noise)
    # Pixel noise is fine detail: the finest band feels it most.
    assert distances[-1][32] > 3 * distances[-1][16]


def test_a_blurred_copy_differs_most_in_the_fine_band(cifar):
    """Blur takes away the finest band's detail and changes the coarse image much less."""
    sharp = cifar[:16]
    blurred = upsample(downsample(sharp.float())).round().to(torch.uint8)
    distances = sliced_wasserstein([sharp], [blurred])
    assert distances[32] > 2 * distances[16]


def test_a_constant_brightness_shift_is_normalised_away_by_design(cifar):
    """Descriptors are normalised per colour channel over each set (§5), so SWD compares local
    structure, not global colour: a uniform shift of every pixel leaves it (almost) at zero,
    while a little noise does not."""
    darker = (cifar[:16].float() * 0.75).round().to(torch.uint8)
    brighter = darker + 50
    shifted = sliced_wasserstein([darker], [brighter])
    assert all(value < 0.05 for value in shifted.values()), shifted
    assert sliced_wasserstein([darker], [noisy(darker, 4)])[32] > 10


def test_a_seed_gives_the_same_result_whatever_the_batching(cifar):
    real, fake = cifar[:16], cifar[16:32]
    once = sliced_wasserstein([real], [fake], seed=3)
    again = sliced_wasserstein([real[:5], real[5:]], [fake[:11], fake[11:]], seed=3)
    assert once == pytest.approx(again, rel=1e-5)
    other_seed = sliced_wasserstein([real], [fake], seed=4)
    assert other_seed[32] != once[32]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_gpu_agree(cifar):
    real, fake = cifar[:32], noisy(cifar[:32], 8)
    on_cpu = sliced_wasserstein([real], [fake])
    on_gpu = sliced_wasserstein([real.cuda()], [fake.cuda()], device="cuda")
    assert on_gpu == pytest.approx(on_cpu, rel=1e-3)


# Bad input


def images(n=2, size=16, channels=3, dtype=torch.uint8, height=None) -> torch.Tensor:
    return torch.zeros(n, channels, height or size, size, dtype=dtype)


@pytest.mark.parametrize(
    "real, fake, message",
    [
        ([], [images()], "real image set is empty"),
        ([images()], [], "fake image set is empty"),
        ([images(size=32)], [images(size=16)], "fake images of 16x16 follow 32x32 ones"),
        ([images(size=16), images(size=32)], [images()], "real images of 32x32 follow 16x16 ones"),
        ([images(size=8)], [images(size=8)], "at least 16x16 pixels"),
        ([images(size=32, height=16)], [images()], "square images"),
        ([images(size=48)], [images(size=48)], "power of two"),
        ([images(channels=1)], [images()], "RGB"),
        ([images(dtype=torch.float32)], [images()], "uint8"),
        ([images(n=2)], [images(n=3)], "2 real and 3 fake images"),
    ],
)
def test_bad_input_is_a_usage_error(real, fake, message):
    with pytest.raises(ValueError, match=message):
        sliced_wasserstein(real, fake)
