"""Random networks in each of NVIDIA's published formats, and the pickles that hold them, for tests of `sgan import`.

The variables are named, shaped and laid out as NVIDIA's code makes them:
- Progressive GAN (tkarras/progressive_growing_of_gans, networks.py G_paper / D_paper): a (G, D, Gs) tuple of
  `tfutil.Network`s, state version 2.
- StyleGAN (NVlabs/stylegan, training/networks_stylegan.py G_style / D_basic): `dnnlib.tflib.network.Network`s,
  version 3, G with the components "mapping" and "synthesis".
- StyleGAN2 config F (NVlabs/stylegan2, training/networks_stylegan2.py G_main / D_stylegan2): version 4; with
  labels, as StyleGAN2-ADA's TF code (NVlabs/stylegan2-ada, training/networks.py G_main / D_main) writes its
  conditional networks: "mapping/LabelEmbed" in G, "LabelEmbed", "Mapping{i}" and a cmap-wide "Output" in D.
- StyleGAN2-ADA's PyTorch snapshot (training/networks.py) and the StyleGAN3 repository's StyleGAN2
  (training/networks_stylegan2.py): a dict {training_set_kwargs, G, D, G_ema, augment_pipe} of persistent modules;
  with labels (c_dim > 0), G's MappingNetwork has its `embed` and D a MappingNetwork of its own.

Weights are N(0, 1) (N(0, 1/lrmul) in the mapping layers), as NVIDIA initialises them with the equalised learning
rate; unlike NVIDIA's initialisation, every bias, noise strength or weight, style bias, W average, constant input
and stored noise image is random and non-zero too, so that a wrong scale anywhere changes the images. G and
Gs / G_ema have independent trainable weights; their non-trainable variables (lod, dlatent_avg, the noise images;
the PyTorch buffers) are equal, as NVIDIA's training loops leave them. TF dictionaries are {name: array} with
the TF scope names; StyleGAN's and StyleGAN2's G / Gs are flattened as legacy.py flattens them
("mapping/Dense0/weight", "synthesis/4x4/Const/const", "dlatent_avg").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nvidia_pickling import EasyDict, dump_persistent, dump_tf, tf_network

BIAS_STD = 0.5  # the effective (runtime) standard deviation of the random biases, noise weights and style offsets
MAPPING_LRMUL = 0.01
D_MAIN_MAPPING_LRMUL = 0.1  # StyleGAN2-ADA's TF D_main: its label mapping's default multiplier
RESAMPLE_FILTER = [1, 3, 3, 1]
Params = dict[str, np.ndarray]


class _Random:
    """float32 draws from one seeded generator."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def normal(self, shape: Sequence[int], std: float = 1.0) -> np.ndarray:
        x = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        return x if std == 1.0 else np.asarray(x * np.float32(std), dtype=np.float32)

    def weight(self, shape: Sequence[int], lrmul: float = 1.0) -> np.ndarray:
        """A weight as NVIDIA initialises it: N(0, 1 / lrmul); the runtime scale brings it to He's."""
        return self.normal(shape, 1.0 / lrmul)

    def bias(self, shape: Sequence[int], lrmul: float = 1.0) -> np.ndarray:
        """A random bias whose runtime value (stored * lrmul) has standard deviation BIAS_STD."""
        return self.normal(shape, BIAS_STD / lrmul)


def _log2(resolution: int, minimum: int = 4) -> int:
    log2 = int(round(math.log2(resolution)))
    if resolution != 2**log2 or resolution < minimum:
        raise ValueError(f"resolution must be a power of two >= {minimum}, not {resolution}")
    return log2


def _nf(fmap_base: int, fmap_max: int, log2: int, fmap_min: int = 0):
    """NVIDIA's nf(stage) = min(int(fmap_base / 2**stage), fmap_max), clipped from below by fmap_min (1 in StyleGAN2's
    networks, none in Progressive GAN's and StyleGAN's); a layout with no feature maps somewhere is refused."""

    def nf(stage: int) -> int:
        return int(min(max(int(fmap_base / 2.0**stage), fmap_min), fmap_max))

    if nf(log2 - 1) < 1:
        raise ValueError(f"fmap_base {fmap_base} gives {2**log2}x{2**log2} no feature maps (nf({log2 - 1}) = 0): "
                         "NVIDIA's code cannot make this network")
    return nf


def _scope(res: int) -> str:
    return f"{2**res}x{2**res}"


def _non_default(**pairs: tuple[Any, Any]) -> dict[str, Any]:
    """{name: value} for the (value, default) pairs whose value differs from the build function's default."""
    return {name: value for name, (value, default) in pairs.items() if value != default}


def _copy_non_trainables(src: Params, dst: Params, names: Sequence[str]) -> None:
    for name in names:
        dst[name] = src[name].copy()


# ----------------------------------------------------------------------------------------------------------------
# Progressive GAN.


