"""What every NVIDIA format converts into, and the conventions the conversions share (docs/design.md §12).

A conversion gives sgan state dictionaries for G, G_ema and D (when the file has one that sgan can
represent) and the network configuration that rebuilds them (`model/checkpoint.py`'s NETWORK_KEYS).
The state dictionaries are checked by loading them into the networks that configuration builds, so a
file whose layout differs from what its names promised is refused rather than half converted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from stylegan_cli.core.errors import SganError
from stylegan_cli.model import checkpoint
from stylegan_cli.model.discriminator import D_MAPPING_LR_MUL
from stylegan_cli.model.layers import feature_maps, resolution_log2


class NotRepresentable(SganError):
    """A well-formed file that holds something sgan's networks cannot represent; exit status 1."""


@dataclass
class Converted:
    """NVIDIA's networks as sgan state dictionaries."""

    format: str  # e.g. "StyleGAN (TensorFlow)"
    network: dict  # the NETWORK_KEYS of the configuration that rebuilds the networks
    G: dict[str, torch.Tensor]
    G_ema: dict[str, torch.Tensor]
    D: dict[str, torch.Tensor] | None
    parameters: dict[str, int]  # learned parameters of G (and D) as sgan counts them, from `checked`
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def tensor(value: np.ndarray) -> torch.Tensor:
    """An array as a float32 tensor, sharing its memory where it already is a contiguous float32 array (the
    converters hand each array over once, so the weights are held once, not twice)."""
    array = np.ascontiguousarray(value, dtype=np.float32)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def tf_conv(weight: np.ndarray, flip: bool = False) -> torch.Tensor:
    """A TensorFlow conv kernel [k, k, in, out] as PyTorch's (out, in, k, k), optionally rotated by 180 degrees:
    TF's fused up-convolutions apply their kernel as a transposed convolution, which is nearest-neighbour
    upsampling followed by a correlation with the rotated kernel."""
    w = weight[::-1, ::-1] if flip else weight
    return tensor(w.transpose(3, 2, 0, 1))


def tf_dense(weight: np.ndarray) -> torch.Tensor:
    """A TensorFlow dense weight [in, out] as PyTorch's (out, in)."""
    return tensor(weight.T)


def infer_fmaps(channels: dict[int, int], what: str) -> tuple[int, int]:
    """(fmap_base, fmap_max) of sgan's channel formula (model/layers.py `feature_maps`) that gives the feature
    maps found at each resolution, or NotRepresentable when no pair does."""
    fmap_max = max(channels.values())
    below = sorted(r for r, c in channels.items() if c < fmap_max)
    fmap_base = channels[below[0]] * below[0] // 2 if below else fmap_max * max(channels) // 2
    if any(feature_maps(r, fmap_base, fmap_max) != c for r, c in channels.items()):
        found = ", ".join(f"{r}: {c}" for r, c in sorted(channels.items()))
        raise NotRepresentable(f"{what} has feature maps per resolution ({found}) that no channel formula "
                               f"min(fmap_base / 2^(log2(res) - 1), fmap_max) gives.")
    return fmap_base, fmap_max


def conditioning(what: str, c_dim: int = 0, embed_width: int = 0, w_dim: int = 0, d_labels: dict | None = None,
                 width4: int = 0) -> dict:
    """The network keys of class conditioning (c_dim, d_mapping_layers), after checking that sgan's networks hold the
    file's: NVIDIA's StyleGAN2-ADA mapping networks (training/networks.py MappingNetwork) embed the one-hot label with
    a linear layer, which sgan's generator makes w_dim wide; its discriminator maps the label to cmap_dim features
    (DiscriminatorEpilogue's projection), which sgan's makes the 4x4 features' width, through d_mapping_layers layers
    at D_MAPPING_LR_MUL. `d_labels`: the file's D mapping, {"c_dim", "cmap_dim", "layers", "lr_mul"}, or None for a
    file whose D maps no labels (its depth is then sgan's default, for a D that fine-tuning starts afresh)."""
    if c_dim and embed_width != w_dim:
        raise NotRepresentable(f"{what} embeds its labels in {embed_width} features, where sgan's conditional "
                               f"generator embeds them in W's {w_dim}.")
    if d_labels is None:
        return {"c_dim": c_dim, "d_mapping_layers": checkpoint.NETWORK_DEFAULTS["d_mapping_layers"]}
    if d_labels["c_dim"] != c_dim:
        raise NotRepresentable(f"{what} has a discriminator for {d_labels['c_dim']} classes and a generator for "
                               f"{c_dim}.")
    if d_labels["cmap_dim"] != width4:
        raise NotRepresentable(f"{what} maps the discriminator's labels to {d_labels['cmap_dim']} features, where "
                               f"sgan's discriminator maps them to its 4x4 features' {width4}.")
    if d_labels["layers"] and d_labels["lr_mul"] != D_MAPPING_LR_MUL:
        raise NotRepresentable(f"{what} has a discriminator label mapping with learning-rate multiplier "
                               f"{d_labels['lr_mul']:g}; sgan's is {D_MAPPING_LR_MUL:g}.")
    return {"c_dim": c_dim, "d_mapping_layers": d_labels["layers"]}


def resolutions(resolution: int) -> list[int]:
    """4, 8, ..., resolution."""
    return [2**i for i in range(2, resolution_log2(resolution) + 1)]


def checked(network: dict, states: dict[str, dict | None], what: str) -> dict[str, int]:
    """Loads each state dictionary into the network `network` builds (strictly), so that every tensor
    has its place and shape; NotRepresentable naming the first mismatch otherwise. Returns the learned
    parameter counts of the networks so built (G's for G and G_ema alike)."""
    counts = {}
    for name, state in states.items():
        if state is None:
            continue
        net = checkpoint.build_discriminator(network) if name == "D" else checkpoint.build_generator(network)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
            raise NotRepresentable(f"{what}: its {name} does not fit sgan's {network['arch']} network "
                                   f"({' '.join(first.split())[:300]}).") from None
        counts["D" if name == "D" else "G"] = sum(p.numel() for p in net.parameters())
    return counts
