"""Run: `python tests/nvidia/make_training_parity.py ADA_DIR OUT_DIR [KIND ...]` (OUT_DIR normally
tests/nvidia/training_parity; the kinds listed, default all).

Writes reference data of two training iterations of NVIDIA's StyleGAN2-ADA PyTorch code. Run it in an environment
that has torch, numpy, scipy, click, pillow, requests and psutil (the packages NVIDIA's code imports).

ADA_DIR is an unpacked copy of https://github.com/NVlabs/stylegan2-ada-pytorch (this script inserts it at the front of
sys.path and imports `training.networks`, `training.loss`, `torch_utils.misc`); OUT_DIR is where the files go. It is
not a pytest test and nothing in sgan imports it; none of NVIDIA's code is copied here, it is imported from ADA_DIR
at run time. It runs on CPU, where their custom ops take their reference paths (bias_act / upfirdn2d impl='ref',
conv2d_gradfix falls back to torch.nn.functional.conv2d).

It computes in float64, so that the reference is exact to far below float32's precision: a float32 run of either code
differs from the other wherever a leaky ReLU input lies within rounding of zero (its slope flips), which the
path-length penalty's Jacobian shows. Their networks cast activations to float32 (or fp16) in each block, so ADA_DIR
must be their code with that one change: `sed -i 's/torch.float32/torch.float64/g' ADA_DIR/training/networks.py`.
The networks are drawn in float32 (the snapshots' parameters are float32 values held in float64) and the inputs are
float32 arrays.

For each kind, `skip-resnet` (G 'skip', D 'resnet': StyleGAN2 config F), `resnet-skip` (G 'resnet', D 'skip') and
`orig-orig` (both of the original design, StyleGAN2 Fig. 7a), it:

* builds a 16x16 G (z/w 32, 2 mapping layers, 64 channels at most) and D under torch.manual_seed(0), then adds
  0.1 * randn to every parameter (G's, then D's) so that biases and noise strengths are nonzero;
* writes {kind}-before.pkl, a snapshot as their training_loop writes network-snapshot-*.pkl;
* runs two iterations (batch_idx 0 and 1, batch 8) of their training loop's phase logic (Gmain, Greg every 4,
  Dmain, Dreg every 16; lazy-regularisation Adam settings; nan_to_num of the gradients; the G_ema update) with
  their StyleGAN2Loss, fed fixed inputs written to {kind}-inputs.npz (reals, latents, per-layer noise, the
  path-length noise), and records every value their loss reports in {kind}-losses.json;
* writes {kind}-after1.pkl and {kind}-after2.pkl after each iteration.

`skip-resnet-ada` trains config F's pairing for five iterations with their augmentation pipe (see the README).
`skip-resnet-cond` is config F's pairing class-conditional with C_DIM classes (their label embedding in G's mapping
network; their projection D with its default 8-layer label mapping), trained like the first three kinds on the same
inputs plus fixed labels: the reals' and each phase's fakes' class indices, drawn by a RandomState of their own
(LABEL_SEED), written to its inputs.npz and fed one-hot as real_c and gen_c.

training_parity/README.md (written by hand) describes the files, the settings and the NVIDIA commit used.

Noise is fed without editing their code: for the duration of each call, SynthesisLayer.forward is wrapped so that the
layer's `noise_const` buffer holds the fixed (N,1,r,r) image and noise_mode is 'const' (their layer then adds
noise_const * noise_strength, broadcast over channels, exactly where 'random' would add randn * noise_strength);
the buffer is put back afterwards so the snapshots keep the original noise_const. The path-length noise
(`torch.randn_like(gen_img)` in their Greg phase) is replaced by the fixed tensor while that phase runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch

KINDS = {'skip-resnet': ('skip', 'resnet'), 'resnet-skip': ('resnet', 'skip'), 'orig-orig': ('orig', 'orig'),
         'skip-resnet-ada': ('skip', 'resnet'), 'skip-resnet-cond': ('skip', 'resnet')}
# The ADA kind: their augmentation pipe ('bgc') in front of D, p starting at ADA_P0 and adjusted after every
# ADA_INTERVAL iterations towards ADA_TARGET at a speed of ADA_KIMG, over ADA_ITERS iterations; the pipe's random
# draws come from torch's global generator seeded with AUG_SEED before the first iteration.
ADA_KIND = 'skip-resnet-ada'
ADA_ITERS = 5
ADA_P0 = 0.5
ADA_TARGET = 0.6
ADA_INTERVAL = 4
ADA_KIMG = 0.1
AUG_SEED = 77
BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1,
           hue=1, saturation=1)
# The class-conditional kind: config F's pairing with C_DIM classes (their label embedding in G's mapping network, their
# projection D with its default 8-layer label mapping), fed fixed one-hot labels drawn by a RandomState of its own
# (LABEL_SEED), so that the other inputs are the other kinds' arrays.
COND_KIND = 'skip-resnet-cond'
C_DIM = 3
LABEL_SEED = 2025
BATCH = 8
Z_DIM = 32
RES = 16
PHASES = [('Gmain', 'G', 1), ('Greg', 'G', 4), ('Dmain', 'D', 1), ('Dreg', 'D', 16)]  # order of training_loop.py
G_REG_INTERVAL = 4
D_REG_INTERVAL = 16
LR = 0.002
BETAS = (0.0, 0.99)
EMA_KIMG = 10
EMA_RAMPUP = 0.05
NUM_ITERS = 2
PL_BATCH_SHRINK = 2
LOSS_KWARGS = dict(style_mixing_prob=0, r1_gamma=1.0, pl_batch_shrink=PL_BATCH_SHRINK, pl_decay=0.01, pl_weight=2)
INPUT_SEED = 2024  # numpy RandomState seed of the fixed inputs (the same for both kinds)
NOISE_LAYERS = ['b4.conv1', 'b8.conv0', 'b8.conv1', 'b16.conv0', 'b16.conv1']


def g_kwargs(arch: str, c_dim: int = 0) -> dict:
    return dict(z_dim=Z_DIM, c_dim=c_dim, w_dim=32, img_resolution=RES, img_channels=3,
                mapping_kwargs={'num_layers': 2},
                synthesis_kwargs={'channel_base': 512, 'channel_max': 64, 'num_fp16_res': 0, 'conv_clamp': None,
                                  'architecture': arch})


def d_kwargs(arch: str, c_dim: int = 0) -> dict:
    return dict(c_dim=c_dim, img_resolution=RES, img_channels=3, architecture=arch, channel_base=512, channel_max=64,
                num_fp16_res=0, conv_clamp=None, epilogue_kwargs={'mbstd_group_size': 4})


def make_inputs(iterations: int) -> dict[str, np.ndarray]:
    """The fixed inputs of the iterations, float32, in a fixed drawing order (the first two are the same for any
    number)."""
    rnd = np.random.RandomState(INPUT_SEED)
    out: dict[str, np.ndarray] = {}
    for i in range(iterations):
        out[f'reals_{i}'] = rnd.uniform(-1, 1, size=(BATCH, 3, RES, RES)).astype(np.float32)
        for name, _module, interval in PHASES:
            if name == 'Dreg' or i % interval != 0:
                continue  # Dreg uses no latents and no G noise
            out[f'z_{i}_{name}'] = rnd.standard_normal((BATCH, Z_DIM)).astype(np.float32)
            n = BATCH // PL_BATCH_SHRINK if name == 'Greg' else BATCH
            for k, layer in enumerate(NOISE_LAYERS):
                r = int(layer.split('.')[0][1:])
                out[f'noise_{i}_{name}_{k}'] = rnd.standard_normal((n, 1, r, r)).astype(np.float32)
            if name == 'Greg':
                # Raw standard normal, before their division by sqrt(H*W).
                out[f'plnoise_{i}'] = rnd.standard_normal((n, 3, RES, RES)).astype(np.float32)
    return out


def make_labels(iterations: int) -> dict[str, np.ndarray]:
    """The conditional kind's fixed labels, as int64 class indices in [0, C_DIM), from their own RandomState: per
    iteration i the reals' `realc_{i}` (BATCH), then for each phase P that draws latents `genc_{i}_{P}` (BATCH; Greg
    uses rows 0..3, as its latents)."""
    rnd = np.random.RandomState(LABEL_SEED)
    out: dict[str, np.ndarray] = {}
    for i in range(iterations):
        out[f'realc_{i}'] = rnd.randint(0, C_DIM, size=BATCH).astype(np.int64)
        for name, _module, interval in PHASES:
            if name != 'Dreg' and i % interval == 0:
                out[f'genc_{i}_{name}'] = rnd.randint(0, C_DIM, size=BATCH).astype(np.int64)
    return out


def one_hot(labels: np.ndarray) -> torch.Tensor:
    """(BATCH,) class indices as their training loop's one-hot (BATCH, C_DIM) labels, in the run's precision."""
    return torch.nn.functional.one_hot(torch.from_numpy(labels), C_DIM).double()


def snapshot(G, D, G_ema) -> dict:
    """The dict training_loop.py pickles as network-snapshot-*.pkl (training_set_kwargs None, no augment_pipe), in
    float32 as their files are: the float64 run's parameters rounded once."""
    data = dict(training_set_kwargs=None)
    for name, module in [('G', G), ('D', D), ('G_ema', G_ema), ('augment_pipe', None)]:
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu().float()  # float32 files, as trained
        data[name] = module
    return data


