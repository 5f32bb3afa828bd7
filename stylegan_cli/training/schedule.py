"""The growth schedule (Progressive GAN §3, as StyleGAN runs it) and the per-resolution minibatch and
learning rate of StyleGAN's FFHQ configuration.

The first level trains for `lod_kimg` thousand images, then each further level fades in over
`lod_kimg` (alpha 0 to 1, the real images blended the same way) and stabilises for as long.
"""

from __future__ import annotations

import math

from stylegan_cli.training.config import TrainConfig

# StyleGAN's FFHQ schedule (8 GPUs): global minibatch and learning rate per resolution.
BATCH_BY_RES = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}
BATCH_DEFAULT = 32
LR_BY_RES = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}
LR_DEFAULT = 0.001


def levels(cfg: TrainConfig, start: int) -> list[int]:
    """The resolutions trained, from `start` up; only the target one without growing (`TrainConfig.grows`)."""
    if not cfg.grows:
        return [cfg.resolution]
    return [2**k for k in range(int(math.log2(start)), int(math.log2(cfg.resolution)) + 1)]


def phase(nimg: int, cfg: TrainConfig, start: int) -> tuple[int, float]:
    """(resolution, alpha) after `nimg` images: stabilise the first level, then fade in and
    stabilise each next one, `lod_kimg` thousand images each (Progressive GAN §3)."""
    lv = levels(cfg, start)
    kimg = nimg / 1000.0
    if len(lv) == 1 or kimg < cfg.lod_kimg:
        return lv[0], 1.0
    t = kimg - cfg.lod_kimg
    i = int(t // (2 * cfg.lod_kimg)) + 1
    if i >= len(lv):
        return lv[-1], 1.0
    return lv[i], min((t - (i - 1) * 2 * cfg.lod_kimg) / cfg.lod_kimg, 1.0)


def batch_size(cfg: TrainConfig, res: int) -> int:
    return cfg.batch or BATCH_BY_RES.get(res, BATCH_DEFAULT)


def learning_rate(cfg: TrainConfig, res: int) -> float:
    return cfg.lr or LR_BY_RES.get(res, LR_DEFAULT)
