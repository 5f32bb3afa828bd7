"""Run: `python tests/nvidia/run_nvidia_training.py ADA_DIR --data PNG_DIR --out OUT_DIR [settings]`.

Trains with NVIDIA's own StyleGAN2-ADA PyTorch training loop on CPU, with the settings of an `sgan train` command
spelled out one by one, so that both codes can be run side by side on one machine (BENCHMARKS.md, "Quality per kimg
beside NVIDIA's code"). It is not a pytest test and nothing in sgan imports it; none of NVIDIA's code is copied here:
ADA_DIR is an unpacked https://github.com/NVlabs/stylegan2-ada-pytorch (the runs in BENCHMARKS.md used commit
d72cc7d041b42ec8e806021a205ed9349f87c6a4), inserted at the front of sys.path, and `training.training_loop
.training_loop` is called as their train.py calls it. It needs torch, numpy, scipy, click, pillow, requests and psutil.

Their loop is written for CUDA; this driver changes, from the outside and only in this process, what CUDA-only calls
it makes: the loop module sees a `torch` whose `device(...)` is the CPU and whose `cuda` timing events and memory
counters do nothing, `Tensor.pin_memory` returns the tensor, and `Sampler.__init__` accepts the dataset that
their InfiniteSampler passes (current torch takes no argument there). On CPU their custom ops take their reference paths
by themselves (`bias_act`/`upfirdn2d` impl 'ref', `conv2d_gradfix` falls back to torch's conv2d). Everything else is
theirs: the dataset class and InfiniteSampler, the uint8 -> [-1, 1] conversion, the loss with style mixing and both
regularisers, the lazy-regularisation Adam settings, the moving average, their global-RNG draws seeded by
`--seed`, and their snapshot pickles (`network-snapshot-KKKKKK.pkl`, read by `sgan import`).

Settings and their sgan flags (the defaults are those of the issue 24 comparison, sgan's `--arch stylegan2
--no-progressive --fmap-base 2048 --fmap-max 128 --batch 32 --lr 0.002 --gamma 0.1 --r1-every 16 --pl-weight 2
--pl-every 4 --mixing 0.9 --precision fp32`, with sgan's defaults for the rest: 8 mapping layers of 512, z and w 512,
minibatch-std groups of 4, EMA half-life 10 kimg with ramp-up 0.05, no mirroring, no augmentation):

    --g-arch/--d-arch   orig | skip | resnet   (their `architecture`)
    --fmap-base N       their channel_base = 2 N (sgan's fmap_base is half of it; docs/design.md §6)
    --fmap-max N        their channel_max
    fp32 throughout: num_fp16_res 0 and conv_clamp None (sgan clamps only under bf16/fp16)
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path


class _NoCudaEvent:
    def record(self, *args):
        pass

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return 0.0


def _cpu_torch(torch):
    """A stand-in for the `torch` module as their training loop sees it: the CPU for `torch.device`, and CUDA's
    events and memory counters as no-ops; every other name is torch's own."""
    cuda = types.SimpleNamespace(Event=lambda **kw: _NoCudaEvent(), current_stream=lambda device=None: None,
                                 max_memory_allocated=lambda device=None: 0, reset_peak_memory_stats=lambda: None)

    class CpuTorch(types.ModuleType):
        def __getattr__(self, name):
            return getattr(torch, name)

    proxy = CpuTorch("torch")
    proxy.device = lambda *args, **kwargs: torch.device("cpu")
    proxy.cuda = cuda
    return proxy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("ada_dir", type=Path)
    p.add_argument("--data", type=Path, required=True, help="folder of the training images (PNG, one size)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--g-arch", default="orig")
    p.add_argument("--d-arch", default="orig")
    p.add_argument("--fmap-base", type=int, default=2048)
    p.add_argument("--fmap-max", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--r1-every", type=int, default=16)
    p.add_argument("--pl-weight", type=float, default=2.0)
    p.add_argument("--pl-every", type=int, default=4)
    p.add_argument("--mixing", type=float, default=0.9)
    p.add_argument("--ema-kimg", type=float, default=10.0)
    p.add_argument("--ema-rampup", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kimg", type=int, default=20)
    p.add_argument("--snap-kimg", type=int, default=5, help="a snapshot every N kimg (ticks of 1 kimg)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()

    sys.path.insert(0, str(a.ada_dir.resolve()))
    import dnnlib
    import torch
    from training import training_loop

    if a.threads:
        torch.set_num_threads(a.threads)
    training_loop.torch = _cpu_torch(torch)
    torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
    torch.utils.data.Sampler.__init__ = lambda self, *args: None  # their sampler passes the dataset, as torch<2.2 took
    a.out.mkdir(parents=True, exist_ok=True)

    E = dnnlib.EasyDict
    clamp = dict(num_fp16_res=0, conv_clamp=None)
    training_loop.training_loop(
        run_dir=str(a.out),
        training_set_kwargs=E(class_name="training.dataset.ImageFolderDataset", path=str(a.data), use_labels=False,
                              max_size=None, xflip=False),
        data_loader_kwargs=E(pin_memory=False, num_workers=0),
        G_kwargs=E(class_name="training.networks.Generator", z_dim=512, w_dim=512,
                   mapping_kwargs=E(num_layers=8),
                   synthesis_kwargs=E(channel_base=2 * a.fmap_base, channel_max=a.fmap_max, architecture=a.g_arch,
                                      **clamp)),
        D_kwargs=E(class_name="training.networks.Discriminator", architecture=a.d_arch, channel_base=2 * a.fmap_base,
                   channel_max=a.fmap_max, block_kwargs=E(), mapping_kwargs=E(),
                   epilogue_kwargs=E(mbstd_group_size=4), **clamp),
        G_opt_kwargs=E(class_name="torch.optim.Adam", lr=a.lr, betas=[0, 0.99], eps=1e-8),
        D_opt_kwargs=E(class_name="torch.optim.Adam", lr=a.lr, betas=[0, 0.99], eps=1e-8),
        loss_kwargs=E(class_name="training.loss.StyleGAN2Loss", r1_gamma=a.gamma, pl_weight=a.pl_weight,
                      style_mixing_prob=a.mixing),
        random_seed=a.seed, batch_size=a.batch, batch_gpu=a.batch, ema_kimg=a.ema_kimg,
        ema_rampup=a.ema_rampup or None, G_reg_interval=a.pl_every, D_reg_interval=a.r1_every,
        total_kimg=a.kimg, kimg_per_tick=1, image_snapshot_ticks=a.snap_kimg, network_snapshot_ticks=a.snap_kimg,
    )


if __name__ == "__main__":
    main()
