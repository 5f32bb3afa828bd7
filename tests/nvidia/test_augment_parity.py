"""sgan's augmentation pipeline equals NVIDIA's (StyleGAN2-ADA PyTorch `training/augment.py`): fed the same random
draws (a generator seeded as their global one was), every --augpipe preset and every single transform at p = 1, and
the full pipeline at p = 0.5, give the same images and the same gradient of a scalar of the images with respect to
the input, to 1e-5. Reference data: tests/nvidia/augment_parity/ (its README), written by NVIDIA's code through
tests/nvidia/make_augment_parity.py."""

import numpy as np
import pytest
import torch
from conftest import REPO

from stylegan_cli.training.augment import PRESETS, TRANSFORMS, AugmentPipe

CASES = np.load(REPO / "tests" / "nvidia" / "augment_parity" / "cases.npz")
NAMES = sorted({key.split("/")[0] for key in CASES.files if "/" in key})


def test_every_preset_and_every_transform_has_a_case():
    assert set(PRESETS) | set(TRANSFORMS) | {"bgcfnc@0.5"} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_augmented_images_and_their_gradient_equal_nvidias(name):
    transforms = tuple(str(t) for t in CASES[f"{name}/transforms"])
    if name in PRESETS:
        assert PRESETS[name] == transforms, "sgan's preset names other transforms than NVIDIA's"
    pipe = AugmentPipe(transforms, p=float(CASES[f"{name}/p"]))
    images = torch.from_numpy(CASES["images"]).requires_grad_(True)
    generator = torch.Generator().manual_seed(int(CASES[f"{name}/seed"]))
    out = pipe(images, pipe.draw(tuple(images.shape), generator))
    (grad,) = torch.autograd.grad((out * torch.from_numpy(CASES["weights"])).sum(), images)
    expected = torch.from_numpy(CASES[f"{name}/out"])
    assert not torch.allclose(expected, images.detach(), atol=1e-3), "the case augments nothing"
    torch.testing.assert_close(out.detach(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, torch.from_numpy(CASES[f"{name}/grad"]), rtol=0, atol=1e-5)
