"""NVIDIA's TensorFlow 1 pickles mapped onto sgan's networks (docs/design.md §12): Progressive GAN
(`karras2018iclr-*.pkl`), StyleGAN (`karras2019stylegan-*.pkl`) and StyleGAN2 / StyleGAN2-ADA's TF pickles.

Each holds (G, D, Gs): the trained generator, the discriminator and the moving average of G. Their
variables are named by TensorFlow scopes ("4x4/Conv/weight", "synthesis/16x16/Conv0_up/weight",
"ToRGB_lod0/bias"); kernels are [k, k, in, out] and dense weights [in, out]. The conventions each
format implies (gains, kernel rotations, style biases) are stated where they are applied.

Class-conditional networks are read as StyleGAN2-ADA's TF code (training/networks.py G_mapping, D_main) writes
them: G embeds the label ("mapping/LabelEmbed"), D maps it ("LabelEmbed", then "Mapping{i}") onto the features of
its "Output" layer. The other codes' conditional networks join the label to z before normalising the two together
(Progressive GAN's G_paper; StyleGAN's and StyleGAN2's original G_mapping, through "LabelConcat") and are refused.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from stylegan_cli.nvidia.networks import (
    Converted,
    NotRepresentable,
    checked,
    conditioning,
    infer_fmaps,
    resolutions,
    tensor,
    tf_conv,
    tf_dense,
)
from stylegan_cli.nvidia.unpickler import TFNetwork

PGGAN, STYLEGAN, STYLEGAN2 = "Progressive GAN (TensorFlow)", "StyleGAN (TensorFlow)", "StyleGAN2 (TensorFlow)"
_EMBED = "mapping/LabelEmbed/weight"  # [c_dim, embedding]: StyleGAN2-ADA's G_mapping embeds its labels


class _Vars:
    """A network's variables, handed over (TFNetwork.take_params) and taken one by one, so that each array is
    freed once converted; a missing one is NotRepresentable naming it."""

    def __init__(self, net: TFNetwork, what: str):
        self.params, self.what = net.take_params(), what

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.params:
            raise NotRepresentable(f"{self.what} has no variable {name}, which its layout needs.")
        return self.params.pop(name)

    def has(self, name: str) -> bool:
        return name in self.params


def convert(nets: tuple, what: str) -> Converted:
    """(G, D, Gs) of any of the TF formats, told apart by their variables."""
    G, D, Gs = nets
    params = Gs.params()  # references only: the arrays stay with Gs until a converter takes them
    shapes = {name: value.shape for name, value in params.items()}
    lod = float(np.asarray(params.get("lod", params.get("synthesis/lod", 0.0))))
    del params
    label_size = Gs.static_kwargs.get("label_size", 0) or 0
    stylegan2 = Gs.version == 4 and any(k.endswith("/mod_weight") for k in shapes)
    conditional = label_size or any("LabelConcat" in k or "LabelEmbed" in k for k in shapes)
    if conditional and not (stylegan2 and _EMBED in shapes):
        raise NotRepresentable(f"{what} is a conditional network whose labels join the latent before its "
                               f"normalisation; sgan imports conditional networks in StyleGAN2-ADA's layout only.")
    if lod != 0:
        raise NotRepresentable(f"{what} was saved while growing (lod {lod:g}); sgan imports finished networks.")
    if Gs.version == 2:
        return _pggan(G, D, Gs, shapes, what)
    if stylegan2:
        return _stylegan2(G, D, Gs, shapes, what)
    if any("/StyleMod/" in k for k in shapes):
        return _stylegan(G, D, Gs, shapes, what)
    raise NotRepresentable(f"{what} holds TensorFlow networks ({Gs.build_func_name}) of a layout sgan does not know.")


def _resolution(shapes: dict, what: str, prefix: str = "") -> int:
    found = [int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)x\1/", k))]
    if not found:
        raise NotRepresentable(f"{what} has no per-resolution layers that sgan recognises.")
    return max(found)


def _channels(shapes: dict, resolution: int, prefix: str) -> dict[int, int]:
    """The feature maps of each resolution: the output width of its last 3x3 conv ([k, k, in, out])."""
    return {r: shapes[f"{prefix}{r}x{r}/Conv1/weight" if r > 4 else f"{prefix}4x4/Conv/weight"][3]
            for r in resolutions(resolution)}


def _count(v: _Vars, name: str) -> int:
    """How many dense layers `name`.format(i) there are, counting from 0 ("mapping/Dense{}", "Mapping{}")."""
    n = 0
    while v.has(f"{name.format(n)}/weight"):
        n += 1
    return n


def _dense_layers(v: _Vars, embed: str, name: str, prefix: str) -> dict:
    """A mapping network as sgan's MappingNetwork under `prefix`: the label embedding `embed` (when the network
    has one; linear, gain 1) and the dense layers `name`.format(i)."""
    state = {}
    if v.has(f"{embed}/weight"):
        state[f"{prefix}.embed.weight"] = tf_dense(v(f"{embed}/weight"))
        state[f"{prefix}.embed.bias"] = tensor(v(f"{embed}/bias"))
    for i in range(_count(v, name)):
        state[f"{prefix}.layers.{i}.weight"] = tf_dense(v(f"{name.format(i)}/weight"))
        state[f"{prefix}.layers.{i}.bias"] = tensor(v(f"{name.format(i)}/bias"))
    return state


def _mapping(v: _Vars, what: str) -> tuple[dict, dict]:
    """StyleGAN's and StyleGAN2's mapping network ("mapping/Dense{i}", after StyleGAN2-ADA's "mapping/LabelEmbed"
    where conditional) as sgan's, and its shape; a conditional one's first layer reads z and the embedded label
    side by side (G_mapping)."""
    n = _count(v, "mapping/Dense{}")
    if n == 0:
        raise NotRepresentable(f"{what} has no mapping network sgan recognises.")
    state = _dense_layers(v, "mapping/LabelEmbed", "mapping/Dense{}", "mapping_network")
    first, last = state["mapping_network.layers.0.weight"], state[f"mapping_network.layers.{n - 1}.weight"]
    _, width = _embedding(state)
    shape = {"z_dim": first.shape[1] - width, "w_dim": last.shape[0], "mapping_layers": n,
             "mapping_width": first.shape[0] if n > 1 else 512}
    return state, shape


def _embedding(state: dict) -> tuple[int, int]:
    """(c_dim, width) of a converted generator's label embedding; (0, 0) for an unconditional one."""
    embed = state.get("mapping_network.embed.weight")
    return (0, 0) if embed is None else (embed.shape[1], embed.shape[0])


