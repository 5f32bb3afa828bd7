"""NVIDIA's forward passes, recomputed independently in float64 from the variable dictionaries of each format.

Each function takes the variables as NVIDIA's file holds them (TF names and [k, k, in, out] kernels, or the
PyTorch state_dict) and computes, with torch's functional ops, what NVIDIA's own code computes: TensorFlow's
'SAME' padding, `tf.nn.conv2d_transpose` as the adjoint of the correlation `tf.nn.conv2d` (no implicit kernel
flip), the equalised-learning-rate runtime scales, fused_bias_act's gain after the bias, upfirdn_2d's
zero-insertion, padding and true convolution. Nothing here imports sgan's networks, so a test that compares
sgan's images with these compares two independent readings of the formats.

Conventions: images are (N, 3, R, R) float64 in NVIDIA's [-1, 1] range; scores are (N,). Truncation:
`psi` towards dlatent_avg / w_avg on the first `cutoff` layers, cutoff None meaning all layers (as StyleGAN2's
G_main and the PyTorch Generator read it; StyleGAN's G_style reads truncation_cutoff=None as "no truncation"
and defaults to psi 0.7, cutoff 8, so pass those to reproduce its defaults). Noise is the stored one
(TF randomize_noise=False, PyTorch noise_mode='const'); stylegan_G also takes other noise maps. Only finished
networks (lod 0, as published) are computed. Class-conditional StyleGAN2 networks (StyleGAN2-ADA's, in both its TF
and PyTorch code) take `c`, one-hot labels [N, c_dim], in the generators and discriminators alike.

When written, every function here was compared with NVIDIA's own code run on the same variables (the TF
networks under TensorFlow 2's compat.v1 with upfirdn_2d / fused_bias_act's reference implementations, the
PyTorch ones as StyleGAN2-ADA's and StyleGAN3's classes): equal to float32 rounding (about 1e-6 relative).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)
LRELU_ALPHA = 0.2
Tensor = torch.Tensor
_F = TypeVar("_F", bound=Callable[..., Tensor])


def _one_thread(fn: _F) -> _F:
    """Runs an oracle on one intra-op thread (restoring the setting after): its many small float64 convolutions
    run several times faster so than with threads contending for the cores."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Tensor:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper  # type: ignore[return-value]


def f64(value: Any) -> Tensor:
    """A float64 copy of an array, tensor or number."""
    if isinstance(value, Tensor):
        return value.detach().to(torch.float64).clone()
    return torch.as_tensor(np.array(value, dtype=np.float64))


class _Vars:
    """Float64 lookup of a variable dictionary; a missing name raises KeyError naming it."""

    def __init__(self, params: Mapping[str, Any]):
        self.params = params
        self.cache: dict[str, Tensor] = {}

    def __call__(self, name: str) -> Tensor:
        if name not in self.cache:
            if name not in self.params:
                raise KeyError(f"no variable {name!r}")
            self.cache[name] = f64(self.params[name])
        return self.cache[name]

    def __contains__(self, name: str) -> bool:
        return name in self.params

    def resolutions(self, pattern: str) -> list[int]:
        """Sorted ints captured by `pattern` (one group) over the names."""
        return sorted({int(m.group(1)) for name in self.params if (m := re.fullmatch(pattern, name))})


def _log2(resolution: int) -> int:
    return int(round(math.log2(resolution)))


def _check_lod(v: _Vars, name: str = "lod") -> None:
    if name in v and float(v(name)) != 0.0:
        raise NotImplementedError(f"{name} = {float(v(name))}: only finished (lod 0) networks are computed")


# ----------------------------------------------------------------------------------------------------------------
# TensorFlow's primitives, NCHW, kernels [kh, kw, in, out].


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME': output ceil(size / stride), the padding split with the smaller half first."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_conv2d(x: Tensor, w: Tensor, stride: int = 1, padding: str = "SAME", groups: int = 1) -> Tensor:
    """`tf.nn.conv2d(x, w, strides, padding, 'NCHW')`: a correlation; with groups when x has groups times as many
    channels as w expects (TF's grouped convolution)."""
    kh, kw = w.shape[0], w.shape[1]
    if padding == "SAME":
        top, bottom = _same_pads(x.shape[2], kh, stride)
        left, right = _same_pads(x.shape[3], kw, stride)
        x = F.pad(x, [left, right, top, bottom])
    return F.conv2d(x, w.permute(3, 2, 0, 1), stride=stride, groups=groups)


def tf_conv2d_transpose(x: Tensor, w: Tensor, out_hw: tuple[int, int], stride: int, padding: str,
                        groups: int = 1) -> Tensor:
    """`tf.nn.conv2d_transpose(x, w, output_shape, strides, padding, 'NCHW')` with w [kh, kw, out, in]: the
    adjoint (input gradient) of `tf_conv2d` from an out_hw-sized input to x; no kernel flip."""
    kh, kw = w.shape[0], w.shape[1]
    full = F.conv_transpose2d(x, w.permute(3, 2, 0, 1), stride=stride, groups=groups)  # every tap, unpadded
    pads = [(0, 0), (0, 0)]
    if padding == "SAME":
        pads = [_same_pads(out_hw[0], kh, stride), _same_pads(out_hw[1], kw, stride)]
    out = full.new_zeros(full.shape[0], full.shape[1], *out_hw)
    h = min(out_hw[0], full.shape[2] - pads[0][0])
    wd = min(out_hw[1], full.shape[3] - pads[1][0])
    out[:, :, :h, :wd] = full[:, :, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + wd]
    return out


