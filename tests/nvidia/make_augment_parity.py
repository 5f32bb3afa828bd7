"""Run: `python tests/nvidia/make_augment_parity.py ADA_DIR OUT_FILE` (OUT_FILE normally
tests/nvidia/augment_parity/cases.npz).

Writes reference outputs of NVIDIA's augmentation pipeline (StyleGAN2-ADA PyTorch, `training/augment.py`) for
tests/nvidia/test_augment_parity.py. Run it in an environment with torch, numpy and scipy (which their module
imports). ADA_DIR is an unpacked copy of https://github.com/NVlabs/stylegan2-ada-pytorch; this script puts it at the
front of sys.path and imports `training.augment` from it: none of their code is copied here. On CPU their custom ops
take their reference paths (upfirdn2d's 'ref', plain conv2d and grid_sample).

For every preset of their train.py --augpipe and every single transform, all at p = 1, and for 'bgcfnc' at p = 0.5
(where each transform is drawn for some images and not others), it seeds torch's global generator with the case's
seed, augments the same float32 images (2 x 3 x 24 x 28, uniform in [-1, 1]: not square, and just large enough for
the image-space filter's padding), and saves the output and the gradient of sum(output * weights) with respect to
the images (weights: fixed normal draws). The presets' contents are spelled out here as sgan's PRESETS spells them;
the test checks that its table names the same transforms as the case.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

SHAPE = (2, 3, 24, 28)
PRESETS = {  # NVIDIA's train.py augpipe_specs, by transform name
    "blit": "xflip rotate90 xint", "geom": "scale rotate aniso xfrac",
    "color": "brightness contrast lumaflip hue saturation", "filter": "imgfilter", "noise": "noise",
    "cutout": "cutout", "bg": "xflip rotate90 xint scale rotate aniso xfrac",
    "bgc": "xflip rotate90 xint scale rotate aniso xfrac brightness contrast lumaflip hue saturation",
    "bgcf": "xflip rotate90 xint scale rotate aniso xfrac brightness contrast lumaflip hue saturation imgfilter",
    "bgcfn": "xflip rotate90 xint scale rotate aniso xfrac brightness contrast lumaflip hue saturation imgfilter "
             "noise",
    "bgcfnc": "xflip rotate90 xint scale rotate aniso xfrac brightness contrast lumaflip hue saturation imgfilter "
              "noise cutout",
}
SINGLE = PRESETS["bgcfnc"].split()


def cases() -> list[tuple[str, list[str], float]]:
    return ([(name, spec.split(), 1.0) for name, spec in PRESETS.items()] + [(t, [t], 1.0) for t in SINGLE]
            + [("bgcfnc@0.5", PRESETS["bgcfnc"].split(), 0.5)])


def main(ada_dir: str, out: str) -> None:
    sys.path.insert(0, ada_dir)
    from training.augment import AugmentPipe  # noqa: PLC0415 (NVIDIA's, from ADA_DIR)

    torch.set_num_threads(1)
    rng = np.random.RandomState(2025)
    images = rng.uniform(-1, 1, SHAPE).astype(np.float32)
    weights = rng.randn(*SHAPE).astype(np.float32)
    saved = {"images": images, "weights": weights}
    for k, (name, transforms, p) in enumerate(cases()):
        pipe = AugmentPipe(**{t: 1 for t in transforms})
        pipe.p.copy_(torch.tensor(p))
        x = torch.from_numpy(images).requires_grad_(True)
        torch.manual_seed(1000 + k)
        y = pipe(x)
        (grad,) = torch.autograd.grad((y * torch.from_numpy(weights)).sum(), x)
        saved[f"{name}/transforms"] = np.array(transforms)
        saved[f"{name}/p"] = np.float32(p)
        saved[f"{name}/seed"] = np.int64(1000 + k)
        saved[f"{name}/out"] = y.detach().numpy()
        saved[f"{name}/grad"] = grad.numpy()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **saved)
    print(f"wrote {len(cases())} cases to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