def _noise_maps(v: _Vars, count: int) -> list[torch.Tensor]:
    """The constant noise images "synthesis/noise{i}" ([1, 1, r, r]), coarse to fine."""
    return [tensor(v(f"synthesis/noise{i}")) for i in range(count)]


# ----------------------------------------------------------------------------------------------
# Progressive GAN (tfutil.Network, state version 2; networks.py G_paper / D_paper).


def _pggan(G: TFNetwork, D: TFNetwork, Gs: TFNetwork, shapes: dict, what: str) -> Converted:
    resolution = _resolution(shapes, what)
    fused = any(k.endswith("/Conv0_up/weight") for k in shapes)
    fmap_base, fmap_max = infer_fmaps(_channels(shapes, resolution, ""), what)
    latent = shapes["4x4/Dense/weight"][0] if "4x4/Dense/weight" in shapes else 512
    network = {"arch": "pggan", "resolution": resolution, "fmap_base": fmap_base, "fmap_max": fmap_max,
               "g_arch": "orig", "d_arch": "orig", "z_dim": latent, "w_dim": latent, "mapping_layers": 8,
               "mapping_width": 512, **conditioning(what)}

    def generator(net: TFNetwork) -> dict:
        v = _Vars(net, what)
        dense = v("4x4/Dense/weight")  # [z, 16 C]: reshaped channel-major to (C, 4, 4), as sgan's LatentInput
        state = {"w_avg": torch.zeros(latent), "blocks.0.input.dense.weight": tf_dense(dense),
                 "blocks.0.input.bias": tensor(v("4x4/Dense/bias"))}
        for k, r in enumerate(resolutions(resolution)):
            names = ["4x4/Conv"] if k == 0 else [f"{r}x{r}/Conv0_up" if fused else f"{r}x{r}/Conv0", f"{r}x{r}/Conv1"]
            for j, name in enumerate(names):
                weight = v(f"{name}/weight")
                if name.endswith("_up"):  # Progressive GAN stores its fused kernels [k, k, out, in], unlike StyleGAN
                    weight = weight.transpose(0, 1, 3, 2)
                state[f"blocks.{k}.layers.{j}.conv.weight"] = tf_conv(weight, flip=name.endswith("_up"))
                state[f"blocks.{k}.layers.{j}.conv.bias"] = tensor(v(f"{name}/bias"))
            _to_rgb(state, v, k, f"ToRGB_lod{len(resolutions(resolution)) - 1 - k}")
        return state

    notes = []
    if any(k.endswith("/Conv1/weight") for k in D.params()):
        # Without fusing, D_paper pools after the activation; sgan's blocks pool before bias and activation
        # (the fused layers' order), so this D would compute something else.
        d_state, notes = None, ["D left out: its separate (non-fused) downscaling applies the activation before "
                                "pooling, which sgan's discriminator does not; fine-tuning starts D afresh."]
    else:
        d_state = _pg_discriminator(_Vars(D, what), resolution, "4x4/Dense1")
    G_state, G_ema = generator(G), generator(Gs)
    parameters = checked(network, {"G": G_state, "G_ema": G_ema, "D": d_state}, what)
    return Converted(PGGAN, network, G_state, G_ema, d_state, parameters, notes)