def pggan(resolution: int, *, fmap_base: int = 8192, fmap_max: int = 512, latent_size: int = 512, fused: bool = True,
          seed: int = 0) -> dict[str, Params]:
    """{"G", "D", "Gs"} variables of G_paper / D_paper (3 colour channels, no labels, lod 0). fused=True gives
    the published layout (`Conv0_up`, `Conv1_down`), False the separate one (`Conv0` after a nearest
    upscale, `Conv1` before a 2x2 average pool)."""
    log2 = _log2(resolution)
    nf = _nf(fmap_base, fmap_max, log2)
    rnd = _Random(seed)

    def generator() -> Params:
        v: Params = {"lod": np.zeros((), np.float32)}
        v["4x4/Dense/weight"] = rnd.weight([latent_size, nf(1) * 16])
        v["4x4/Dense/bias"] = rnd.bias([nf(1)])
        v["4x4/Conv/weight"] = rnd.weight([3, 3, nf(1), nf(1)])
        v["4x4/Conv/bias"] = rnd.bias([nf(1)])
        v[f"ToRGB_lod{log2 - 2}/weight"] = rnd.weight([1, 1, nf(1), 3])
        v[f"ToRGB_lod{log2 - 2}/bias"] = rnd.bias([3])
        for res in range(3, log2 + 1):
            s = _scope(res)
            if fused:  # upscale2d_conv2d's kernel is [k, k, fmaps_out, fmaps_in]
                v[f"{s}/Conv0_up/weight"] = rnd.weight([3, 3, nf(res - 1), nf(res - 2)])
                v[f"{s}/Conv0_up/bias"] = rnd.bias([nf(res - 1)])
            else:
                v[f"{s}/Conv0/weight"] = rnd.weight([3, 3, nf(res - 2), nf(res - 1)])
                v[f"{s}/Conv0/bias"] = rnd.bias([nf(res - 1)])
            v[f"{s}/Conv1/weight"] = rnd.weight([3, 3, nf(res - 1), nf(res - 1)])
            v[f"{s}/Conv1/bias"] = rnd.bias([nf(res - 1)])
            v[f"ToRGB_lod{log2 - res}/weight"] = rnd.weight([1, 1, nf(res - 1), 3])
            v[f"ToRGB_lod{log2 - res}/bias"] = rnd.bias([3])
        return v

    G = generator()
    D = _progressive_discriminator(rnd, log2, nf, down_name="Conv1_down" if fused else "Conv1", out_name="Dense1")
    Gs = generator()
    _copy_non_trainables(G, Gs, ["lod"])
    return {"G": G, "D": D, "Gs": Gs}


def _progressive_discriminator(rnd: _Random, log2: int, nf, *, down_name: str, out_name: str) -> Params:
    """D_paper's and D_basic's variables, in the order their template (linear) graph creates them."""
    v: Params = {"lod": np.zeros((), np.float32)}
    v["FromRGB_lod0/weight"] = rnd.weight([1, 1, 3, nf(log2 - 1)])
    v["FromRGB_lod0/bias"] = rnd.bias([nf(log2 - 1)])
    for res in range(log2, 2, -1):
        s = _scope(res)
        v[f"{s}/Conv0/weight"] = rnd.weight([3, 3, nf(res - 1), nf(res - 1)])
        v[f"{s}/Conv0/bias"] = rnd.bias([nf(res - 1)])
        v[f"{s}/{down_name}/weight"] = rnd.weight([3, 3, nf(res - 1), nf(res - 2)])
        v[f"{s}/{down_name}/bias"] = rnd.bias([nf(res - 2)])
        v[f"FromRGB_lod{log2 - res + 1}/weight"] = rnd.weight([1, 1, 3, nf(res - 2)])
        v[f"FromRGB_lod{log2 - res + 1}/bias"] = rnd.bias([nf(res - 2)])
    v["4x4/Conv/weight"] = rnd.weight([3, 3, nf(1) + 1, nf(1)])  # + the minibatch-stddev feature map
    v["4x4/Conv/bias"] = rnd.bias([nf(1)])
    v["4x4/Dense0/weight"] = rnd.weight([nf(1) * 16, nf(0)])
    v["4x4/Dense0/bias"] = rnd.bias([nf(0)])
    v[f"4x4/{out_name}/weight"] = rnd.weight([nf(0), 1])
    v[f"4x4/{out_name}/bias"] = rnd.bias([1])
    return v


def write_pggan(path: str | Path, resolution: int, *, fmap_base: int = 8192, fmap_max: int = 512,
                latent_size: int = 512, fused: bool = True, seed: int = 0) -> dict[str, Params]:
    """Writes `pggan(...)` as karras2018iclr-*.pkl is written; returns the variables."""
    data = pggan(resolution, fmap_base=fmap_base, fmap_max=fmap_max, latent_size=latent_size, fused=fused, seed=seed)
    common = {"num_channels": 3, "resolution": resolution, "label_size": 0}
    common.update(_non_default(fmap_base=(fmap_base, 8192), fmap_max=(fmap_max, 512), fused_scale=(fused, True)))
    g_kwargs = dict(common, **_non_default(latent_size=(latent_size, min(fmap_base, fmap_max))))
    G = tf_network("G", data["G"], version=2, static_kwargs=g_kwargs, build_func_name="G_paper")
    D = tf_network("D", data["D"], version=2, static_kwargs=common, build_func_name="D_paper")
    Gs = tf_network("Gs", data["Gs"], version=2, static_kwargs=g_kwargs, build_func_name="G_paper")
    dump_tf(path, G, D, Gs)
    return data


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN.


def stylegan_fused_up(res: int) -> bool:
    """Whether G_synthesis's `{2**res}x{2**res}/Conv0_up` is a fused transposed convolution under
    fused_scale='auto': when its output is at least 128 pixels wide."""
    return 2**res >= 128


def stylegan_fused_down(res: int) -> bool:
    """Whether D_basic's `{2**res}x{2**res}/Conv1_down` is fused (strided, 4x4 kernel) under fused_scale='auto':
    when its input is at least 128 pixels wide."""
    return 2**res >= 128


