"""StyleGAN2-ADA's PyTorch pickles, and the StyleGAN2 networks of the StyleGAN3 repository, mapped onto sgan's
networks (docs/design.md §12).

The file is a dict {G, D, G_ema, augment_pipe, training_set_kwargs, ...} whose networks are
`torch_utils.persistence` objects (read as data by `unpickler.py`); their tensors carry the module
names of NVIDIA's training/networks.py ("mapping.fc0.weight", "synthesis.b64.conv0.affine.bias",
"b4.fc.weight"). Kernels and dense weights are already in PyTorch's layout, the up-convolutions
already apply their kernel as sgan's do, and the style biases already hold their initial 1. Class-conditional
networks (c_dim > 0) add the label embedding "mapping.embed" to G's mapping network and a mapping network of D's
own ("mapping.embed", "mapping.fc{i}"), whose cmap_dim features the epilogue's "b4.out" projects onto.
"""

from __future__ import annotations

import re

import torch

from stylegan_cli.model import checkpoint
from stylegan_cli.model.resample import fir_filter
from stylegan_cli.nvidia.networks import (
    Converted,
    NotRepresentable,
    checked,
    conditioning,
    infer_fmaps,
    resolutions,
)
from stylegan_cli.nvidia.unpickler import PersistentObject

FORMAT = "StyleGAN2 (PyTorch)"
MAPPING_LR_MUL = 0.01  # the only multiplier sgan's mapping network takes