def _to_rgb(state: dict, v: _Vars, k: int, name: str) -> None:
    state[f"blocks.{k}.to_rgb.conv.weight"] = tf_conv(v(f"{name}/weight"))
    state[f"blocks.{k}.to_rgb.bias"] = tensor(v(f"{name}/bias"))


def _pg_discriminator(v: _Vars, resolution: int, output: str) -> dict:
    """Progressive GAN's and StyleGAN's D ("FromRGB_lod{l}", "{r}x{r}/Conv0", "{r}x{r}/Conv1_down", "4x4/Conv",
    "4x4/Dense0", then `output`): their gains sit in the weights, as sgan's do."""
    levels = resolutions(resolution)
    state = {}
    for k, r in enumerate(levels):
        lod = len(levels) - 1 - k
        state[f"from_rgb.{k}.conv.weight"] = tf_conv(v(f"FromRGB_lod{lod}/weight"))
        state[f"from_rgb.{k}.conv.bias"] = tensor(v(f"FromRGB_lod{lod}/bias"))
        if k > 0:
            for j, name in enumerate((f"{r}x{r}/Conv0", f"{r}x{r}/Conv1_down")):
                state[f"blocks.{k - 1}.conv{j}.weight"] = tf_conv(v(f"{name}/weight"))
                state[f"blocks.{k - 1}.conv{j}.bias"] = tensor(v(f"{name}/bias"))
    state.update(_epilogue(v, output))
    return state


def _epilogue(v: _Vars, output: str) -> dict:
    return {"epilogue.conv.weight": tf_conv(v("4x4/Conv/weight")),
            "epilogue.conv.bias": tensor(v("4x4/Conv/bias")),
            "epilogue.fc.weight": tf_dense(v("4x4/Dense0/weight")),
            "epilogue.fc.bias": tensor(v("4x4/Dense0/bias")),
            "epilogue.out.weight": tf_dense(v(f"{output}/weight")),
            "epilogue.out.bias": tensor(v(f"{output}/bias"))}


# ----------------------------------------------------------------------------------------------
# StyleGAN (dnnlib Network, state version 3; networks_stylegan.py G_style / D_basic).