def stylegan(resolution: int, *, fmap_base: int = 8192, fmap_max: int = 512, mapping_layers: int = 8,
             dlatent_size: int = 512, seed: int = 0, latent_size: int = 512,
             mapping_fmaps: int = 512) -> dict[str, Params]:
    """{"G", "D", "Gs"} variables of G_style (flattened: own variables, "synthesis/...", "mapping/...") and
    D_basic. Resolution at least 8: G_synthesis's recursive structure, which NVIDIA's Gs runs, starts at 8x8."""
    log2 = _log2(resolution, minimum=8)
    nf = _nf(fmap_base, fmap_max, log2)
    num_layers = 2 * log2 - 2
    rnd = _Random(seed)

    def epilogue(v: Params, scope: str, fmaps: int) -> None:  # layer_epilogue's variables, in creation order
        v[f"{scope}/Noise/weight"] = rnd.bias([fmaps])
        v[f"{scope}/bias"] = rnd.bias([fmaps])
        v[f"{scope}/StyleMod/weight"] = rnd.weight([dlatent_size, 2 * fmaps])
        v[f"{scope}/StyleMod/bias"] = rnd.bias([2 * fmaps])

    def synthesis() -> Params:
        v: Params = {"lod": np.zeros((), np.float32)}
        for idx in range(num_layers):
            size = 2 ** (idx // 2 + 2)
            v[f"noise{idx}"] = rnd.normal([1, 1, size, size])
        v["4x4/Const/const"] = rnd.normal([1, nf(1), 4, 4])
        epilogue(v, "4x4/Const", nf(1))
        v["4x4/Conv/weight"] = rnd.weight([3, 3, nf(1), nf(1)])
        epilogue(v, "4x4/Conv", nf(1))
        v[f"ToRGB_lod{log2 - 2}/weight"] = rnd.weight([1, 1, nf(1), 3])
        v[f"ToRGB_lod{log2 - 2}/bias"] = rnd.bias([3])
        for res in range(3, log2 + 1):
            s = _scope(res)
            v[f"{s}/Conv0_up/weight"] = rnd.weight([3, 3, nf(res - 2), nf(res - 1)])  # [k, k, in, out] fused or not
            epilogue(v, f"{s}/Conv0_up", nf(res - 1))
            v[f"{s}/Conv1/weight"] = rnd.weight([3, 3, nf(res - 1), nf(res - 1)])
            epilogue(v, f"{s}/Conv1", nf(res - 1))
            v[f"ToRGB_lod{log2 - res}/weight"] = rnd.weight([1, 1, nf(res - 1), 3])
            v[f"ToRGB_lod{log2 - res}/bias"] = rnd.bias([3])
        return v

    def generator() -> Params:
        v: Params = {"lod": np.zeros((), np.float32), "dlatent_avg": rnd.normal([dlatent_size], BIAS_STD)}
        v.update({f"synthesis/{k}": a for k, a in synthesis().items()})
        v.update({f"mapping/{k}": a for k, a in
                  _mapping(rnd, latent_size, mapping_fmaps, dlatent_size, mapping_layers).items()})
        return v

    G = generator()
    D = _progressive_discriminator(rnd, log2, nf, down_name="Conv1_down", out_name="Dense1")
    Gs = generator()
    non_trainable = ["lod", "dlatent_avg", "synthesis/lod"] + [f"synthesis/noise{i}" for i in range(num_layers)]
    _copy_non_trainables(G, Gs, non_trainable)
    return {"G": G, "D": D, "Gs": Gs}


def _mapping(rnd: _Random, latent_size: int, mapping_fmaps: int, dlatent_size: int, layers: int,
             label_size: int = 0, label_fmaps: int | None = None) -> Params:
    """G_mapping's variables; with labels, StyleGAN2-ADA's "LabelEmbed" (label_fmaps wide, None: latent_size),
    created before the dense layers, whose first reads z and the embedded label."""
    v: Params = {}
    embedded = 0
    if label_size:
        embedded = latent_size if label_fmaps is None else label_fmaps
        v["LabelEmbed/weight"] = rnd.weight([label_size, embedded])
        v["LabelEmbed/bias"] = rnd.bias([embedded])
    for idx in range(layers):
        fan_in = latent_size + embedded if idx == 0 else mapping_fmaps
        fmaps = dlatent_size if idx == layers - 1 else mapping_fmaps
        v[f"Dense{idx}/weight"] = rnd.weight([fan_in, fmaps], MAPPING_LRMUL)
        v[f"Dense{idx}/bias"] = rnd.bias([fmaps], MAPPING_LRMUL)
    return v


def _split(flat: Params) -> tuple[Params, Params, Params]:
    """Own, synthesis and mapping variables of a flattened G."""
    own, parts = {}, {"synthesis": {}, "mapping": {}}
    for name, value in flat.items():
        head, _, rest = name.partition("/")
        if head in parts and rest:
            parts[head][rest] = value
        else:
            own[name] = value
    return own, parts["synthesis"], parts["mapping"]


def _tf_generator(name: str, flat: Params, *, version: int, static_kwargs: dict, num_layers: int, func: str,
                  synthesis_func: str) -> Any:
    own, syn, mapping = _split(flat)
    components = {  # G_style / G_main create the synthesis network first
        "synthesis": tf_network("G_synthesis", syn, version=version, static_kwargs=static_kwargs,
                                build_func_name=synthesis_func),
        "mapping": tf_network("G_mapping", mapping, version=version,
                              static_kwargs={"dlatent_broadcast": num_layers, **static_kwargs},
                              build_func_name="G_mapping"),
    }
    return tf_network(name, own, components, version=version, static_kwargs=static_kwargs, build_func_name=func)


def _dump_style_tf(path: str | Path, data: dict[str, Params], resolution: int, *, version: int,
                   funcs: tuple[str, str, str], fmaps: dict[str, tuple[Any, Any]],
                   mapping: dict[str, tuple[Any, Any]], label_size: int = 0,
                   d_mapping: dict[str, tuple[Any, Any]] | None = None) -> None:
    """Writes StyleGAN's (version 3) or StyleGAN2's (version 4) flattened {"G", "D", "Gs"} variables as their
    training loop does: G and Gs with synthesis and mapping components, built by funcs = (generator, synthesis,
    discriminator); static_kwargs as the training config passes them (label_size from the dataset), the
    (value, default) pairs of `fmaps` (everyone's), `mapping` (the generators') and `d_mapping` (the
    discriminator's) only where they differ from the build function's default."""
    common = {"num_channels": 3, "resolution": resolution, "label_size": label_size, **_non_default(**fmaps)}
    g_kwargs = dict(common, **_non_default(**mapping))
    num_layers = 2 * _log2(resolution) - 2
    G, Gs = (_tf_generator(key, data[key], version=version, static_kwargs=g_kwargs, num_layers=num_layers,
                           func=funcs[0], synthesis_func=funcs[1]) for key in ("G", "Gs"))
    d_kwargs = dict(common, **_non_default(**(d_mapping or {})))
    D = tf_network("D", data["D"], version=version, static_kwargs=d_kwargs, build_func_name=funcs[2])
    dump_tf(path, G, D, Gs)


def write_stylegan(path: str | Path, resolution: int, *, fmap_base: int = 8192, fmap_max: int = 512,
                   mapping_layers: int = 8, dlatent_size: int = 512, seed: int = 0, latent_size: int = 512,
                   mapping_fmaps: int = 512) -> dict[str, Params]:
    """Writes `stylegan(...)` as karras2019stylegan-*.pkl is written; returns the variables."""
    data = stylegan(resolution, fmap_base=fmap_base, fmap_max=fmap_max, mapping_layers=mapping_layers,
                    dlatent_size=dlatent_size, seed=seed, latent_size=latent_size, mapping_fmaps=mapping_fmaps)
    _dump_style_tf(path, data, resolution, version=3, funcs=("G_style", "G_synthesis", "D_basic"),
                   fmaps=dict(fmap_base=(fmap_base, 8192), fmap_max=(fmap_max, 512)),
                   mapping=dict(mapping_layers=(mapping_layers, 8), dlatent_size=(dlatent_size, 512),
                                latent_size=(latent_size, 512), mapping_fmaps=(mapping_fmaps, 512)))
    return data


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN2 (TensorFlow), config F.


def stylegan2_tf(resolution: int, *, fmap_base: int = 16384, fmap_max: int = 512, mapping_layers: int = 8,
                 z_dim: int = 512, w_dim: int = 512, seed: int = 0, mapping_fmaps: int = 512, c_dim: int = 0,
                 label_fmaps: int | None = None, d_mapping_layers: int = 0,
                 d_mapping_lrmul: float = D_MAIN_MAPPING_LRMUL) -> dict[str, Params]:
    """{"G", "D", "Gs"} variables of G_main with G_synthesis_stylegan2 (skip architecture; flattened like
    `stylegan`) and D_stylegan2 (resnet). z_dim and w_dim are G_mapping's latent_size and dlatent_size.
    Resolution at least 8: the resnet D reads the image only in its first block.

    c_dim > 0: StyleGAN2-ADA's conditional G_main / D_main (their variables are StyleGAN2's plus these): G_mapping
    embeds the label in label_fmaps features (None: z_dim); D_main embeds it in mapping_fmaps = nf(0) features
    ("LabelEmbed", created first), maps it through d_mapping_layers "Mapping{i}" layers (learning-rate multiplier
    d_mapping_lrmul), and its "Output" gives nf(0) features for the projection."""
    log2 = _log2(resolution, minimum=8)
    nf = _nf(fmap_base, fmap_max, log2, fmap_min=1)
    num_layers = 2 * log2 - 2
    rnd = _Random(seed)

    def modconv(v: Params, scope: str, k: int, fmaps_in: int, fmaps_out: int, noise: bool) -> None:
        v[f"{scope}/weight"] = rnd.weight([k, k, fmaps_in, fmaps_out])
        v[f"{scope}/mod_weight"] = rnd.weight([w_dim, fmaps_in])
        v[f"{scope}/mod_bias"] = rnd.bias([fmaps_in])  # applied + 1
        if noise:
            v[f"{scope}/noise_strength"] = rnd.normal([], BIAS_STD)
        v[f"{scope}/bias"] = rnd.bias([fmaps_out])

    def synthesis() -> Params:
        v: Params = {}
        for idx in range(num_layers - 1):
            size = 2 ** ((idx + 5) // 2)
            v[f"noise{idx}"] = rnd.normal([1, 1, size, size])
        v["4x4/Const/const"] = rnd.normal([1, nf(1), 4, 4])
        modconv(v, "4x4/Conv", 3, nf(1), nf(1), noise=True)
        modconv(v, "4x4/ToRGB", 1, nf(1), 3, noise=False)
        for res in range(3, log2 + 1):
            s = _scope(res)
            modconv(v, f"{s}/Conv0_up", 3, nf(res - 2), nf(res - 1), noise=True)
            modconv(v, f"{s}/Conv1", 3, nf(res - 1), nf(res - 1), noise=True)
            modconv(v, f"{s}/ToRGB", 1, nf(res - 1), 3, noise=False)
        return v

    def generator() -> Params:
        v: Params = {"lod": np.zeros((), np.float32), "dlatent_avg": rnd.normal([w_dim], BIAS_STD)}
        v.update({f"synthesis/{k}": a for k, a in synthesis().items()})
        v.update({f"mapping/{k}": a for k, a in _mapping(rnd, z_dim, mapping_fmaps, w_dim, mapping_layers, c_dim,
                                                             label_fmaps).items()})
        return v

    def discriminator() -> Params:
        v: Params = {}
        if c_dim:
            v["LabelEmbed/weight"] = rnd.weight([c_dim, nf(0)])
            v["LabelEmbed/bias"] = rnd.bias([nf(0)])
            for idx in range(d_mapping_layers):
                v[f"Mapping{idx}/weight"] = rnd.weight([nf(0), nf(0)], d_mapping_lrmul)
                v[f"Mapping{idx}/bias"] = rnd.bias([nf(0)], d_mapping_lrmul)
        for res in range(log2, 2, -1):
            s = _scope(res)
            if res == log2:
                v[f"{s}/FromRGB/weight"] = rnd.weight([1, 1, 3, nf(res - 1)])
                v[f"{s}/FromRGB/bias"] = rnd.bias([nf(res - 1)])
            v[f"{s}/Conv0/weight"] = rnd.weight([3, 3, nf(res - 1), nf(res - 1)])
            v[f"{s}/Conv0/bias"] = rnd.bias([nf(res - 1)])
            v[f"{s}/Conv1_down/weight"] = rnd.weight([3, 3, nf(res - 1), nf(res - 2)])
            v[f"{s}/Conv1_down/bias"] = rnd.bias([nf(res - 2)])
            v[f"{s}/Skip/weight"] = rnd.weight([1, 1, nf(res - 1), nf(res - 2)])
        v["4x4/Conv/weight"] = rnd.weight([3, 3, nf(1) + 1, nf(1)])
        v["4x4/Conv/bias"] = rnd.bias([nf(1)])
        v["4x4/Dense0/weight"] = rnd.weight([nf(1) * 16, nf(0)])
        v["4x4/Dense0/bias"] = rnd.bias([nf(0)])
        v["Output/weight"] = rnd.weight([nf(0), nf(0) if c_dim else 1])
        v["Output/bias"] = rnd.bias([nf(0) if c_dim else 1])
        return v

    G = generator()
    D = discriminator()
    Gs = generator()
    _copy_non_trainables(G, Gs, ["lod", "dlatent_avg"] + [f"synthesis/noise{i}" for i in range(num_layers - 1)])
    return {"G": G, "D": D, "Gs": Gs}


def write_stylegan2_tf(path: str | Path, resolution: int, *, fmap_base: int = 16384, fmap_max: int = 512,
                       mapping_layers: int = 8, z_dim: int = 512, w_dim: int = 512, seed: int = 0,
                       mapping_fmaps: int = 512, c_dim: int = 0, label_fmaps: int | None = None,
                       d_mapping_layers: int = 0, d_mapping_lrmul: float = D_MAIN_MAPPING_LRMUL) -> dict[str, Params]:
    """Writes `stylegan2_tf(...)` as stylegan2-*-config-f.pkl is written, or, with labels, as StyleGAN2-ADA's TF
    training writes a conditional network-snapshot-*.pkl (G_main, G_synthesis, D_main); returns the variables."""
    data = stylegan2_tf(resolution, fmap_base=fmap_base, fmap_max=fmap_max, mapping_layers=mapping_layers,
                        z_dim=z_dim, w_dim=w_dim, seed=seed, mapping_fmaps=mapping_fmaps, c_dim=c_dim,
                        label_fmaps=label_fmaps, d_mapping_layers=d_mapping_layers, d_mapping_lrmul=d_mapping_lrmul)
    funcs = ("G_main", "G_synthesis", "D_main") if c_dim else ("G_main", "G_synthesis_stylegan2", "D_stylegan2")
    _dump_style_tf(path, data, resolution, version=4, funcs=funcs,
                   fmaps=dict(fmap_base=(fmap_base, 16384), fmap_max=(fmap_max, 512)),
                   mapping=dict(mapping_layers=(mapping_layers, 8), latent_size=(z_dim, 512),
                                dlatent_size=(w_dim, 512), mapping_fmaps=(mapping_fmaps, 512),
                                label_fmaps=(label_fmaps, None)),
                   label_size=c_dim, d_mapping=dict(mapping_layers=(d_mapping_layers, 0),
                                                    mapping_lrmul=(d_mapping_lrmul, D_MAIN_MAPPING_LRMUL)))
    return data


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN2 (PyTorch): StyleGAN2-ADA's training/networks.py, the StyleGAN3 repository's networks_stylegan2.py.

ADA_MODULE_SRC = '''\
"""Network architectures of StyleGAN2-ADA (stand-in source text for tests; never executed)."""

import numpy as np
import torch
from torch_utils import persistence


@persistence.persistent_class
class Generator(torch.nn.Module):
    """Holds parameters only."""
'''
SG3_MODULE_SRC = ADA_MODULE_SRC.replace("of StyleGAN2-ADA", "of StyleGAN2 in the StyleGAN3 repository")
FLAVOURS = ("ada", "stylegan3")
_CLASSES: dict[tuple[str, str], type] = {}
_ACT_GAIN = {"linear": 1, "lrelu": np.sqrt(2)}  # bias_act's def_gain (np.float64 where NVIDIA's is)


def nvidia_class(name: str, flavour: str) -> type:
    """A plain torch.nn.Module subclass named like NVIDIA's class (pickled under that name, with the flavour's
    module source)."""
    key = (name, flavour)
    if key not in _CLASSES:
        _CLASSES[key] = type(name, (torch.nn.Module,), {
            "__module__": __name__, "__doc__": f"Stand-in for NVIDIA's {name}: parameters and attributes only.",
            "nvidia_class_name": name,
            "nvidia_module_src": ADA_MODULE_SRC if flavour == "ada" else SG3_MODULE_SRC})
    return _CLASSES[key]


def setup_filter(taps: Sequence[float] = RESAMPLE_FILTER) -> torch.Tensor:
    """upfirdn2d.setup_filter's buffer for a short 1-D filter: the normalised outer product, float32."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


class _Builder:
    """Builds the modules of one network with NVIDIA's attributes, names and init arguments."""

    def __init__(self, rnd: _Random, flavour: str):
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
        self.rnd, self.flavour, self.sg3 = rnd, flavour, flavour == "stylegan3"

    def module(self, name: str, args: tuple, kwargs: dict) -> torch.nn.Module:
        m = nvidia_class(name, self.flavour)()
        m._init_args = copy.deepcopy(tuple(args))
        m._init_kwargs = copy.deepcopy(dict(kwargs))
        return m

    def param(self, value: np.ndarray) -> torch.nn.Parameter:
        return torch.nn.Parameter(torch.from_numpy(np.require(value, np.float32, "C")))

    def fc(self, in_features: int, out_features: int, **kwargs: Any) -> torch.nn.Module:
        activation = kwargs.get("activation", "linear")
        lr = kwargs.get("lr_multiplier", 1)
        m = self.module("FullyConnectedLayer", (in_features, out_features), kwargs)
        if self.sg3:
            m.in_features, m.out_features = in_features, out_features
        m.activation = activation
        m.weight = self.param(self.rnd.weight([out_features, in_features], lr))
        bias = self.rnd.bias([out_features], lr)
        m.bias = self.param(bias + np.float32(kwargs.get("bias_init", 0)))
        m.weight_gain = lr / np.sqrt(in_features)
        m.bias_gain = lr
        return m

    def conv(self, in_channels: int, out_channels: int, **kwargs: Any) -> torch.nn.Module:
        k = kwargs["kernel_size"]
        m = self.module("Conv2dLayer", (in_channels, out_channels), kwargs)
        if self.sg3:
            m.in_channels, m.out_channels = in_channels, out_channels
        m.activation = kwargs.get("activation", "linear")
        m.up, m.down = kwargs.get("up", 1), kwargs.get("down", 1)
        m.conv_clamp = kwargs.get("conv_clamp")
        m.register_buffer("resample_filter", setup_filter(kwargs.get("resample_filter", RESAMPLE_FILTER)))
        m.padding = k // 2
        m.weight_gain = 1 / np.sqrt(in_channels * k**2)
        m.act_gain = _ACT_GAIN[m.activation]
        m.weight = self.param(self.rnd.weight([out_channels, in_channels, k, k]))
        if kwargs.get("bias", True):
            m.bias = self.param(self.rnd.bias([out_channels]))
        else:
            m.bias = None
        return m

    # Generator ---------------------------------------------------------------------------------------------

    def synthesis_layer(self, in_channels: int, out_channels: int, **kwargs: Any) -> torch.nn.Module:
        res, up, k = kwargs["resolution"], kwargs.get("up", 1), kwargs.get("kernel_size", 3)
        m = self.module("SynthesisLayer", (in_channels, out_channels), kwargs)
        if self.sg3:
            m.in_channels, m.out_channels, m.w_dim = in_channels, out_channels, kwargs["w_dim"]
        m.resolution, m.up, m.use_noise, m.activation = res, up, True, "lrelu"
        m.conv_clamp = kwargs.get("conv_clamp")
        m.register_buffer("resample_filter", setup_filter(kwargs.get("resample_filter", RESAMPLE_FILTER)))
        m.padding = k // 2
        m.act_gain = _ACT_GAIN["lrelu"]
        m.affine = self.fc(kwargs["w_dim"], in_channels, bias_init=1)
        m.weight = self.param(self.rnd.weight([out_channels, in_channels, k, k]))
        m.register_buffer("noise_const", torch.from_numpy(self.rnd.normal([res, res])))
        m.noise_strength = self.param(self.rnd.normal([], BIAS_STD))
        m.bias = self.param(self.rnd.bias([out_channels]))
        return m

    def torgb(self, in_channels: int, out_channels: int, **kwargs: Any) -> torch.nn.Module:
        m = self.module("ToRGBLayer", (in_channels, out_channels), kwargs)
        if self.sg3:
            m.in_channels, m.out_channels, m.w_dim = in_channels, out_channels, kwargs["w_dim"]
        m.conv_clamp = kwargs.get("conv_clamp")
        m.affine = self.fc(kwargs["w_dim"], in_channels, bias_init=1)
        m.weight = self.param(self.rnd.weight([out_channels, in_channels, 1, 1]))
        m.bias = self.param(self.rnd.bias([out_channels]))
        m.weight_gain = 1 / np.sqrt(in_channels)
        return m

    def synthesis_block(self, in_channels: int, out_channels: int, **kwargs: Any) -> torch.nn.Module:
        m = self.module("SynthesisBlock", (in_channels, out_channels), kwargs)
        w_dim, res, img_channels = kwargs["w_dim"], kwargs["resolution"], kwargs["img_channels"]
        conv_clamp = kwargs.get("conv_clamp", 256 if self.sg3 else None)
        use_fp16 = kwargs.get("use_fp16", False)
        m.in_channels, m.w_dim, m.resolution, m.img_channels = in_channels, w_dim, res, img_channels
        m.is_last, m.architecture, m.use_fp16 = kwargs["is_last"], "skip", use_fp16
        m.channels_last = use_fp16 and kwargs.get("fp16_channels_last", False)
        if self.sg3:
            m.fused_modconv_default = kwargs.get("fused_modconv_default", True)
        m.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER))
        m.num_conv = m.num_torgb = 0
        if in_channels == 0:
            m.const = self.param(self.rnd.normal([out_channels, res, res]))
        else:
            m.conv0 = self.synthesis_layer(in_channels, out_channels, w_dim=w_dim, resolution=res, up=2,
                                           resample_filter=RESAMPLE_FILTER, conv_clamp=conv_clamp,
                                           channels_last=m.channels_last)
            m.num_conv += 1
        m.conv1 = self.synthesis_layer(out_channels, out_channels, w_dim=w_dim, resolution=res,
                                       conv_clamp=conv_clamp, channels_last=m.channels_last)
        m.num_conv += 1
        m.torgb = self.torgb(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                             channels_last=m.channels_last)
        m.num_torgb += 1
        return m

    def synthesis(self, **kwargs: Any) -> torch.nn.Module:
        m = self.module("SynthesisNetwork", (), kwargs)
        w_dim, img_resolution, img_channels = kwargs["w_dim"], kwargs["img_resolution"], kwargs["img_channels"]
        channel_base, channel_max = kwargs.get("channel_base", 32768), kwargs.get("channel_max", 512)
        num_fp16_res = kwargs.get("num_fp16_res", 4 if self.sg3 else 0)
        block_kwargs = {k: v for k, v in kwargs.items() if k not in (
            "w_dim", "img_resolution", "img_channels", "channel_base", "channel_max", "num_fp16_res")}
        log2 = _log2(img_resolution)
        m.w_dim, m.img_resolution, m.img_resolution_log2, m.img_channels = w_dim, img_resolution, log2, img_channels
        if self.sg3:
            m.num_fp16_res = num_fp16_res
        m.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in m.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        m.num_ws = 0
        for res in m.block_resolutions:
            is_last = res == img_resolution
            block = self.synthesis_block(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim,
                                         resolution=res, img_channels=img_channels, is_last=is_last,
                                         use_fp16=res >= fp16_resolution, **block_kwargs)
            m.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(m, f"b{res}", block)
        return m

    def mapping(self, **kwargs: Any) -> torch.nn.Module:
        """G's mapping network, or (z_dim 0, num_ws and w_avg_beta None) a conditional D's label mapping: the
        label's `embed` (embed_features wide, None: w_dim) first, then fc{i}, then w_avg where it is tracked."""
        m = self.module("MappingNetwork", (), kwargs)
        z_dim, c_dim, w_dim, num_ws = kwargs["z_dim"], kwargs["c_dim"], kwargs["w_dim"], kwargs["num_ws"]
        num_layers = kwargs.get("num_layers", 8)
        lr = kwargs.get("lr_multiplier", MAPPING_LRMUL)
        layer_features = kwargs.get("layer_features") or w_dim
        embed_features = (kwargs.get("embed_features") or w_dim) if c_dim else 0
        m.z_dim, m.c_dim, m.w_dim, m.num_ws, m.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        m.w_avg_beta = kwargs.get("w_avg_beta", 0.998 if self.sg3 else 0.995)
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim:
            m.embed = self.fc(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(m, f"fc{idx}", self.fc(features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr))
        if num_ws is not None and m.w_avg_beta is not None:
            m.register_buffer("w_avg", torch.from_numpy(self.rnd.normal([w_dim], BIAS_STD)))
        return m

    def generator(self, **kwargs: Any) -> torch.nn.Module:
        m = self.module("Generator", (), kwargs)
        if self.sg3:
            synthesis_kwargs = {k: v for k, v in kwargs.items() if k not in (
                "z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")}
        else:
            synthesis_kwargs = kwargs.get("synthesis_kwargs", {})
        m.z_dim, m.c_dim, m.w_dim = kwargs["z_dim"], kwargs["c_dim"], kwargs["w_dim"]
        m.img_resolution, m.img_channels = kwargs["img_resolution"], kwargs["img_channels"]
        m.synthesis = self.synthesis(w_dim=m.w_dim, img_resolution=m.img_resolution, img_channels=m.img_channels,
                                     **synthesis_kwargs)
        m.num_ws = m.synthesis.num_ws
        m.mapping = self.mapping(z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, num_ws=m.num_ws,
                                 **kwargs.get("mapping_kwargs", {}))
        return m

    # Discriminator -----------------------------------------------------------------------------------------

    def discriminator_block(self, in_channels: int, tmp_channels: int, out_channels: int,
                            **kwargs: Any) -> torch.nn.Module:
        m = self.module("DiscriminatorBlock", (in_channels, tmp_channels, out_channels), kwargs)
        img_channels, conv_clamp = kwargs["img_channels"], kwargs.get("conv_clamp")
        use_fp16 = kwargs.get("use_fp16", False)
        m.in_channels, m.resolution, m.img_channels = in_channels, kwargs["resolution"], img_channels
        m.first_layer_idx, m.architecture, m.use_fp16 = kwargs["first_layer_idx"], "resnet", use_fp16
        m.channels_last = use_fp16 and kwargs.get("fp16_channels_last", False)
        m.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER))
        m.num_layers = 0
        common = {"trainable": True, "channels_last": m.channels_last}
        if in_channels == 0:
            m.fromrgb = self.conv(img_channels, tmp_channels, kernel_size=1, activation="lrelu",
                                  conv_clamp=conv_clamp, **common)
            m.num_layers += 1
        m.conv0 = self.conv(tmp_channels, tmp_channels, kernel_size=3, activation="lrelu", conv_clamp=conv_clamp,
                            **common)
        m.conv1 = self.conv(tmp_channels, out_channels, kernel_size=3, activation="lrelu", down=2,
                            resample_filter=RESAMPLE_FILTER, conv_clamp=conv_clamp, **common)
        m.skip = self.conv(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                           resample_filter=RESAMPLE_FILTER, **common)
        m.num_layers += 3
        return m

    def epilogue(self, in_channels: int, **kwargs: Any) -> torch.nn.Module:
        m = self.module("DiscriminatorEpilogue", (in_channels,), kwargs)
        conv_clamp = kwargs.get("conv_clamp")
        m.in_channels, m.cmap_dim, m.resolution = in_channels, kwargs["cmap_dim"], kwargs["resolution"]
        m.img_channels, m.architecture = kwargs["img_channels"], "resnet"
        group_size, num_channels = kwargs.get("mbstd_group_size", 4), kwargs.get("mbstd_num_channels", 1)
        m.mbstd = self.module("MinibatchStdLayer", (), {"group_size": group_size, "num_channels": num_channels})
        m.mbstd.group_size, m.mbstd.num_channels = group_size, num_channels
        m.conv = self.conv(in_channels + num_channels, in_channels, kernel_size=3, activation="lrelu",
                           conv_clamp=conv_clamp)
        m.fc = self.fc(in_channels * m.resolution**2, in_channels, activation="lrelu")
        m.out = self.fc(in_channels, m.cmap_dim or 1)
        return m

    def discriminator(self, **kwargs: Any) -> torch.nn.Module:
        m = self.module("Discriminator", (), kwargs)
        img_resolution, img_channels = kwargs["img_resolution"], kwargs["img_channels"]
        channel_base, channel_max = kwargs.get("channel_base", 32768), kwargs.get("channel_max", 512)
        num_fp16_res = kwargs.get("num_fp16_res", 4 if self.sg3 else 0)
        conv_clamp = kwargs.get("conv_clamp", 256 if self.sg3 else None)
        log2 = _log2(img_resolution)
        m.c_dim, m.img_resolution, m.img_resolution_log2 = kwargs["c_dim"], img_resolution, log2
        m.img_channels = img_channels
        m.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in m.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        common = {"img_channels": img_channels, "architecture": "resnet", "conv_clamp": conv_clamp}
        layer_idx = 0
        for res in m.block_resolutions:
            block = self.discriminator_block(channels[res] if res < img_resolution else 0, channels[res],
                                             channels[res // 2], resolution=res, first_layer_idx=layer_idx,
                                             use_fp16=res >= fp16_resolution, **kwargs.get("block_kwargs", {}),
                                             **common)
            setattr(m, f"b{res}", block)
            layer_idx += block.num_layers
        cmap_dim = (kwargs.get("cmap_dim") or channels[4]) if m.c_dim else 0
        if m.c_dim:
            m.mapping = self.mapping(z_dim=0, c_dim=m.c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                     **kwargs.get("mapping_kwargs", {}))
        m.b4 = self.epilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **kwargs.get("epilogue_kwargs", {}),
                             **common)
        return m