def tf_depthwise_filter(x: Tensor, f: Tensor, stride: int = 1) -> Tensor:
    """`tf.nn.depthwise_conv2d` of every channel with the same 2-D filter f, 'SAME' padding (a correlation)."""
    n, c = x.shape[0], x.shape[1]
    y = tf_conv2d(x.reshape(n * c, 1, x.shape[2], x.shape[3]), f[:, :, None, None].to(x.dtype), stride=stride)
    return y.reshape(n, c, y.shape[2], y.shape[3])


def nearest_upscale(x: Tensor, factor: int = 2) -> Tensor:
    """upscale2d: every pixel repeated factor x factor times."""
    return x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def tf_avg_pool2(x: Tensor) -> Tensor:
    """`tf.nn.avg_pool` 2x2, stride 2, 'VALID'."""
    return F.avg_pool2d(x, 2)


def lrelu(x: Tensor) -> Tensor:
    return torch.maximum(x, x * LRELU_ALPHA)


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def upfirdn(x: Tensor, k: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """upfirdn_2d (TF) / upfirdn2d (PyTorch, flip_filter False) with a 2-D filter k: insert up-1 zeros after
    every pixel, pad (crop where negative) by pad = (before, after) on both axes, convolve with k (a true
    convolution: k rotated by 180 degrees, then correlated), keep every down-th pixel."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    x = x[:, :, max(-p0, 0):x.shape[2] - max(-p1, 0), max(-p0, 0):x.shape[3] - max(-p1, 0)]
    x = F.conv2d(x.reshape(n * c, 1, x.shape[2], x.shape[3]), torch.flip(k, [0, 1])[None, None].to(x.dtype))
    return x.reshape(n, c, x.shape[2], x.shape[3])[:, :, ::down, ::down]


def fir_kernel(taps: Sequence[float] = (1, 3, 3, 1)) -> Tensor:
    """The normalised outer product of a 1-D filter (upfirdn_2d's _setup_kernel, upfirdn2d.setup_filter)."""
    t = torch.tensor(taps, dtype=torch.float64)
    k = torch.outer(t, t)
    return k / k.sum()


def minibatch_stddev(x: Tensor, group_size: int | None = 4, num_features: int = 1) -> Tensor:
    """The minibatch-stddev layer of all four codes: groups of G = min(group_size, N) samples formed by
    reshaping N to [G, N / G], so sample n is in group n % (N / G); the mean (over channels of each of
    num_features channel groups and pixels) of the per-pixel stddev (+1e-8 under the root) is appended as new
    feature maps."""
    n, c, h, w = x.shape
    g = n if group_size is None else min(group_size, n)
    if n % g:
        raise ValueError(f"a minibatch of {n} does not split into groups of {g}")
    y = x.reshape(g, n // g, num_features, c // num_features, h, w)
    y = y - y.mean(dim=0, keepdim=True)
    y = torch.sqrt(y.square().mean(dim=0) + 1e-8)
    y = y.mean(dim=(2, 3, 4))  # [M, num_features]
    y = y.reshape(n // g, num_features, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


def _truncate(w: Tensor, avg: Tensor, psi: float, cutoff: int | None) -> Tensor:
    """lerp(avg, w, psi) on layers [0, cutoff) (all for None) of w [N, layers, dim]."""
    if psi == 1:
        return w
    layers = w.shape[1] if cutoff is None else min(max(cutoff, 0), w.shape[1])
    coefs = torch.ones(1, w.shape[1], 1, dtype=w.dtype)
    coefs[:, :layers] = psi
    return avg + (w - avg) * coefs


def _latents(z: Any) -> Tensor:
    z = f64(z)
    if z.ndim != 2:
        raise ValueError(f"latents must be [N, z_dim], not {list(z.shape)}")
    return z


def _labels(c: Any, conditional: bool, n: int) -> Tensor | None:
    """The labels a network takes: [N, c_dim] for a conditional one (ValueError without), None otherwise."""
    if not conditional:
        if c is not None:
            raise ValueError("labels given to an unconditional network")
        return None
    if c is None:
        raise ValueError("a conditional network needs labels")
    c = f64(c)
    if c.ndim != 2 or c.shape[0] != n:
        raise ValueError(f"labels must be [{n}, c_dim], not {list(c.shape)}")
    return c


# ----------------------------------------------------------------------------------------------------------------
# Progressive GAN (networks.py G_paper / D_paper).


def _pgan_sum4(w: Tensor) -> Tensor:
    """The fused layers' 4x4 kernel: the 3x3 kernel padded by one and summed over its four 1-pixel shifts."""
    w = F.pad(w.permute(2, 3, 0, 1), [1, 1, 1, 1]).permute(2, 3, 0, 1)
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


def fused_upscale_conv(x: Tensor, w: Tensor) -> Tensor:
    """upscale2d_conv2d with its runtime-scaled kernel w [3, 3, fmaps_out, fmaps_in]: conv2d_transpose of the
    summed 4x4 kernel, stride 2, 'SAME'."""
    return tf_conv2d_transpose(x, _pgan_sum4(w), (x.shape[2] * 2, x.shape[3] * 2), 2, "SAME")


def fused_conv_downscale(x: Tensor, w: Tensor) -> Tensor:
    """conv2d_downscale2d with its runtime-scaled kernel w [3, 3, in, out]: the summed 4x4 kernel / 4, stride 2,
    'SAME'."""
    return tf_conv2d(x, _pgan_sum4(w) * 0.25, stride=2)


def _he(w: Tensor, gain: float = SQRT2, fan_in: int | None = None, lrmul: float = 1.0) -> Tensor:
    """get_weight's runtime value with use_wscale: w * gain / sqrt(fan_in) * lrmul, fan_in = prod(shape[:-1])."""
    fan_in = int(np.prod(w.shape[:-1])) if fan_in is None else fan_in
    return w * (gain / math.sqrt(fan_in) * lrmul)


def _bias(x: Tensor, b: Tensor) -> Tensor:
    return x + (b if x.ndim == 2 else b.reshape(1, -1, 1, 1))


@_one_thread
def pggan_G(Gs_vars: Mapping[str, Any], z: Any) -> Tensor:
    """G_paper at lod 0 (the recursive structure's full-resolution path): pixel-normalised latents, the 4x4
    dense layer (gain sqrt(2)/4) reshaped channel-major, leaky ReLU and pixel norm after every convolution,
    fused `Conv0_up` (conv2d_transpose) or upscale + `Conv0`, and ToRGB_lod0 (gain 1, no activation)."""
    v = _Vars(Gs_vars)
    _check_lod(v)
    x = pixel_norm(_latents(z))
    w = v("4x4/Dense/weight")
    x = x @ _he(w, SQRT2 / 4)
    x = x.reshape(x.shape[0], -1, 4, 4)
    x = pixel_norm(lrelu(_bias(x, v("4x4/Dense/bias"))))
    x = pixel_norm(lrelu(_bias(tf_conv2d(x, _he(v("4x4/Conv/weight"))), v("4x4/Conv/bias"))))
    sizes = v.resolutions(r"(\d+)x\d+/Conv1/weight")
    for size in sizes:
        s = f"{size}x{size}"
        if f"{s}/Conv0_up/weight" in v:
            w = v(f"{s}/Conv0_up/weight")  # [k, k, out, in], fan_in k * k * in
            x = fused_upscale_conv(x, _he(w, fan_in=w.shape[0] * w.shape[1] * w.shape[3]))
            x = _bias(x, v(f"{s}/Conv0_up/bias"))
        else:
            x = _bias(tf_conv2d(nearest_upscale(x), _he(v(f"{s}/Conv0/weight"))), v(f"{s}/Conv0/bias"))
        x = pixel_norm(lrelu(x))
        x = pixel_norm(lrelu(_bias(tf_conv2d(x, _he(v(f"{s}/Conv1/weight"))), v(f"{s}/Conv1/bias"))))
    return _bias(tf_conv2d(x, _he(v("ToRGB_lod0/weight"), 1.0)), v("ToRGB_lod0/bias"))


def _progressive_D(v: _Vars, images: Any, *, blur: bool, fused_down, mbstd_group_size: int) -> Tensor:
    """D_paper / D_basic at lod 0: FromRGB_lod0, the blocks from the top down, then the 4x4 block."""
    _check_lod(v)
    x = f64(images)
    x = lrelu(_bias(tf_conv2d(x, _he(v("FromRGB_lod0/weight"))), v("FromRGB_lod0/bias")))
    for size in sorted(v.resolutions(r"(\d+)x\d+/Conv0/weight"), reverse=True):
        s = f"{size}x{size}"
        x = lrelu(_bias(tf_conv2d(x, _he(v(f"{s}/Conv0/weight"))), v(f"{s}/Conv0/bias")))
        if blur:
            x = blur2d(x)
        if f"{s}/Conv1/weight" in v:  # D_paper's separate layout: the pool follows the activation
            x = lrelu(_bias(tf_conv2d(x, _he(v(f"{s}/Conv1/weight"))), v(f"{s}/Conv1/bias")))
            x = tf_avg_pool2(x)
            continue
        w = _he(v(f"{s}/Conv1_down/weight"))
        if fused_down(size):
            x = fused_conv_downscale(x, w)
        else:  # D_basic's unfused conv2d_downscale2d: conv, then the 2x2 box filter (stride 2), then bias
            x = tf_depthwise_filter(tf_conv2d(x, w), torch.full((2, 2), 0.25, dtype=x.dtype), stride=2)
        x = lrelu(_bias(x, v(f"{s}/Conv1_down/bias")))
    if mbstd_group_size > 1:
        x = minibatch_stddev(x, mbstd_group_size)
    x = lrelu(_bias(tf_conv2d(x, _he(v("4x4/Conv/weight"))), v("4x4/Conv/bias")))
    x = lrelu(_bias(x.flatten(1) @ _he(v("4x4/Dense0/weight")), v("4x4/Dense0/bias")))
    x = _bias(x @ _he(v("4x4/Dense1/weight"), 1.0), v("4x4/Dense1/bias"))
    return x[:, 0]


@_one_thread
def pggan_D(D_vars: Mapping[str, Any], images: Any, *, mbstd_group_size: int = 4) -> Tensor:
    """D_paper at lod 0: FromRGB_lod0, per block Conv0 and fused `Conv1_down` (or `Conv1`, its bias and leaky
    ReLU, then a 2x2 average pool), minibatch stddev, the 4x4 Conv, Dense0 and Dense1 (gain 1); the score column."""
    return _progressive_D(_Vars(D_vars), images, blur=False, fused_down=lambda size: True,
                          mbstd_group_size=mbstd_group_size)


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN (training/networks_stylegan.py G_style / D_basic).


def blur2d(x: Tensor) -> Tensor:
    """blur2d with [1, 2, 1]: the normalised 3x3 outer product, depthwise, 'SAME'."""
    return tf_depthwise_filter(x, fir_kernel((1, 2, 1)))


def _fused(fused_scale: bool | str, size: int) -> bool:
    """fused_scale='auto' fuses a resampling convolution whose larger side is at least 128 pixels."""
    return size >= 128 if fused_scale == "auto" else bool(fused_scale)


def stylegan_mapping(v: _Vars, z: Tensor, prefix: str = "mapping/", lrmul: float = 0.01) -> Tensor:
    """G_mapping of StyleGAN: pixel norm, then Dense layers (gain sqrt(2) and lrmul in the weight scale, bias *
    lrmul, leaky ReLU without gain)."""
    x = pixel_norm(z)
    for idx in range(len(v.resolutions(re.escape(prefix) + r"Dense(\d+)/weight"))):
        w = v(f"{prefix}Dense{idx}/weight")
        x = lrelu(x @ _he(w, SQRT2, lrmul=lrmul) + v(f"{prefix}Dense{idx}/bias") * lrmul)
    return x


@_one_thread
def stylegan_G(Gs_params: Mapping[str, Any], z: Any, psi: float = 1.0, cutoff: int | None = None,
               noise: Sequence[Any] | None = None, *, fused_scale: bool | str = "auto",
               mapping_lrmul: float = 0.01) -> Tensor:
    """G_style (Gs_params flattened: "mapping/Dense0/weight", "synthesis/4x4/Const/const", "dlatent_avg") with
    randomize_noise=False, or with `noise` (one [N or 1, 1, r, r] map per layer). Each layer: (conv) -> noise
    * per-channel weight -> bias -> leaky ReLU -> instance norm -> x * (style[:, 0] + 1) + style[:, 1];
    Conv0_up is upscale + conv below 128 pixels and a conv2d_transpose of the summed kernel from 128 on
    (fused_scale 'auto'), followed by the [1, 2, 1] blur either way."""
    v = _Vars(Gs_params)
    _check_lod(v)
    _check_lod(v, "synthesis/lod")
    dl = stylegan_mapping(v, _latents(z), lrmul=mapping_lrmul)
    log2 = max(v.resolutions(r"synthesis/(\d+)x\d+/Conv1/weight"), default=4).bit_length() - 1
    num_layers = 2 * log2 - 2
    dl = _truncate(dl[:, None].repeat(1, num_layers, 1), v("dlatent_avg"), psi, cutoff)

    def epilogue(x: Tensor, scope: str, idx: int) -> Tensor:
        nz = v(f"synthesis/noise{idx}") if noise is None else f64(noise[idx])
        x = x + nz * v(f"synthesis/{scope}/Noise/weight").reshape(1, -1, 1, 1)
        x = lrelu(_bias(x, v(f"synthesis/{scope}/bias")))
        x = x - x.mean(dim=(2, 3), keepdim=True)
        x = x * torch.rsqrt(x.square().mean(dim=(2, 3), keepdim=True) + 1e-8)
        style = dl[:, idx] @ _he(v(f"synthesis/{scope}/StyleMod/weight"), 1.0) + v(f"synthesis/{scope}/StyleMod/bias")
        style = style.reshape(-1, 2, x.shape[1], 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]

    x = v("synthesis/4x4/Const/const").repeat(dl.shape[0], 1, 1, 1)
    x = epilogue(x, "4x4/Const", 0)
    x = epilogue(tf_conv2d(x, _he(v("synthesis/4x4/Conv/weight"))), "4x4/Conv", 1)
    for res in range(3, log2 + 1):
        s = f"{2**res}x{2**res}"
        w = _he(v(f"synthesis/{s}/Conv0_up/weight"))  # [k, k, in, out]
        if _fused(fused_scale, 2**res):
            x = fused_upscale_conv(x, w.permute(0, 1, 3, 2))
        else:
            x = tf_conv2d(nearest_upscale(x), w)
        x = epilogue(blur2d(x), f"{s}/Conv0_up", 2 * res - 4)
        x = epilogue(tf_conv2d(x, _he(v(f"synthesis/{s}/Conv1/weight"))), f"{s}/Conv1", 2 * res - 3)
    return _bias(tf_conv2d(x, _he(v("synthesis/ToRGB_lod0/weight"), 1.0)), v("synthesis/ToRGB_lod0/bias"))


@_one_thread
def stylegan_D(D_vars: Mapping[str, Any], images: Any, *, fused_scale: bool | str = "auto",
               mbstd_group_size: int = 4) -> Tensor:
    """D_basic at lod 0: as D_paper, with the [1, 2, 1] blur before every Conv1_down, which is fused (4x4
    summed kernel, stride 2) from 128 pixels on and otherwise a conv followed by a 2x2 box filter, stride 2."""
    return _progressive_D(_Vars(D_vars), images, blur=True, fused_down=lambda size: _fused(fused_scale, size),
                          mbstd_group_size=mbstd_group_size)


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN2, TensorFlow (training/networks_stylegan2.py G_main + G_synthesis_stylegan2 / D_stylegan2).


def _act(x: Tensor, b: Tensor | None, act: str, gain: float | None = None, clamp: float | None = None) -> Tensor:
    """fused_bias_act / bias_act: + bias, activation, * gain (sqrt(2) for lrelu, 1 for linear by default),
    then (PyTorch only) clamp to +-clamp."""
    if b is not None:
        x = _bias(x, b)
    if act == "lrelu":
        x = lrelu(x) * (SQRT2 if gain is None else gain)
    elif gain is not None and gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def tf_upsample_conv_2d(x: Tensor, w: Tensor, k: Tensor) -> Tensor:
    """upfirdn_2d.upsample_conv_2d(x, w [kh, kw, in, out]) with factor 2 (grouped when x has a multiple of in
    channels): conv2d_transpose, stride 2, 'VALID', of the kernel rotated by 180 degrees with in / out swapped,
    then the FIR filter k * 4 padded by ((p + 1) // 2 + 1, p // 2 + 1), p = len(k) - 2 - (kw - 1)."""
    kh, kw, in_c, out_c = w.shape
    groups = x.shape[1] // in_c
    w = w.reshape(kh, kw, in_c, groups, out_c // groups)
    w = torch.flip(w, [0, 1]).permute(0, 1, 4, 3, 2).reshape(kh, kw, out_c // groups, groups * in_c)
    out_hw = ((x.shape[2] - 1) * 2 + kh, (x.shape[3] - 1) * 2 + kw)
    x = tf_conv2d_transpose(x, w, out_hw, 2, "VALID", groups=groups)
    p = (k.shape[0] - 2) - (kw - 1)
    return upfirdn(x, k * 4, pad=((p + 1) // 2 + 1, p // 2 + 1))


def tf_conv_downsample_2d(x: Tensor, w: Tensor, k: Tensor) -> Tensor:
    """upfirdn_2d.conv_downsample_2d(x, w [kh, kw, in, out]) with factor 2: the FIR filter k padded by
    ((p + 1) // 2, p // 2), p = len(k) - 2 + kw - 1, then conv2d stride 2 'VALID'."""
    p = (k.shape[0] - 2) + (w.shape[1] - 1)
    x = upfirdn(x, k, pad=((p + 1) // 2, p // 2))
    return tf_conv2d(x, w, stride=2, padding="VALID")


def tf_upsample_2d(x: Tensor, k: Tensor) -> Tensor:
    """upfirdn_2d.upsample_2d with factor 2: zero insertion, the FIR k * 4 padded by ((p + 1) // 2 + 1, p // 2),
    p = len(k) - 2."""
    p = k.shape[0] - 2
    return upfirdn(x, k * 4, up=2, pad=((p + 1) // 2 + 1, p // 2))


def stylegan2_tf_mapping(v: _Vars, z: Tensor, prefix: str = "mapping/", lrmul: float = 0.01,
                         c: Tensor | None = None) -> Tensor:
    """StyleGAN2's G_mapping: normalise, then Dense layers (gain 1, lrmul) with fused lrelu (bias * lrmul,
    then leaky ReLU, then * sqrt(2)). StyleGAN2-ADA's conditional one first appends to the normalised z the label
    through LabelEmbed (dense, gain 1, lrmul 1, linear), normalised on its own."""
    x = pixel_norm(z)
    if c is not None:
        y = _act(c @ _he(v(f"{prefix}LabelEmbed/weight"), 1.0), v(f"{prefix}LabelEmbed/bias"), "linear")
        x = torch.cat([x, pixel_norm(y)], dim=1)
    for idx in range(len(v.resolutions(re.escape(prefix) + r"Dense(\d+)/weight"))):
        w = v(f"{prefix}Dense{idx}/weight")
        x = _act(x @ _he(w, 1.0, lrmul=lrmul), v(f"{prefix}Dense{idx}/bias") * lrmul, "lrelu")
    return x


def _tf_modconv(v: _Vars, scope: str, x: Tensor, y: Tensor, *, up: bool = False, demodulate: bool = True,
                k: Tensor | None = None) -> Tensor:
    """modulated_conv2d_layer (fused_modconv): the style s = y @ mod_weight / sqrt(w_dim) + mod_bias + 1 scales
    the kernel's input maps, demodulation divides each output map by sqrt(sum of squares + 1e-8), and the
    per-sample kernels run as one grouped convolution."""
    w = _he(v(f"{scope}/weight"), 1.0)  # [k, k, I, O]
    s = y @ _he(v(f"{scope}/mod_weight"), 1.0) + v(f"{scope}/mod_bias") + 1
    ww = w[None] * s[:, None, None, :, None]  # [B, k, k, I, O]
    if demodulate:
        ww = ww * torch.rsqrt(ww.square().sum(dim=(1, 2, 3)) + 1e-8)[:, None, None, None, :]
    n, in_c = x.shape[0], x.shape[1]
    xg = x.reshape(1, n * in_c, x.shape[2], x.shape[3])
    wg = ww.permute(1, 2, 3, 0, 4).reshape(ww.shape[1], ww.shape[2], in_c, -1)
    if up:
        xg = tf_upsample_conv_2d(xg, wg, k)
    else:
        xg = tf_conv2d(xg, wg, groups=n)
    return xg.reshape(n, -1, xg.shape[2], xg.shape[3])


@_one_thread
def stylegan2_tf_G(Gs_params: Mapping[str, Any], z: Any, psi: float = 1.0, cutoff: int | None = None, *,
                   mapping_lrmul: float = 0.01, resample_kernel: Sequence[float] = (1, 3, 3, 1),
                   c: Any = None) -> Tensor:
    """G_main with G_synthesis_stylegan2 (config F, skip architecture, randomize_noise=False): each conv layer is a
    modulated, demodulated convolution (Conv0_up through upsample_conv_2d), + stored noise * the scalar
    noise_strength, then fused bias + lrelu * sqrt(2); every resolution's ToRGB (not demodulated, linear) is
    added to the upsample_2d of the image so far. `c`: the labels of StyleGAN2-ADA's conditional G_main (whose
    G_synthesis computes the same)."""
    v = _Vars(Gs_params)
    _check_lod(v)
    k = fir_kernel(resample_kernel)
    z = _latents(z)
    c = _labels(c, "mapping/LabelEmbed/weight" in v, z.shape[0])
    dl = stylegan2_tf_mapping(v, z, lrmul=mapping_lrmul, c=c)
    log2 = max(v.resolutions(r"synthesis/(\d+)x\d+/Conv1/weight"), default=4).bit_length() - 1
    num_layers = 2 * log2 - 2
    dl = _truncate(dl[:, None].repeat(1, num_layers, 1), v("dlatent_avg"), psi, cutoff)

    def layer(x: Tensor, scope: str, idx: int, up: bool = False) -> Tensor:
        x = _tf_modconv(v, f"synthesis/{scope}", x, dl[:, idx], up=up, k=k)
        x = x + v(f"synthesis/noise{idx}") * v(f"synthesis/{scope}/noise_strength")
        return _act(x, v(f"synthesis/{scope}/bias"), "lrelu")

    def torgb(x: Tensor, scope: str, idx: int) -> Tensor:
        t = _tf_modconv(v, f"synthesis/{scope}/ToRGB", x, dl[:, idx], demodulate=False)
        return _act(t, v(f"synthesis/{scope}/ToRGB/bias"), "linear")

    x = v("synthesis/4x4/Const/const").repeat(dl.shape[0], 1, 1, 1)
    x = layer(x, "4x4/Conv", 0)
    y = torgb(x, "4x4", 1)
    for res in range(3, log2 + 1):
        s = f"{2**res}x{2**res}"
        x = layer(x, f"{s}/Conv0_up", 2 * res - 5, up=True)
        x = layer(x, f"{s}/Conv1", 2 * res - 4)
        y = tf_upsample_2d(y, k) + torgb(x, s, 2 * res - 3)
    return y


@_one_thread
def stylegan2_tf_D(D_vars: Mapping[str, Any], images: Any, *, mbstd_group_size: int = 4,
                   resample_kernel: Sequence[float] = (1, 3, 3, 1), c: Any = None,
                   mapping_lrmul: float = 0.1) -> Tensor:
    """D_stylegan2 (resnet): FromRGB at the top resolution, per block Conv0, Conv1_down (conv_downsample_2d) and
    the 1x1 Skip (downsampled, no bias), (x + skip) / sqrt(2); minibatch stddev, the 4x4 Conv, Dense0 and
    the linear Output. Weights have gain 1; fused_bias_act supplies lrelu's sqrt(2) after the bias.
    StyleGAN2-ADA's conditional D_main (`c`): the label through LabelEmbed (linear), normalised, then the
    Mapping{i} layers (lrelu, mapping_lrmul: D_main's default 0.1); the score is the sum of Output's features
    times the mapped label, / sqrt(their number)."""
    v = _Vars(D_vars)
    k = fir_kernel(resample_kernel)
    x = f64(images)
    c = _labels(c, "LabelEmbed/weight" in v, x.shape[0])
    if c is not None:
        y = pixel_norm(_act(c @ _he(v("LabelEmbed/weight"), 1.0), v("LabelEmbed/bias"), "linear"))
        for idx in range(len(v.resolutions(r"Mapping(\d+)/weight"))):
            w = v(f"Mapping{idx}/weight")
            y = _act(y @ _he(w, 1.0, lrmul=mapping_lrmul), v(f"Mapping{idx}/bias") * mapping_lrmul, "lrelu")
    sizes = sorted(v.resolutions(r"(\d+)x\d+/Conv0/weight"), reverse=True)
    s = f"{sizes[0]}x{sizes[0]}"
    x = _act(tf_conv2d(x, _he(v(f"{s}/FromRGB/weight"), 1.0)), v(f"{s}/FromRGB/bias"), "lrelu")
    for size in sizes:
        s = f"{size}x{size}"
        t = x
        x = _act(tf_conv2d(x, _he(v(f"{s}/Conv0/weight"), 1.0)), v(f"{s}/Conv0/bias"), "lrelu")
        x = _act(tf_conv_downsample_2d(x, _he(v(f"{s}/Conv1_down/weight"), 1.0), k), v(f"{s}/Conv1_down/bias"),
                 "lrelu")
        t = tf_conv_downsample_2d(t, _he(v(f"{s}/Skip/weight"), 1.0), k)
        x = (x + t) * (1 / np.sqrt(2))
    if mbstd_group_size > 1:
        x = minibatch_stddev(x, mbstd_group_size)
    x = _act(tf_conv2d(x, _he(v("4x4/Conv/weight"), 1.0)), v("4x4/Conv/bias"), "lrelu")
    x = _act(x.flatten(1) @ _he(v("4x4/Dense0/weight"), 1.0), v("4x4/Dense0/bias"), "lrelu")
    x = _act(x @ _he(v("Output/weight"), 1.0), v("Output/bias"), "linear")
    if c is not None:
        return (x * y).sum(dim=1) / math.sqrt(y.shape[1])
    return x[:, 0]


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN2, PyTorch (StyleGAN2-ADA training/networks.py; StyleGAN3's networks_stylegan2.py computes the same).


def _pt_conv(x: Tensor, w: Tensor, f: Tensor, *, up: int = 1, down: int = 1, padding: int = 0, groups: int = 1,
             flip_weight: bool = True) -> Tensor:
    """conv2d_resample(x, w [O, I/groups, kh, kw], f) along the path NVIDIA's code takes in each case.
    up 2: conv_transpose2d, stride 2, of w as stored (the layers pass flip_weight=False, "convolution", whose
    transpose uses the kernel unrotated), then the FIR f * 4; down 2: the FIR f, then a stride-2 correlation
    (for a 1x1 kernel: the FIR with stride 2, then the 1x1 conv); otherwise a plain correlation."""
    fw = f.shape[-1]
    kh, kw = w.shape[2], w.shape[3]
    if not flip_weight and up == 1:
        w = torch.flip(w, [2, 3])
    if up > 1:
        p0 = padding + (fw + up - 1) // 2 - (kw - 1)
        p1 = padding + (fw - up) // 2 - (kw - up)
        o, i = w.shape[0], w.shape[1]
        wt = w.reshape(groups, o // groups, i, kh, kw).transpose(1, 2).reshape(groups * i, o // groups, kh, kw)
        if flip_weight:  # a correlation's transpose needs the rotated kernel
            wt = torch.flip(wt, [2, 3])
        x = F.conv_transpose2d(x, wt, stride=up, groups=groups)
        return upfirdn(x, f * up**2, pad=(p0, p1))
    if down > 1:
        p0 = padding + (fw - down + 1) // 2
        p1 = padding + (fw - down) // 2
        if kh == 1 and kw == 1:
            return F.conv2d(upfirdn(x, f, down=down, pad=(p0, p1)), w, groups=groups)
        return F.conv2d(upfirdn(x, f, pad=(p0, p1)), w, stride=down, groups=groups)
    return F.conv2d(x, w, padding=padding, groups=groups)


def _pt_modconv(x: Tensor, weight: Tensor, styles: Tensor, f: Tensor | None = None, *, up: int = 1,
                padding: int = 0, demodulate: bool = True) -> Tensor:
    """modulated_conv2d (fused_modconv): the kernel scaled by the styles on its input maps, demodulated per
    output map (sum of squares + 1e-8), run as one grouped convolution; flip_weight = (up == 1) as the layers
    pass it."""
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4)) + 1e-8)[:, :, None, None, None]
    x = x.reshape(1, n * i, x.shape[2], x.shape[3])
    f = fir_kernel() if f is None else f
    x = _pt_conv(x, w.reshape(n * o, i, kh, kw), f, up=up, padding=padding, groups=n, flip_weight=up == 1)
    return x.reshape(n, o, x.shape[2], x.shape[3])


def _fc(sd: _Vars, prefix: str, x: Tensor, act: str = "linear", lr: float = 1.0) -> Tensor:
    """FullyConnectedLayer: x @ (weight * lr / sqrt(in)).T, bias * lr, then bias_act."""
    w = sd(f"{prefix}.weight")
    x = x @ (w * (lr / math.sqrt(w.shape[1]))).t()
    return _act(x, sd(f"{prefix}.bias") * lr, act)


def _filter(sd: _Vars, prefix: str) -> Tensor:
    name = f"{prefix}.resample_filter"
    return sd(name) if name in sd else fir_kernel()


def _pt_mapping(sd: _Vars, z: Tensor | None, c: Tensor | None, lr: float) -> Tensor:
    """MappingNetwork.forward without broadcast or truncation: normalize_2nd_moment(z) and, for labels,
    normalize_2nd_moment(embed(c)) (a linear FullyConnectedLayer) concatenated after it; then fc{i} (lrelu, lr)."""
    parts = [] if z is None else [pixel_norm(z)]
    if c is not None:
        parts.append(pixel_norm(_fc(sd, "mapping.embed", c)))
    x = torch.cat(parts, dim=1)
    for idx in range(len(sd.resolutions(r"mapping\.fc(\d+)\.weight"))):
        x = _fc(sd, f"mapping.fc{idx}", x, "lrelu", lr)
    return x


@_one_thread
def stylegan2_pt_G(G_ema_state_dict: Mapping[str, Any], z: Any, psi: float = 1.0, cutoff: int | None = None, *,
                   mapping_lr: float = 0.01, conv_clamp: float | None = None, c: Any = None) -> Tensor:
    """Generator.forward(z, c, psi, cutoff, noise_mode="const"), in float64: MappingNetwork
    (normalize_2nd_moment, FullyConnectedLayers with lr_multiplier 0.01 and lrelu; with labels, the embedded
    label beside z), w_avg.lerp on the first cutoff ws, then per block SynthesisLayers (affine styles,
    modulated_conv2d with noise_const * noise_strength, bias_act lrelu with clamp conv_clamp) and the skip RGB
    sum (upsample2d + ToRGBLayer). conv_clamp: the networks' own (256 in NVIDIA's published pickles; it never
    binds for these networks)."""
    sd = _Vars(G_ema_state_dict)
    z = _latents(z)
    x = _pt_mapping(sd, z, _labels(c, "mapping.embed.weight" in sd, z.shape[0]), mapping_lr)
    sizes = sd.resolutions(r"synthesis\.b(\d+)\.conv1\.weight")
    num_ws = 2 * len(sizes)
    ws = _truncate(x[:, None].repeat(1, num_ws, 1), sd("mapping.w_avg"), psi, cutoff)

    def layer(x: Tensor, prefix: str, w: Tensor, up: int = 1) -> Tensor:
        styles = _fc(sd, f"{prefix}.affine", w)
        weight = sd(f"{prefix}.weight")
        x = _pt_modconv(x, weight, styles, _filter(sd, prefix), up=up, padding=weight.shape[-1] // 2)
        x = x + sd(f"{prefix}.noise_const") * sd(f"{prefix}.noise_strength")
        return _act(x, sd(f"{prefix}.bias"), "lrelu", clamp=conv_clamp)

    def torgb(x: Tensor, prefix: str, w: Tensor) -> Tensor:
        weight = sd(f"{prefix}.weight")
        styles = _fc(sd, f"{prefix}.affine", w) * (1 / np.sqrt(weight.shape[1] * weight.shape[2] * weight.shape[3]))
        return _act(_pt_modconv(x, weight, styles, demodulate=False), sd(f"{prefix}.bias"), "linear",
                    clamp=conv_clamp)

    img = None
    w_idx = 0
    for size in sizes:
        b = f"synthesis.b{size}"
        if size == 4:
            x = sd(f"{b}.const")[None].repeat(ws.shape[0], 1, 1, 1)
            x = layer(x, f"{b}.conv1", ws[:, 0])
            w_idx = 1
        else:
            x = layer(x, f"{b}.conv0", ws[:, w_idx], up=2)
            x = layer(x, f"{b}.conv1", ws[:, w_idx + 1])
            w_idx += 2
        y = torgb(x, f"{b}.torgb", ws[:, w_idx])
        if img is not None:
            img = upfirdn(img, _filter(sd, b) * 4, up=2, pad=(2, 1))  # upsample2d: pads (fw + 1) // 2, (fw - 2) // 2
        img = y if img is None else img + y
    return img


@_one_thread
def stylegan2_pt_D(D_state_dict: Mapping[str, Any], images: Any, *, mbstd_group_size: int | None = 4,
                   conv_clamp: float | None = None, c: Any = None, mapping_lr: float = 0.01) -> Tensor:
    """Discriminator.forward(img, c) (resnet): fromrgb in the first block, per block skip (1x1, down, gain
    sqrt(0.5)), conv0, conv1 (down, gain sqrt(0.5)) added; the epilogue's minibatch stddev, conv, fc and out.
    Conditional (`c`): the label through D's MappingNetwork (z_dim 0; lr_multiplier mapping_lr, its default 0.01)
    to cmap, and the score (out(x) * cmap).sum / sqrt(cmap_dim)."""
    sd = _Vars(D_state_dict)

    def conv(x: Tensor, prefix: str, act: str, down: int = 1, gain: float = 1.0, clamp: bool = True) -> Tensor:
        w = sd(f"{prefix}.weight")
        w = w * (1 / np.sqrt(w.shape[1] * w.shape[2] * w.shape[3]))
        x = _pt_conv(x, w, _filter(sd, prefix), down=down, padding=w.shape[-1] // 2)
        bias = sd(f"{prefix}.bias") if f"{prefix}.bias" in sd else None
        act_gain = (SQRT2 if act == "lrelu" else 1.0) * gain
        return _act(x, bias, act, gain=act_gain, clamp=None if conv_clamp is None or not clamp else conv_clamp * gain)

    x = f64(images)
    c = _labels(c, "mapping.embed.weight" in sd, x.shape[0])
    sizes = sorted(sd.resolutions(r"b(\d+)\.conv0\.weight"), reverse=True)
    x = conv(x, f"b{sizes[0]}.fromrgb", "lrelu")
    for size in sizes:
        b = f"b{size}"
        y = conv(x, f"{b}.skip", "linear", down=2, gain=np.sqrt(0.5), clamp=False)  # built without conv_clamp
        x = conv(x, f"{b}.conv0", "lrelu")
        x = conv(x, f"{b}.conv1", "lrelu", down=2, gain=np.sqrt(0.5))
        x = y + x
    x = minibatch_stddev(x, mbstd_group_size)
    x = conv(x, "b4.conv", "lrelu")
    x = _fc(sd, "b4.fc", x.flatten(1), "lrelu")
    x = _fc(sd, "b4.out", x)
    if c is None:
        return x[:, 0]
    cmap = _pt_mapping(sd, None, c, mapping_lr)
    return (x * cmap).sum(dim=1) / math.sqrt(cmap.shape[1])