def _stylegan(G: TFNetwork, D: TFNetwork, Gs: TFNetwork, shapes: dict, what: str) -> Converted:
    resolution = _resolution(shapes, what, "synthesis/")
    fmap_base, fmap_max = infer_fmaps(_channels(shapes, resolution, "synthesis/"), what)
    # G_synthesis's fused_scale 'auto' fuses the up-convolution where the output is 128 or larger.
    kwargs = {**Gs.static_kwargs, **Gs.components["synthesis"].static_kwargs} if "synthesis" in Gs.components \
        else Gs.static_kwargs
    fused = kwargs.get("fused_scale", "auto")

    def generator(net: TFNetwork) -> tuple[dict, dict]:
        v = _Vars(net, what)
        state, shape = _mapping(v, what)
        state["w_avg"] = tensor(v("dlatent_avg"))
        state["blocks.0.input.const"] = tensor(v("synthesis/4x4/Const/const"))
        noise = iter(_noise_maps(v, 2 * len(resolutions(resolution))))
        for k, r in enumerate(resolutions(resolution)):
            names = ["4x4/Const", "4x4/Conv"] if k == 0 else [f"{r}x{r}/Conv0_up", f"{r}x{r}/Conv1"]
            for j, name in enumerate(names):
                p, s = f"synthesis/{name}", f"blocks.{k}.layers.{j}"
                if name != "4x4/Const":
                    up_fused = name.endswith("_up") and (fused is True or (fused == "auto" and r >= 128))
                    state[f"{s}.conv.weight"] = tf_conv(v(f"{p}/weight"), flip=up_fused)
                state[f"{s}.bias"] = tensor(v(f"{p}/bias"))
                state[f"{s}.noise.strength"] = tensor(v(f"{p}/Noise/weight"))
                state[f"{s}.noise.const"] = next(noise)
                # style_mod computes x * (y_s + 1) + y_b; sgan's AdaIN biases hold the 1 (SG App. C).
                C = state[f"{s}.bias"].shape[0]
                state[f"{s}.adain.affine.weight"] = tf_dense(v(f"{p}/StyleMod/weight"))
                state[f"{s}.adain.affine.bias"] = tensor(v(f"{p}/StyleMod/bias")) + torch.cat(
                    [torch.ones(C), torch.zeros(C)])
            _to_rgb(state, v, k, f"synthesis/ToRGB_lod{len(resolutions(resolution)) - 1 - k}")
        return state, shape

    G_state, shape = generator(G)
    G_ema, _ = generator(Gs)
    network = {"arch": "stylegan", "resolution": resolution, "fmap_base": fmap_base, "fmap_max": fmap_max,
               "g_arch": "orig", "d_arch": "orig", **shape, **conditioning(what)}
    d_state = _pg_discriminator(_Vars(D, what), resolution, "4x4/Dense1")
    parameters = checked(network, {"G": G_state, "G_ema": G_ema, "D": d_state}, what)
    return Converted(STYLEGAN, network, G_state, G_ema, d_state, parameters)


# ----------------------------------------------------------------------------------------------
# StyleGAN2 (dnnlib Network, state version 4; networks_stylegan2.py G_main / D_stylegan2), config F, and
# StyleGAN2-ADA's TF networks (training/networks.py G_main / D_main), conditional ones included.


