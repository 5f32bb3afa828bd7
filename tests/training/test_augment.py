"""The augmentation pipeline (StyleGAN2-ADA; training/augment.py): its parameters follow the paper's distributions
(App. B.2), each transform is applied with probability p, the result is differentiable twice (R1 takes gradients
through it), and draws made for a global batch and shared between processes augment each image as one process
would. (Equality with NVIDIA's code: tests/nvidia/test_augment_parity.py.)"""

import math

import pytest
import torch

from stylegan_cli.training.augment import PRESETS, TRANSFORMS, AugmentPipe, draw, parameters

N = 20000  # images per distribution check: means and spreads to about 1%


def params_at(p: float, transforms=TRANSFORMS, seed: int = 0) -> dict:
    d = draw(transforms, torch.tensor(p), (N, 3, 1, 1), torch.Generator().manual_seed(seed))  # (1x1 noise images)
    return parameters(d, torch.float64)


def log2_std(x):
    return torch.log2(x).std().item()


def test_at_p_1_each_parameter_follows_the_papers_distribution():
    q = params_at(1.0)
    assert q["xflip"].unique().tolist() == [0, 1] and q["xflip"].mean().item() == pytest.approx(0.5, abs=0.02)
    assert q["rotate90"].unique().tolist() == [0, 1, 2, 3]
    assert q["rotate90"].mean().item() == pytest.approx(1.5, abs=0.03)
    t = q["xint"]  # uniform within +-1/8 of the image size: std 0.125 / sqrt(3)
    assert t.abs().max().item() <= 0.125 and t.std().item() == pytest.approx(0.125 / math.sqrt(3), rel=0.02)
    assert log2_std(q["scale"]) == pytest.approx(0.2, rel=0.02) and torch.log2(q["scale"]).mean().abs() < 0.01
    for name in ("rotate_pre", "rotate_post"):  # at p = 1, both rotations: uniform over the full circle
        assert q[name].abs().max().item() <= math.pi and q[name].std().item() == pytest.approx(
            math.pi / math.sqrt(3), rel=0.02)
    assert log2_std(q["aniso"]) == pytest.approx(0.2, rel=0.02)
    assert q["xfrac"].std().item() == pytest.approx(0.125, rel=0.02) and q["xfrac"].mean().abs() < 0.005
    assert q["brightness"].std().item() == pytest.approx(0.2, rel=0.02)
    assert log2_std(q["contrast"]) == pytest.approx(0.5, rel=0.02)
    assert q["lumaflip"].mean().item() == pytest.approx(0.5, abs=0.02)
    assert q["hue"].std().item() == pytest.approx(math.pi / math.sqrt(3), rel=0.02)
    assert log2_std(q["saturation"]) == pytest.approx(1.0, rel=0.02)
    for band in range(4):
        assert log2_std(q[f"imgfilter{band}"]) == pytest.approx(1.0, rel=0.02)
    # half-normal sigma: mean 0.1 * sqrt(2 / pi)
    assert q["noise"].min().item() >= 0 and q["noise"].mean().item() == pytest.approx(0.1 * math.sqrt(2 / math.pi),
                                                                                       rel=0.02)
    assert (q["cutout_size"] == 0.5).all() and q["cutout_center"].mean().item() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.8])
def test_each_transform_is_applied_with_probability_p(p):
    """Share of images whose parameter is not the identity (x-flip, quarter turns and luma flip draw the identity
    half or a quarter of the time when applied; the rotation is applied before or after anisotropic scaling,
    either or both, with probability p in all)."""
    q = params_at(p, seed=1)
    identity = {"scale": 1, "aniso": 1, "contrast": 1, "saturation": 1, **{f"imgfilter{b}": 1 for b in range(4)}}
    for name, drawn_identity in [("xint", 0), ("scale", 0), ("aniso", 0), ("xfrac", 0), ("brightness", 0),
                                 ("contrast", 0), ("hue", 0), ("saturation", 0), ("noise", 0), ("xflip", 0.5),
                                 ("rotate90", 0.25), ("lumaflip", 0.5), *((f"imgfilter{b}", 0) for b in range(4))]:
        value = q[name].flatten(1) if q[name].ndim > 1 else q[name][:, None]
        applied = (value != identity.get(name, 0)).any(dim=1).double().mean().item()
        assert applied == pytest.approx(p * (1 - drawn_identity), abs=0.015), name
    rotated = ((q["rotate_pre"] != 0) | (q["rotate_post"] != 0)).double().mean().item()
    assert rotated == pytest.approx(p, abs=0.015)
    assert (q["cutout_size"][:, 0, 0, 0, 0] > 0).double().mean().item() == pytest.approx(p, abs=0.015)


def test_at_p_0_the_pipeline_changes_images_only_by_its_resampling():
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    pipe = AugmentPipe(PRESETS["bgcfnc"], p=0.0)
    out = pipe(images, pipe.draw(tuple(images.shape), torch.Generator().manual_seed(0)))
    assert (out - images).abs().max().item() < 1e-4


def test_r1_can_take_its_gradient_through_every_transform():
    """Double backward: the gradient of a penalty on d(score)/d(image) reaches the image through the pipeline."""
    pipe = AugmentPipe(PRESETS["bgcfnc"], p=1.0)
    images = (torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    weights = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    out = pipe(images, pipe.draw(tuple(images.shape), torch.Generator().manual_seed(3)))
    score = (out.square() * weights).sum()  # a nonlinear "discriminator"
    (grad,) = torch.autograd.grad(score, images, create_graph=True)
    (grad2,) = torch.autograd.grad(grad.square().sum(), images)
    assert torch.isfinite(grad2).all() and grad2.abs().sum() > 0


def test_draws_shared_between_two_processes_augment_each_image_as_one_process_does():
    images = torch.rand(8, 3, 32, 32) * 2 - 1
    pipe = AugmentPipe(PRESETS["bgcfnc"], p=0.7)
    draws = pipe.draw(tuple(images.shape), torch.Generator().manual_seed(5))
    whole = pipe(images, draws)
    for rank in range(2):
        part = pipe(images[rank::2], draws, rank, 2)
        torch.testing.assert_close(part, whole[rank::2], rtol=0, atol=1e-6)