def stylegan2_pt(resolution: int, *, channel_base: int = 32768, channel_max: int = 512, mapping_layers: int = 8,
                 z_dim: int = 512, w_dim: int = 512, flavour: str = "ada", seed: int = 0, c_dim: int = 0,
                 embed_features: int | None = None, d_mapping_kwargs: dict | None = None,
                 cmap_dim: int | None = None) -> dict[str, torch.nn.Module]:
    """{"G", "D", "G_ema"}: StyleGAN2-ADA's Generator (skip) and Discriminator (resnet) module trees as a
    snapshot holds them (eval mode, no gradients), with NVIDIA's `_init_kwargs`: nested (mapping_kwargs,
    synthesis_kwargs; FP16 on the 4 highest resolutions, conv_clamp 256, as ADA's train.py sets) for "ada",
    flattened (StyleGAN3's train.py, whose defaults give the same FP16 and clamp) for "stylegan3". Resolution
    at least 8, as for `stylegan2_tf`.

    c_dim > 0: class-conditional, G's label embedding embed_features wide (None: MappingNetwork's w_dim), D's
    label mapping built with d_mapping_kwargs (None: {}, MappingNetwork's defaults, 8 layers at 0.01, as ADA's
    train.py leaves them; {"num_layers": 0, "lr_multiplier": 0.1, ...} is what legacy.py gives a TF D) to cmap_dim
    features (None: the 4x4 channels)."""
    _log2(resolution, minimum=8)
    if channel_base // resolution < 1:
        raise ValueError(f"channel_base {channel_base} gives {resolution}x{resolution} no channels: "
                         "NVIDIA's code cannot make this network")
    rnd = _Random(seed)
    builder = _Builder(rnd, flavour)
    common = {"c_dim": c_dim, "img_resolution": resolution, "img_channels": 3}
    mapping_kwargs = EasyDict(num_layers=mapping_layers)
    if embed_features is not None:
        mapping_kwargs.embed_features = embed_features
    d_mapping = EasyDict(d_mapping_kwargs or {})
    d_extra = {} if cmap_dim is None else {"cmap_dim": cmap_dim}
    if flavour == "ada":
        synthesis_kwargs = EasyDict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=4,
                                    conv_clamp=256)
        g_kwargs = dict(z_dim=z_dim, w_dim=w_dim, mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs,
                        **common)
        d_kwargs = dict(block_kwargs=EasyDict(), mapping_kwargs=d_mapping,
                        epilogue_kwargs=EasyDict(mbstd_group_size=4), channel_base=channel_base,
                        channel_max=channel_max, num_fp16_res=4, conv_clamp=256, **d_extra, **common)
    else:
        g_kwargs = dict(z_dim=z_dim, w_dim=w_dim, mapping_kwargs=mapping_kwargs, channel_base=channel_base,
                        channel_max=channel_max, fused_modconv_default="inference_only", **common)
        d_kwargs = dict(block_kwargs=EasyDict(freeze_layers=0), mapping_kwargs=d_mapping,
                        epilogue_kwargs=EasyDict(mbstd_group_size=4), channel_base=channel_base,
                        channel_max=channel_max, **d_extra, **common)
    G = builder.generator(**g_kwargs)
    D = builder.discriminator(**d_kwargs)
    G_ema = builder.generator(**g_kwargs)
    with torch.no_grad():  # the training loop copies G's buffers into G_ema
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)
    return {key: net.eval().requires_grad_(False) for key, net in (("G", G), ("D", D), ("G_ema", G_ema))}