def convert(data: dict, what: str) -> Converted:
    """The dict of a StyleGAN2-ADA / StyleGAN3-repository pickle."""
    G_ema = data.get("G_ema")
    if not isinstance(G_ema, PersistentObject):
        raise NotRepresentable(f"{what} is a dict without a G_ema network, so not a StyleGAN2-ADA or StyleGAN3 pickle.")
    G = data.get("G") if isinstance(data.get("G"), PersistentObject) else None
    D = data.get("D") if isinstance(data.get("D"), PersistentObject) else None
    tensors = G_ema.tensors()
    ema = {name: t.shape for name, t in tensors.items()}  # the layout, before the tensors are taken
    filters = [t for name, t in tensors.items() if name.endswith("resample_filter")]
    del tensors
    if any(re.match(r"synthesis\.(input|L\d+_)", k) for k in ema):
        raise NotRepresentable(f"{what} is a StyleGAN3 (alias-free, -t/-r) generator; sgan implements the StyleGAN, "
                               f"StyleGAN2 and Progressive GAN networks only.")
    lr_mul = _mapping_lr_mul(G_ema)
    if lr_mul != MAPPING_LR_MUL:
        raise NotRepresentable(f"{what} has a mapping network with learning-rate multiplier {lr_mul:g}; sgan's is "
                               f"{MAPPING_LR_MUL:g}.")
    blocks = sorted({int(m.group(1)) for k in ema if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    if not blocks:
        raise NotRepresentable(f"{what} holds a generator of a layout sgan does not know.")
    resolution = blocks[-1]
    if any(not torch.allclose(f.float(), fir_filter()) for f in filters):
        raise NotRepresentable(f"{what} resamples with a filter other than [1,3,3,1], the one sgan implements.")
    if all(f"synthesis.b{r}.torgb.weight" in ema for r in blocks):
        g_arch = "skip"
    elif any(k.endswith(".skip.weight") for k in ema):
        g_arch = "resnet"
    else:
        g_arch = "orig"
    channels = {r: ema[f"synthesis.b{r}.conv1.weight"][0] for r in blocks}
    fmap_base, fmap_max = infer_fmaps(channels, what)
    n = _count(ema, "mapping")
    first, last = ema["mapping.fc0.weight"], ema[f"mapping.fc{n - 1}.weight"]
    # A conditional mapping network reads z and the embedded label side by side (MappingNetwork.forward).
    embed = ema.get("mapping.embed.weight", (0, 0))
    shape = {"z_dim": first[1] - embed[0], "w_dim": last[0], "mapping_layers": n,
             "mapping_width": first[0] if n > 1 else 512}

    notes = []
    d_state, d_arch, d_labels = None, "resnet", None
    if D is not None:
        d_tensors = D.take_tensors()
        if "mapping.embed.weight" in d_tensors:
            d_embed = d_tensors["mapping.embed.weight"].shape
            d_labels = {"c_dim": d_embed[1], "cmap_dim": d_embed[0], "layers": _count(d_tensors, "mapping"),
                        "lr_mul": _mapping_lr_mul(D)}
        if any(k.endswith(".skip.weight") for k in d_tensors):
            d_state = _discriminator(d_tensors, resolution, "resnet")
        elif all(f"b{r}.fromrgb.weight" in d_tensors for r in blocks):
            d_state, d_arch = _discriminator(d_tensors, resolution, "skip"), "skip"
        else:
            d_state, d_arch = _discriminator(d_tensors, resolution, "orig"), "orig"
    else:
        notes.append("D left out: the file has none; fine-tuning starts D afresh.")
    labels = conditioning(what, c_dim=embed[1], embed_width=embed[0], w_dim=shape["w_dim"], d_labels=d_labels,
                          width4=channels[4])
    network = {"arch": "stylegan2", "resolution": resolution, "fmap_base": fmap_base, "fmap_max": fmap_max,
               "g_arch": g_arch, "d_arch": d_arch, "layer_noise": True, **shape, **labels}
    G_ema_state = _generator(G_ema.take_tensors(), resolution, g_arch, n)
    if G is None:
        G_state = {k: v.clone() for k, v in G_ema_state.items()}
        notes.append("G is the moving average too: the file has no separate training G.")
    else:
        G_state = _generator(G.take_tensors(), resolution, g_arch, n)
    if "orig" in (g_arch, d_arch):
        _fill_growing_layers(network, {"G": G_state, "G_ema": G_ema_state, "D": d_state})
        notes.append("The ToRGB/FromRGB layers below full resolution, which sgan's original design has for growing "
                     "and NVIDIA's lacks, are freshly initialised; training without growing never uses them.")
    parameters = checked(network, {"G": G_state, "G_ema": G_ema_state, "D": d_state}, what)
    return Converted(FORMAT, network, G_state, G_ema_state, d_state, parameters, notes)


def _fill_growing_layers(network: dict, states: dict[str, dict | None]) -> None:
    """Adds to each state the tensors it lacks, the lower resolutions' ToRGB/FromRGB of sgan's original design, as
    sgan initialises them (from a fixed seed, so an import is reproducible)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fresh = {"G": checkpoint.build_generator(network).state_dict(),
                 "D": checkpoint.build_discriminator(network).state_dict()}
    for name, state in states.items():
        if state is not None:
            template = fresh["D" if name == "D" else "G"]
            state.update({k: v for k, v in template.items() if k not in state and re.search(r"(to|from)_rgb", k)})


def _count(t: dict, prefix: str) -> int:
    """The layers of the mapping network under `prefix` ("mapping.fc{i}")."""
    return sum(1 for k in t if re.fullmatch(re.escape(prefix) + r"\.fc\d+\.weight", k))


def _mapping_lr_mul(net: PersistentObject) -> float:
    """The learning-rate multiplier of a network's mapping where the init kwargs record it (nested in StyleGAN2-ADA's,
    flattened in the StyleGAN3 repository's G; a default that was not passed is not stored, and MappingNetwork's
    is 0.01, for G and D alike)."""
    kwargs = net.init_kwargs
    mapping = kwargs.get("mapping_kwargs") or {}
    return float(mapping.get("lr_multiplier", kwargs.get("lr_multiplier", MAPPING_LR_MUL)))


def _take(t: dict[str, torch.Tensor], name: str, default: torch.Tensor | None = None) -> torch.Tensor:
    """A tensor handed over by `take_tensors`, removed from the dict (freed once converted) as a plain float32
    tensor; `default` where the network may lack it. KeyError for a missing one (read() makes it one sentence)."""
    value = t.pop(name) if default is None else t.pop(name, default)
    return value.detach().float()


def _mapping(t: dict[str, torch.Tensor], layers: int, prefix: str) -> dict:
    """A MappingNetwork ("mapping.embed" where conditional, "mapping.fc{i}") under sgan's names (`prefix`)."""
    state = {}
    if "mapping.embed.weight" in t:
        state[f"{prefix}.embed.weight"] = _take(t, "mapping.embed.weight")
        state[f"{prefix}.embed.bias"] = _take(t, "mapping.embed.bias")
    for i in range(layers):
        state[f"{prefix}.layers.{i}.weight"] = _take(t, f"mapping.fc{i}.weight")
        state[f"{prefix}.layers.{i}.bias"] = _take(t, f"mapping.fc{i}.bias")
    return state


def _generator(t: dict[str, torch.Tensor], resolution: int, g_arch: str, mapping_layers: int) -> dict:
    state = {"w_avg": _take(t, "mapping.w_avg"), **_mapping(t, mapping_layers, "mapping_network")}
    levels = resolutions(resolution)
    state["blocks.0.input.const"] = _take(t, "synthesis.b4.const").unsqueeze(0)
    for k, r in enumerate(levels):
        for j, name in enumerate(["conv1"] if k == 0 else ["conv0", "conv1"]):
            p, s = f"synthesis.b{r}.{name}", f"blocks.{k}.layers.{j}"
            state[f"{s}.conv.weight"] = _take(t, f"{p}.weight")
            state[f"{s}.conv.affine.weight"] = _take(t, f"{p}.affine.weight")
            state[f"{s}.conv.affine.bias"] = _take(t, f"{p}.affine.bias")
            state[f"{s}.bias"] = _take(t, f"{p}.bias")
            # use_noise=False networks have neither; a zero strength computes the same.
            state[f"{s}.noise.strength"] = _take(t, f"{p}.noise_strength", torch.zeros(()))
            state[f"{s}.noise.const"] = _take(t, f"{p}.noise_const", torch.zeros(r, r)).reshape(1, 1, r, r)
        if g_arch == "skip" or k == len(levels) - 1:
            p = f"synthesis.b{r}.torgb"
            for key in ("weight", "affine.weight", "affine.bias"):
                state[f"blocks.{k}.to_rgb.conv.{key}"] = _take(t, f"{p}.{key}")
            state[f"blocks.{k}.to_rgb.bias"] = _take(t, f"{p}.bias")
        if g_arch == "resnet" and k > 0:
            state[f"blocks.{k}.skip.weight"] = _take(t, f"synthesis.b{r}.skip.weight")
    return state


def _discriminator(t: dict[str, torch.Tensor], resolution: int, d_arch: str) -> dict:
    """ADA's D, whose bias_act applies the gains after the biases, as sgan's StyleGAN2 layers do
    (EqualizedConv2d's `gain_after_bias`). Its original design reads the image at full resolution only, where
    sgan's has a FromRGB per resolution for growing: the top one is NVIDIA's."""
    levels = resolutions(resolution)
    state = {}
    for k, r in enumerate(levels):
        if d_arch == "skip" or k == len(levels) - 1:  # resnet and orig read the image at full resolution only
            i = 0 if d_arch == "resnet" else k
            state[f"from_rgb.{i}.conv.weight"] = _take(t, f"b{r}.fromrgb.weight")
            state[f"from_rgb.{i}.conv.bias"] = _take(t, f"b{r}.fromrgb.bias")
        if k > 0:
            b = f"blocks.{k - 1}"
            state[f"{b}.conv0.weight"] = _take(t, f"b{r}.conv0.weight")
            state[f"{b}.conv0.bias"] = _take(t, f"b{r}.conv0.bias")
            state[f"{b}.conv1.weight"] = _take(t, f"b{r}.conv1.weight")
            state[f"{b}.conv1.bias"] = _take(t, f"b{r}.conv1.bias")
            if d_arch == "resnet":
                state[f"{b}.skip.weight"] = _take(t, f"b{r}.skip.weight")
    for key in ("conv", "fc", "out"):  # a conditional D's "out" gives cmap_dim features
        state[f"epilogue.{key}.weight"] = _take(t, f"b4.{key}.weight")
        state[f"epilogue.{key}.bias"] = _take(t, f"b4.{key}.bias")
    state.update(_mapping(t, _count(t, "mapping"), "mapping"))
    return state