def _stylegan2(G: TFNetwork, D: TFNetwork, Gs: TFNetwork, shapes: dict, what: str) -> Converted:
    resolution = _resolution(shapes, what, "synthesis/")
    levels = resolutions(resolution)
    if any(k.startswith("synthesis/ToRGB_lod") for k in shapes):
        raise NotRepresentable(f"{what} is a StyleGAN2 generator of the original (growing) design, which sgan's "
                               f"stylegan2 networks do not reproduce; it imports config E/F (skip or resnet).")
    g_arch = "resnet" if any(k.endswith("/Skip/weight") for k in shapes) else "skip"
    channels = _channels(shapes, resolution, "synthesis/")
    fmap_base, fmap_max = infer_fmaps(channels, what)

    def generator(net: TFNetwork) -> tuple[dict, dict]:
        v = _Vars(net, what)
        state, shape = _mapping(v, what)
        state["w_avg"] = tensor(v("dlatent_avg"))
        state["blocks.0.input.const"] = tensor(v("synthesis/4x4/Const/const"))
        noise = iter(_noise_maps(v, 2 * len(levels) - 1))
        for k, r in enumerate(levels):
            names = ["4x4/Conv"] if k == 0 else [f"{r}x{r}/Conv0_up", f"{r}x{r}/Conv1"]
            for j, name in enumerate(names):
                p, s = f"synthesis/{name}", f"blocks.{k}.layers.{j}"
                # TF's upsample_conv_2d rotates the kernel before its transposed convolution; sgan's (like
                # StyleGAN2-ADA's) does not, so the rotation is made here (ADA's legacy conversion does the same).
                state[f"{s}.conv.weight"] = tf_conv(v(f"{p}/weight"), flip=name.endswith("_up"))
                _modulation(state, v, p, f"{s}.conv")
                state[f"{s}.bias"] = tensor(v(f"{p}/bias"))
                state[f"{s}.noise.strength"] = tensor(v(f"{p}/noise_strength"))
                state[f"{s}.noise.const"] = next(noise)
            if g_arch == "skip" or k == len(levels) - 1:
                p = f"synthesis/{r}x{r}/ToRGB"
                state[f"blocks.{k}.to_rgb.conv.weight"] = tf_conv(v(f"{p}/weight"))
                _modulation(state, v, p, f"blocks.{k}.to_rgb.conv")
                state[f"blocks.{k}.to_rgb.bias"] = tensor(v(f"{p}/bias"))
            if g_arch == "resnet" and k > 0:
                state[f"blocks.{k}.skip.weight"] = tf_conv(v(f"synthesis/{r}x{r}/Skip/weight"))
        return state, shape

    G_state, shape = generator(G)
    G_ema, _ = generator(Gs)
    d_shapes, notes, d_labels = {k: a.shape for k, a in D.params().items()}, [], None
    d_arch = "resnet" if any(k.endswith("/Skip/weight") for k in d_shapes) else "skip"
    if any(k.startswith("FromRGB_lod") for k in d_shapes):
        d_state, d_arch = None, "resnet"
        notes.append("D left out: it is StyleGAN2's original (growing) discriminator, which sgan's stylegan2 "
                     "networks do not reproduce; fine-tuning starts a resnet D afresh.")
    else:
        v = _Vars(D, what)
        if v.has("LabelEmbed/weight"):  # D_main's label mapping, whose multiplier defaults to 0.1
            d_labels = {"c_dim": d_shapes["LabelEmbed/weight"][0], "cmap_dim": d_shapes["LabelEmbed/weight"][1],
                        "layers": _count(v, "Mapping{}"), "lr_mul": float(D.static_kwargs.get("mapping_lrmul", 0.1))}
        d_state = _sg2_discriminator(v, levels, d_arch)
    c_dim, width = _embedding(G_ema)
    labels = conditioning(what, c_dim=c_dim, embed_width=width, w_dim=shape["w_dim"], d_labels=d_labels,
                          width4=channels[4])
    network = {"arch": "stylegan2", "resolution": resolution, "fmap_base": fmap_base, "fmap_max": fmap_max,
               "g_arch": g_arch, "d_arch": d_arch, **shape, **labels}
    parameters = checked(network, {"G": G_state, "G_ema": G_ema, "D": d_state}, what)
    return Converted(STYLEGAN2, network, G_state, G_ema, d_state, parameters, notes)


def _modulation(state: dict, v: _Vars, p: str, s: str) -> None:
    """A modulated conv's style affine: TF adds 1 to its bias at run time (mod_bias + 1); sgan stores it."""
    state[f"{s}.affine.weight"] = tf_dense(v(f"{p}/mod_weight"))
    state[f"{s}.affine.bias"] = tensor(v(f"{p}/mod_bias")) + 1


def _sg2_discriminator(v: _Vars, levels: list[int], d_arch: str) -> dict:
    """D_stylegan2 / D_main ("{r}x{r}/FromRGB", "Conv0", "Conv1_down", "Skip", "4x4/Conv", "4x4/Dense0", "Output"),
    whose gains follow the biases, as sgan's StyleGAN2 layers apply them (EqualizedConv2d's `gain_after_bias`); a
    conditional D_main's label mapping ("LabelEmbed", "Mapping{i}") as sgan's D mapping, its "Output" giving the
    features the mapped label is projected onto."""
    state = _dense_layers(v, "LabelEmbed", "Mapping{}", "mapping")
    for k, r in enumerate(levels):
        if d_arch == "skip" or k == len(levels) - 1:
            i = k if d_arch == "skip" else 0
            state[f"from_rgb.{i}.conv.weight"] = tf_conv(v(f"{r}x{r}/FromRGB/weight"))
            state[f"from_rgb.{i}.conv.bias"] = tensor(v(f"{r}x{r}/FromRGB/bias"))
        if k > 0:
            b = f"blocks.{k - 1}"
            state[f"{b}.conv0.weight"] = tf_conv(v(f"{r}x{r}/Conv0/weight"))
            state[f"{b}.conv0.bias"] = tensor(v(f"{r}x{r}/Conv0/bias"))
            state[f"{b}.conv1.weight"] = tf_conv(v(f"{r}x{r}/Conv1_down/weight"))
            state[f"{b}.conv1.bias"] = tensor(v(f"{r}x{r}/Conv1_down/bias"))
            if d_arch == "resnet":
                state[f"{b}.skip.weight"] = tf_conv(v(f"{r}x{r}/Skip/weight"))
    state.update(_epilogue(v, "Output"))
    return state