def to_list(t) -> list[float]:
    """Per-sample values as Python (float64) floats."""
    return [float(v) for v in t.detach().cpu().to(dtype=torch.float64).flatten().numpy()]


def to_float64(module: torch.nn.Module) -> None:
    """Parameters and the w_avg / noise_const buffers in float64; the resampling filters stay float32, as their ops
    require (they cast them to the activations' dtype themselves)."""
    for p in module.parameters():
        p.data = p.data.double()
    for name, b in module.named_buffers():
        if not name.endswith('resample_filter'):
            b.data = b.data.double()


def fed(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).double()


class _Float64Draws:
    """Their augment module's `torch`, for a float64 run: every random draw is made in float32, as it is in a float32
    run (so the same seed gives the same values), then widened; everything else is torch's."""

    def __init__(self, torch_module):
        self._torch = torch_module

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def rand(self, *args, **kwargs):
        return self._torch.rand(*args, **kwargs, dtype=torch.float32).double()

    def randn(self, *args, **kwargs):
        return self._torch.randn(*args, **kwargs, dtype=torch.float32).double()


def float64_augment_pipe():
    """Their AugmentPipe with the 'bgc' preset, computing in float64 (p and the filter bank widened, default dtype
    float64 while it runs) on float32 draws."""
    from training import augment

    pipe = augment.AugmentPipe(**BGC).train().requires_grad_(False)
    pipe.p = torch.tensor(ADA_P0, dtype=torch.float64)
    pipe.Hz_fbank = pipe.Hz_fbank.double()  # (Hz_geom stays float32: their upfirdn2d casts it itself)
    forward = pipe.forward

    def forward64(images):
        default, augment.torch = torch.get_default_dtype(), _Float64Draws(torch)
        torch.set_default_dtype(torch.float64)
        try:
            return forward(images)
        finally:
            torch.set_default_dtype(default)
            augment.torch = torch

    pipe.forward = forward64
    return pipe