def write_stylegan2_pt(path: str | Path, resolution: int, *, channel_base: int = 32768, channel_max: int = 512,
                       mapping_layers: int = 8, z_dim: int = 512, w_dim: int = 512, flavour: str = "ada",
                       seed: int = 0, c_dim: int = 0, embed_features: int | None = None,
                       d_mapping_kwargs: dict | None = None, cmap_dim: int | None = None) -> dict[str, torch.nn.Module]:
    """Writes `stylegan2_pt(...)` as a StyleGAN2-ADA / StyleGAN3 network snapshot; returns the modules."""
    nets = stylegan2_pt(resolution, channel_base=channel_base, channel_max=channel_max,
                        mapping_layers=mapping_layers, z_dim=z_dim, w_dim=w_dim, flavour=flavour, seed=seed,
                        c_dim=c_dim, embed_features=embed_features, d_mapping_kwargs=d_mapping_kwargs,
                        cmap_dim=cmap_dim)
    training_set_kwargs = {"class_name": "training.dataset.ImageFolderDataset", "path": "datasets/synthetic.zip",
                           "use_labels": c_dim > 0, "max_size": 1000, "xflip": False, "resolution": resolution}
    data = {"training_set_kwargs": training_set_kwargs, "G": nets["G"], "D": nets["D"], "G_ema": nets["G_ema"],
            "augment_pipe": None}
    dump_persistent(path, data)
    return nets
