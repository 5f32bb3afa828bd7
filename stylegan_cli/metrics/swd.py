"""Multi-scale sliced Wasserstein distance, SWD (Progressive GAN §5; its Table 1 and Figure 4 in §6).

SWD asks whether generated images have the same local structure as the training images at every
scale. Each image is split into a Laplacian pyramid (Burt & Adelson 1987) from its own resolution
down to 16x16; every level is a band of spatial frequencies, the last one the low-pass image. From
every image and level, 128 random 7x7 neighbourhoods of the 3 colour channels become 147-dimensional
descriptors. Per level, each set's descriptors are normalised per colour channel (mean 0, std 1 over
that set), and the two sets are compared by the sliced Wasserstein distance: project both onto random
unit directions, sort the projections and average their absolute differences (4 repeats of 128
directions, the paper's 512 projections). Pixels enter as their uint8 values in float32. Values are
reported multiplied by 1e3, as in the paper's tables; the paper uses 16384 images per set (2^21
descriptors per level).

Facts of the reference implementation (progressive_growing_of_gans, metrics/sliced_wasserstein.py)
kept here: the 5-tap binomial filter [1, 4, 6, 4, 1] / 16 for pyrDown / pyrUp with the border mirrored
without repeating the edge pixel (OpenCV's default BORDER_REFLECT_101, SciPy's 'mirror', torch's
'reflect'); neighbourhoods lie wholly inside the level; the std of the normalisation is the population
std; the two sets must hold the same number of images.

Choices of this implementation:
- The random numbers come from one seeded CPU torch.Generator, so a seed gives the same result on CPU
  and GPU (up to float rounding) and whatever the batching.
- The k-th fake image gets the same patch positions as the k-th real image (the reference draws them
  independently; positions do not depend on the pixels, so the distributions compared are the same).
  Identical sets therefore give 0.
- A set whose descriptors are constant in a channel (e.g. flat images) has std 0; it is kept at 0
  rather than divided into NaN.
- Descriptors are kept in host memory while the batches stream by; only one level of both sets is on
  the device at a time (at 1024x1024 and 16384 images a level holds about 1.2 GB per set).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

COARSEST = 16  # the pyramid ends at 16x16 (§5)
PATCH = 7  # 7x7 neighbourhoods of 3 colours: 147-dimensional descriptors
PATCHES_PER_IMAGE = 128
REPEATS = 4  # direction sets per level, each of...
DIRECTIONS = 128  # ...this many random unit directions
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(images: Tensor, gain: float = 1.0) -> Tensor:
    """Filters every channel with the separable 5x5 binomial kernel (times `gain` per axis),
    mirroring the border without repeating the edge pixel."""
    n, c, h, w = images.shape
    taps, planes = (_BINOMIAL * gain).to(images), n * c
    x = F.pad(images.reshape(1, planes, h, w), (2, 2, 2, 2), mode="reflect")  # each plane its own channel
    x = F.conv2d(x, taps.view(1, 1, 5, 1).expand(planes, 1, 5, 1), groups=planes)
    x = F.conv2d(x, taps.view(1, 1, 1, 5).expand(planes, 1, 1, 5), groups=planes)
    return x.view(n, c, h, w)


def downsample(images: Tensor) -> Tensor:
    """One pyramid step down (cv2.pyrDown): blur, then keep every other row and column."""
    return _blur(images)[:, :, ::2, ::2]


def upsample(images: Tensor) -> Tensor:
    """One pyramid step up (cv2.pyrUp): zeros between the samples, then blur with gain 2 per axis,
    which restores the brightness the zeros took away."""
    n, c, h, w = images.shape
    spread = images.new_zeros(n, c, 2 * h, 2 * w)
    spread[:, :, ::2, ::2] = images
    return _blur(spread, gain=2.0)


def laplacian_pyramid(images: Tensor, levels: int) -> list[Tensor]:
    """The Laplacian pyramid of a float NCHW batch, finest level first. Every level but the last holds
    what upsampling the next coarser image misses; the last is that coarsest image itself, so
    `level + upsample(coarser)`, from the coarsest level up, gives the images back."""
    pyramid = []
    current = images
    for _ in range(levels - 1):
        coarser = downsample(current)
        pyramid.append(current - upsample(coarser))
        current = coarser
    pyramid.append(current)
    return pyramid


def _corners(count: int, sizes: list[int], generator: torch.Generator) -> list[Tensor]:
    """Top-left corners (row, column) of the random neighbourhoods: per level, (count, 128, 2).
    They are drawn image by image, so the k-th image of a stream gets the same ones however the
    stream is batched."""
    per_image = [
        [torch.randint(0, size - PATCH + 1, (PATCHES_PER_IMAGE, 2), generator=generator) for size in sizes]
        for _ in range(count)
    ]
    return [torch.stack(level) for level in zip(*per_image)]


def _neighbourhoods(level: Tensor, corners: Tensor) -> Tensor:
    """The 7x7 neighbourhoods of one pyramid level (N, 3, S, S) at `corners` (N, 128, 2):
    (N * 128, 3, 49)."""
    windows = level.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # (N, 3, S-6, S-6, 7, 7), a view
    image = torch.arange(len(level), device=level.device)[:, None]
    patches = windows[image, :, corners[..., 0], corners[..., 1]]  # (N, 128, 3, 7, 7)
    return patches.reshape(-1, 3, PATCH * PATCH)


def image_problem(height: int, width: int, which: str) -> str | None:
    """Why SWD cannot take `which` images of height x width, as one sentence; None when it can."""
    if height != width or height & (height - 1):
        return (f"SWD needs square images whose side is a power of two, but the {which} images are "
                f"{height}x{width}.")
    if height < COARSEST:
        return (f"SWD needs images of at least {COARSEST}x{COARSEST} pixels, but the {which} images are "
                f"{height}x{width}.")
    return None


def _check_batch(batch: Tensor, size: int | None, which: str) -> int:
    """The side of the batch's images, after checking it is what SWD takes (and `size` if given)."""
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"SWD takes NCHW batches of RGB images, but a {which} batch has shape {tuple(batch.shape)}.")
    if batch.dtype != torch.uint8:
        raise ValueError(f"SWD takes uint8 images (0-255), but a {which} batch holds {batch.dtype}.")
    h, w = batch.shape[2:]
    problem = image_problem(h, w, which)
    if problem:
        raise ValueError(problem)
    if size is not None and h != size:
        raise ValueError(f"SWD compares images of one size, but {which} images of {h}x{w} follow {size}x{size} ones.")
    return h