def run_kind(kind: str, out_dir: Path, inputs: dict[str, np.ndarray]) -> None:
    from torch_utils import misc
    from training import loss as loss_module
    from training import networks

    ada, cond = kind == ADA_KIND, kind == COND_KIND
    iterations = ADA_ITERS if ada else NUM_ITERS
    c_dim = C_DIM if cond else 0

    g_arch, d_arch = KINDS[kind]
    torch.manual_seed(0)
    G = networks.Generator(**g_kwargs(g_arch, c_dim))
    D = networks.Discriminator(**d_kwargs(d_arch, c_dim))
    with torch.no_grad():
        for p in list(G.parameters()) + list(D.parameters()):
            p.add_(0.1 * torch.randn_like(p))
    to_float64(G)
    to_float64(D)
    G = G.train().requires_grad_(False)
    D = D.train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()

    if not ada:  # (the ADA kind starts from skip-resnet's networks, built the same way)
        with open(out_dir / f'{kind}-before.pkl', 'wb') as f:
            pickle.dump(snapshot(G, D, G_ema), f)

    noise_layers = [G.synthesis.get_submodule(name) for name in NOISE_LAYERS]
    fed_noise: dict[int, torch.Tensor] = {}
    orig_forward = networks.SynthesisLayer.forward

    def forward_with_fed_noise(self, x, w, noise_mode='random', **kwargs):
        noise = fed_noise.get(id(self))
        if noise is None:
            raise RuntimeError('SynthesisLayer ran without fed noise')
        assert noise_mode == 'random'
        assert noise.shape == (x.shape[0], 1, self.resolution, self.resolution), (noise.shape, x.shape)
        saved = self.noise_const
        self.noise_const = noise
        try:
            return orig_forward(self, x, w, noise_mode='const', **kwargs)
        finally:
            self.noise_const = saved

    reports: list[dict] = []
    current: dict = {}

    def report(name, value):
        reports.append(dict(iteration=current['iteration'], phase=current['phase'], name=name, values=to_list(value)))
        return value

    stats_stub = types.SimpleNamespace(report=report)
    pl_noise: dict[str, torch.Tensor] = {}
    orig_randn_like = torch.randn_like

    def fixed_randn_like(t, *args, **kwargs):
        fixed = pl_noise.get('current')
        if fixed is None or args or kwargs or tuple(t.shape) != tuple(fixed.shape):
            raise RuntimeError(f'unexpected torch.randn_like{tuple(t.shape)} call')
        return fixed.clone()

    loss = loss_module.StyleGAN2Loss(device=torch.device('cpu'), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                                     augment_pipe=float64_augment_pipe() if ada else None, **LOSS_KWARGS)
    phases = []
    for name, module, reg_interval in [('G', G, G_REG_INTERVAL), ('D', D, D_REG_INTERVAL)]:
        mb_ratio = reg_interval / (reg_interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=LR * mb_ratio, betas=[b ** mb_ratio for b in BETAS], eps=1e-8)
        phases += [dict(name=name + 'main', module=module, opt=opt, interval=1)]
        phases += [dict(name=name + 'reg', module=module, opt=opt, interval=reg_interval)]
    assert [(p['name'], p['interval']) for p in phases] == [(n, iv) for n, _m, iv in PHASES]

    loss.pl_mean = torch.zeros([], dtype=torch.float64)  # their float32 zero, in the run's precision
    empty_c = torch.zeros([BATCH, 0])
    unused_c = torch.zeros([BATCH, c_dim], dtype=torch.float64)  # Dreg's gen_c, which their loss does not read
    unused_z = torch.zeros([BATCH, Z_DIM])  # Dreg: their loss does not touch gen_z there
    pl_means, augment_p = [], []
    cur_nimg = 0
    torch.manual_seed(AUG_SEED)  # the augment pipe's draws: nothing else in the loop draws from this generator
    networks.SynthesisLayer.forward = forward_with_fed_noise
    loss_module.training_stats = stats_stub
    try:
        for batch_idx in range(iterations):
            reals = fed(inputs[f'reals_{batch_idx}'])
            for phase in phases:
                if batch_idx % phase['interval'] != 0:
                    continue
                pname = phase['name']
                current.update(iteration=batch_idx, phase=pname)
                gen_z = fed(inputs[f'z_{batch_idx}_{pname}']) if pname != 'Dreg' else unused_z
                real_c, gen_c = empty_c, empty_c
                if cond:
                    real_c = one_hot(inputs[f'realc_{batch_idx}'])
                    gen_c = one_hot(inputs[f'genc_{batch_idx}_{pname}']) if pname != 'Dreg' else unused_c
                fed_noise.clear()
                if pname != 'Dreg':
                    for k, layer in enumerate(noise_layers):
                        fed_noise[id(layer)] = fed(inputs[f'noise_{batch_idx}_{pname}_{k}'])
                pl_noise.clear()
                if pname == 'Greg':
                    pl_noise['current'] = fed(inputs[f'plnoise_{batch_idx}'])
                phase['opt'].zero_grad(set_to_none=True)
                phase['module'].requires_grad_(True)
                torch.randn_like = fixed_randn_like
                try:
                    loss.accumulate_gradients(phase=pname, real_img=reals, real_c=real_c, gen_z=gen_z, gen_c=gen_c,
                                              sync=True, gain=phase['interval'])
                finally:
                    torch.randn_like = orig_randn_like
                phase['module'].requires_grad_(False)
                for param in phase['module'].parameters():
                    if param.grad is not None:
                        misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
                phase['opt'].step()

            # G_ema update, as training_loop.py (batch_size 8, cur_nimg before its increment).
            ema_nimg = EMA_KIMG * 1000
            ema_nimg = min(ema_nimg, cur_nimg * EMA_RAMPUP)
            ema_beta = 0.5 ** (BATCH / max(ema_nimg, 1e-8))
            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.lerp(p_ema, ema_beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)
            cur_nimg += BATCH
            pl_means.append(dict(iteration=batch_idx, pl_mean=float(loss.pl_mean),
                                 ema_beta=ema_beta))
            if ada and (batch_idx + 1) % ADA_INTERVAL == 0:
                # Their training loop's ADA step after batch_idx += 1: the mean sign of D(real) over the Dmain phases
                # since the last adjustment, compared with the target.
                since = [v for r in reports if r['name'] == 'Loss/signs/real' and r['phase'] == 'Dmain'
                         and r['iteration'] > batch_idx - ADA_INTERVAL for v in r['values']]
                adjust = np.sign(np.mean(since) - ADA_TARGET) * (BATCH * ADA_INTERVAL) / (ADA_KIMG * 1000)
                pipe = loss.augment_pipe
                pipe.p.copy_((pipe.p + adjust).max(misc.constant(0, dtype=pipe.p.dtype)))
            if ada:
                augment_p.append(dict(iteration=batch_idx, p=float(loss.augment_pipe.p)))
            if not ada or batch_idx + 1 == iterations:
                with open(out_dir / f'{kind}-after{batch_idx + 1}.pkl', 'wb') as f:
                    pickle.dump(snapshot(G, D, G_ema), f)
    finally:
        networks.SynthesisLayer.forward = orig_forward
        loss_module.training_stats = sys.modules['torch_utils.training_stats']
        torch.randn_like = orig_randn_like

    doc = dict(kind=kind, G_architecture=g_arch, D_architecture=d_arch, **(dict(c_dim=c_dim) if cond else {}),
               reports=reports, pl_mean=pl_means,
               **(dict(augment_p=augment_p) if ada else {}))
    (out_dir / f'{kind}-losses.json').write_text(json.dumps(doc, indent=1) + '\n')


def main(argv: list[str]) -> None:
    if len(argv) < 2 or any(k not in KINDS for k in argv[2:]):
        sys.exit(__doc__)
    ada_dir, out_dir, kinds = Path(argv[0]).resolve(), Path(argv[1]), argv[2:] or list(KINDS)
    sys.path.insert(0, str(ada_dir))
    torch.set_num_threads(1)  # bit-identical reruns
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        inputs = make_inputs(ADA_ITERS if kind == ADA_KIND else NUM_ITERS)
        if kind == COND_KIND:
            inputs.update(make_labels(NUM_ITERS))
        np.savez(out_dir / f'{kind}-inputs.npz', **inputs)
        run_kind(kind, out_dir, inputs)
    for path in sorted(out_dir.iterdir()):
        print(f'{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}  {path.stat().st_size:8d}  {path.name}')


if __name__ == '__main__':
    main(sys.argv[1:])
