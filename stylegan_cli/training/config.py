"""The configuration of a training run: one dataclass, stored in train/config.json and in every
checkpoint, from which the networks are rebuilt (docs/design.md §6, §11).

It is built by keyword. Fields whose default depends on the architecture or the device start as None
and take their value in `resolved()`, so the stored configuration always holds the values used.
Where G or D has one of StyleGAN2's redesigns (§4.1, Figure 7: output skips or residual connections),
the defaults are StyleGAN2 config F's rather than StyleGAN's (`redesigned`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from stylegan_cli.model.checkpoint import NETWORK_KEYS

LOSSES = ("r1", "wgan-gp")
AUG_MODES = ("ada", "fixed", "none")
ADA_DEFAULT_BELOW = 100_000  # images: below this, stylegan2 runs augment by default (as StyleGAN2-ADA's users do)
# The augmentation settings and their flags: a resumed run keeps them, and a contradicting flag is refused.
AUG_FLAGS = {"aug": "--aug", "augpipe": "--augpipe", "ada_target": "--target", "aug_p": "--p",
             "ada_kimg": "--ada-kimg"}
# StyleGAN2 config F (§4.1, Figure 7, Table 1): its generator with output skips, a residual discriminator.
CONFIG_F = {"arch": "stylegan2", "g_arch": "skip", "d_arch": "resnet"}


@dataclass
class TrainConfig:
    """Everything that decides a training run."""

    resolution: int
    arch: str = "stylegan"
    g_arch: str = "orig"  # "skip" or "resnet": StyleGAN2's redesigns (§4.1, Figure 7), stylegan2 only
    d_arch: str = "orig"
    fmap_base: int | None = None  # None: 8192 (StyleGAN); 16384 when redesigned (StyleGAN2 config F)
    fmap_max: int = 512
    z_dim: int = 512  # the latent and style sizes and the mapping network's shape (SG App. C), the same as
    w_dim: int = 512  # NVIDIA's defaults; `sgan import` takes them from the file it reads
    mapping_layers: int = 8
    mapping_width: int = 512  # the hidden layers' width; the last layer's is w_dim
    c_dim: int = 0  # classes of a class-conditional run (--cond: the dataset's), 0: unconditional (design.md §15)
    class_names: list[str] = field(default_factory=list)  # their names, by label
    d_mapping_layers: int = 8  # the depth of a conditional D's label mapping (NVIDIA's PyTorch default)
    layer_noise: bool | None = None  # one noise strength per layer (SG2's) or per channel (SG's); None: by arch
    kimg: float = 25000.0
    lod_kimg: float = 600.0
    progressive: bool | None = None  # None: grow unless redesigned (see `grows`)
    batch: int | None = None  # None: per resolution (training.schedule); 32 when redesigned
    lr: float | None = None  # None: per resolution (training.schedule); 0.002 when redesigned
    loss: str = "r1"
    gamma: float = 10.0
    r1_every: int | None = None  # None: 1; 16 for stylegan2 (lazy regularisation, StyleGAN2 §3.1)
    pl_weight: float | None = None  # None: 0; 2 for stylegan2 (StyleGAN2 §3.2)
    pl_every: int = 4
    mixing: float | None = None  # None: 0.9 (StyleGAN §3.1); 0 for pggan, which has no style inputs
    mirror: bool = False
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05  # the half-life is at most this share of the images seen so far; 0: constant
    precision: str | None = None  # None: bf16 on GPUs that have it, else fp32
    compile: bool = False
    seed: int = 0
    snap_kimg: float = 100.0
    tick_kimg: float = 4.0
    image_ticks: int = 5
    keep: int | None = None
    data: str = ""
    workers: int = 2
    metrics: list[str] = field(default_factory=list)
    metrics_kimg: float | None = None  # None: at every snapshot
    # Discriminator augmentation (StyleGAN2-ADA; training/augment.py): "ada" (p adapted to ada_target), "fixed"
    # (p = aug_p) or "none"; None: ada for stylegan2 on fewer than ADA_DEFAULT_BELOW images, else none.
    aug: str | None = None
    augpipe: str = "bgc"  # a preset of training/augment.PRESETS
    ada_target: float = 0.6  # the target of the overfitting heuristic r_t = E[sign D(real)] (ADA §3.1)
    aug_p: float | None = None  # the probability of --aug fixed
    ada_kimg: float = 500.0  # p can move from 0 to 1 in this many kimg

    @property
    def redesigned(self) -> bool:
        """Whether G or D has one of StyleGAN2's redesigns (§4.1) rather than the original networks."""
        return self.g_arch != "orig" or self.d_arch != "orig"

    @property
    def grows(self) -> bool:
        """Progressive growing: as asked, else only for the original networks, since StyleGAN2's skip
        and residual designs replace growing (§4.1) and train at the target resolution from the start."""
        return not self.redesigned if self.progressive is None else self.progressive

    def resolved(self, device: torch.device, images: int | None = None) -> TrainConfig:
        """A copy with every arch-, device- or dataset-dependent default filled in (`images`: the dataset's size,
        which --aug's default depends on; None where there is no dataset, and then no augmentation by default)."""
        stylegan2 = self.arch == "stylegan2"
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        # StyleGAN2 config F's constants (NVIDIA's run_training.py, kept by StyleGAN2-ADA's "stylegan2"
        # configuration): fmap_base 16 << 10, i.e. ADA's channel_base 32768 (channels min(32768 / res, 512));
        # learning rate 0.002 and global minibatch 32 at every resolution.
        config_f = self.redesigned
        return replace(
            self,
            fmap_base=self.fmap_base or (16384 if config_f else 8192),
            progressive=self.grows,
            batch=self.batch or (32 if config_f else None),
            lr=self.lr or (0.002 if config_f else None),
            r1_every=self.r1_every if self.r1_every is not None else 16 if stylegan2 else 1,
            pl_weight=self.pl_weight if self.pl_weight is not None else 2.0 if stylegan2 else 0.0,
            mixing=self.mixing if self.mixing is not None else 0.0 if self.arch == "pggan" else 0.9,
            layer_noise=stylegan2 if self.layer_noise is None else self.layer_noise,
            precision=self.precision or ("bf16" if bf16 else "fp32"),
            aug=self.aug or ("ada" if stylegan2 and images is not None and images < ADA_DEFAULT_BELOW else "none"),
        )

    def network(self) -> dict:
        """The fields that shape the networks, as `checkpoint.build_generator` takes them."""
        return {k: getattr(self, k) for k in NETWORK_KEYS}