def _descriptors(batches: Iterable[Tensor], size: int | None, which: str, generator: torch.Generator,
                 device) -> tuple[list[list[Tensor]], int, int]:
    """The descriptors of every image of a stream, per pyramid level (in host memory), the images'
    side and their number."""
    per_level: list[list[Tensor]] = []
    count = 0
    for batch in batches:
        size = _check_batch(batch, size, which)
        if len(batch) == 0:
            continue
        levels = (size // COARSEST).bit_length()  # 16x16: 1 level, 32x32: 2, ..., 1024x1024: 7
        pyramid = laplacian_pyramid(batch.to(device, torch.float32), levels)
        per_level = per_level or [[] for _ in pyramid]
        corners = _corners(len(batch), [level.shape[-1] for level in pyramid], generator)
        for descriptors, level, where in zip(per_level, pyramid, corners):
            descriptors.append(_neighbourhoods(level, where.to(device)).cpu())
        count += len(batch)
    if count == 0:
        raise ValueError(f"The {which} image set is empty; SWD needs at least one image in each set.")
    return per_level, size, count


def _normalise(descriptors: Tensor) -> Tensor:
    """Per colour channel: subtract the set's mean and divide by its std; flattened to 147 values."""
    mean = descriptors.mean(dim=(0, 2), keepdim=True)
    std = descriptors.std(dim=(0, 2), keepdim=True, correction=0)
    return ((descriptors - mean) / std.clamp_min(1e-8)).flatten(1)


def _sort_rows(x: Tensor) -> Tensor:
    """Each row sorted; on the CPU through NumPy, whose sort is several times faster than torch's."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return x.sort(dim=1).values


def _sliced_distance(a: Tensor, b: Tensor, generator: torch.Generator) -> float:
    """Sliced Wasserstein distance between two equally large sets of descriptors (rows)."""
    total = 0.0
    for _ in range(REPEATS):
        directions = torch.randn(a.shape[1], DIRECTIONS, generator=generator)
        directions = (directions / directions.norm(dim=0, keepdim=True)).to(a.device)
        sorted_a = _sort_rows(directions.T @ a.T)  # (direction, descriptor)
        sorted_b = _sort_rows(directions.T @ b.T)
        total += (sorted_a - sorted_b).abs().mean().item()
    return total / REPEATS


def sliced_wasserstein(real_batches: Iterable[Tensor], fake_batches: Iterable[Tensor], *, seed: int = 0,
                       device="cpu") -> dict[int, float]:
    """SWD x 1e3 between two image sets, per pyramid level: {resolution: distance}, finest first.

    Batches are uint8 NCHW tensors of RGB images, all of one square, power-of-two size of at least
    16x16; both sets must hold the same number of images. The work runs on `device`; `seed` fixes
    the patches and directions.
    """
    generator = torch.Generator().manual_seed(seed)
    start = generator.get_state()
    real, size, real_count = _descriptors(real_batches, None, "real", generator, device)
    generator.set_state(start)  # the k-th fake image gets the k-th real image's patch positions
    fake, _, fake_count = _descriptors(fake_batches, size, "fake", generator, device)
    if real_count != fake_count:
        raise ValueError(f"SWD compares sets of equal size, but there are {real_count} real and {fake_count} fake "
                         "images.")
    distances = {}
    while real:  # finest level first; each level's host copies are dropped once used
        a = _normalise(torch.cat(real.pop(0)).to(device))
        b = _normalise(torch.cat(fake.pop(0)).to(device))
        distances[size >> len(distances)] = _sliced_distance(a, b, generator) * 1e3
    return distances
