"""`sgan bench`: speed figures for BENCHMARKS.md, measured the same way every time.

`bench train`, `bench generate` and `bench data` time the trainer's iteration, generation and the
LMDB loader after a warm-up, with device synchronisation (DESIGN.md §8); FLOPs are counted by
torch's FlopCounterMode on the same work run eagerly.

`bench prep` times FFHQ's reference alignment (decode, `align_exact`, PNG at PIL's default
compression, as NVIDIA's download_ffhq.py does per photo) against sgan's per-photo work (decode,
`align_fast`, every level encoded), on one core and on all cores, with identical landmarks, and
reports how close the fast images are to the reference (PSNR).
"""

from __future__ import annotations

import io
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Annotated, Optional

import cv2
import numpy as np
import torch
import typer
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from stylegan_cli import align, rundir, train
from stylegan_cli.cli import DataOption, RunOption, power_of_two
from stylegan_cli.console import err, results
from stylegan_cli.dataset import Dataset, build_levels, encode_level
from stylegan_cli.errors import UsageError
from stylegan_cli.generate import quantize
from stylegan_cli.images import list_images, load_rgb
from stylegan_cli.landmarks import load_landmarks_file, make_detector
from stylegan_cli.networks import Generator

app = typer.Typer(help="Measure speed: figures for BENCHMARKS.md.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Also print the figures as one JSON document on stdout.")]


def _reference(path: Path, landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """FFHQ's per-photo work: PIL decode, the reference alignment, PNG at compress level 6."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    out = align.align_exact(rgb, align.face_quad(landmarks), resolution)
    Image.fromarray(out).save(io.BytesIO(), format="PNG")
    return out


def _sgan(path: Path, landmarks: np.ndarray, resolution: int) -> np.ndarray:
    """sgan's per-photo work after landmarks: decode, fast alignment, every level encoded."""
    out = align.align_fast(load_rgb(path), align.face_quad(landmarks), resolution)
    for img in build_levels(out).values():
        encode_level(img)
    return out


def _one_core(fn, jobs, resolution: int) -> tuple[float, list[np.ndarray]]:
    cv2.setNumThreads(1)
    start = time.perf_counter()
    outs = [fn(path, lm, resolution) for path, lm in jobs]
    return len(jobs) / (time.perf_counter() - start), outs


def _pool_job(args) -> None:
    cv2.setNumThreads(1)
    _sgan(*args)


def _all_cores(jobs, resolution: int, workers: int) -> float:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_pool_job, [(jobs[0][0], jobs[0][1], resolution)] * workers)  # warm-up: imports
        start = time.perf_counter()
        pool.map(_pool_job, [(p, lm, resolution) for p, lm in jobs], chunksize=1)
        return len(jobs) / (time.perf_counter() - start)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@app.command("prep")
def bench_prep(
    src: Annotated[Path, typer.Option("--src", help="Folder of face photos.", exists=True, file_okay=False)],
    landmarks: Annotated[str, typer.Option("--landmarks", help="dlib, fan, or an FFHQ-format .json file.")] = "dlib",
    resolution: Annotated[int, typer.Option("--resolution", help="Output size.")] = 1024,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the all-cores figure.")] = (
        multiprocessing.cpu_count()
    ),
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Pass over the photos this many times.")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Alignment throughput, sgan against FFHQ's reference algorithm, with the PSNR between them."""
    if landmarks in ("dlib", "fan"):
        detector = make_detector(landmarks)
        jobs, start = [], time.perf_counter()
        for path in list_images(src):
            faces = detector.faces(load_rgb(path))
            if faces:
                jobs.append((path, faces[0]))
        detect_rate = len(jobs) / (time.perf_counter() - start)
    else:
        jobs = [(src / e.file_path, e.landmarks) for e in load_landmarks_file(Path(landmarks))]
        detect_rate = None
    if not jobs:
        raise UsageError(f"No faces found under {src}.")
    jobs = jobs * repeat
    err.print(f"{len(jobs)} faces at {resolution}x{resolution}; timing the reference on one core...")
    ref_rate, ref_out = _one_core(_reference, jobs, resolution)
    err.print("timing sgan on one core...")
    fast_rate, fast_out = _one_core(_sgan, jobs, resolution)
    err.print(f"timing sgan on {workers} processes...")
    pool_rate = _all_cores(jobs, resolution, workers)
    psnrs = [_psnr(a, b) for a, b in zip(fast_out, ref_out)]
    figures = {
        "faces": len(jobs),
        "resolution": resolution,
        "reference_img_per_s_1core": round(ref_rate, 3),
        "sgan_img_per_s_1core": round(fast_rate, 3),
        "speedup_per_core": round(fast_rate / ref_rate, 2),
        f"sgan_img_per_s_{workers}proc": round(pool_rate, 3),
        "psnr_db_min": round(min(psnrs), 2),
        "psnr_db_median": round(float(np.median(psnrs)), 2),
    }
    if detect_rate is not None:  # landmarks were found by a detector, not read from a file
        figures[f"landmarks_{landmarks}_img_per_s_1core"] = round(detect_rate, 3)
    _print_figures("sgan bench prep", figures, as_json)


# --- GPU speed: training steps, generation, the loader -------------------------------------------


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds_per_call(fn, warmup: int, iters: int, device: torch.device) -> float:
    """Steady-state seconds per call of `fn`: `warmup` untimed calls, then `iters` timed ones between
    device synchronisations; peak memory is counted from the timed calls on."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters


def _peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class _FlopCounter(TorchDispatchMode):
    """Adds up the FLOPs of every operation torch's flop formulas know (matmuls, convolutions and
    their gradients). Unlike FlopCounterMode it tracks no modules, so double backward (R1, path
    length) is counted too."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def _count_flops(fn) -> int:
    """Floating-point operations of the matrix multiplications and convolutions `fn` runs (eagerly)."""
    with _FlopCounter() as counter:
        fn()
    return counter.total


def _sig(x: float) -> float:
    """x to 4 significant digits: small CPU figures stay readable, large GPU ones are not padded."""
    return float(f"{x:.4g}")


def _print_figures(title: str, figures: dict, as_json: bool) -> None:
    table = Table(title=title, show_header=False)
    for key, value in figures.items():
        table.add_row(key, str(value))
    Console(stderr=True).print(table)
    if as_json:
        results([], figures)


@app.command("train")
def bench_train(
    resolution: Annotated[int, typer.Option("--resolution", callback=power_of_two(8),
                                            help="Training resolution (fixed; no fade).")] = 256,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Minibatch.")] = 32,
    arch: Annotated[train.Arch, typer.Option("--arch", help="Generator architecture.")] = train.Arch.stylegan,
    precision: Annotated[Optional[train.Precision], typer.Option("--precision", show_default=False,
                                                                 help="Default: as `sgan train` chooses.")] = None,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile G and D, as `sgan train --compile`.")] = False,
    fmap_base: Annotated[int, typer.Option("--fmap-base", min=16, help="Capacity, as for `sgan train`.")] = 8192,
    fmap_max: Annotated[int, typer.Option("--fmap-max", min=1, help="Most feature maps in any layer.")] = 512,
    r1_every: Annotated[Optional[int], typer.Option("--r1-every", min=1, show_default=False,
                                                    help="R1 every N steps (default as `sgan train`).")] = None,
    iters: Annotated[int, typer.Option("--iters", min=1, help="Timed iterations, rounded up to whole "
                                                              "regularisation periods.")] = 16,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed iterations first (compilation, "
                                                                "cuDNN autotuning).")] = 8,
    as_json: JsonOption = False,
) -> None:
    """Steady-state training speed: s/kimg, img/s, peak memory and achieved TFLOP/s of the trainer's own
    iteration (a D step and a G step, R1 and path length at their schedule) on synthetic reals."""
    device = _device()
    env = train.Dist(device=device)
    cfg = train.build_config(resolution, arch.value, fmap_base, fmap_max, 1e9, 1e9, False, batch, None, "r1", 10.0,
                             r1_every, None, 4, None, False, 10.0, precision.value if precision else None, compile_,
                             0, 1e9, 1e9, 1, None, 0, "", device)
    # The trainer needs only the dataset's size here: the loader is measured by `bench data`.
    trainer = train.Trainer(cfg, Path("."), range(batch), env)
    period = max(cfg.r1_every, cfg.pl_every if cfg.pl_weight > 0 else 1)
    iters = -(-iters // period) * period
    reals = torch.randint(0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8, device=device)
    step = lambda: trainer.iteration(reals, resolution, 1.0)  # noqa: E731
    err.print(f"{arch.value} {resolution}x{resolution}, batch {batch}, {cfg.precision}"
              f"{', compiled' if compile_ else ''} on {device}: {warmup} warm-up + {iters} timed iterations")
    seconds = _seconds_per_call(step, warmup, iters, device)
    compiled = trainer.synthesis, trainer.D_plain
    trainer.synthesis, trainer.D_plain = trainer.G.synthesis, trainer.D  # FLOPs are counted eagerly
    flops = _count_flops(lambda: [step() for _ in range(period)]) / period
    trainer.synthesis, trainer.D_plain = compiled
    _print_figures("sgan bench train", {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "arch": arch.value, "resolution": resolution, "batch": batch, "precision": cfg.precision,
        "compile": compile_, "r1_every": cfg.r1_every, "pl_every": cfg.pl_every if cfg.pl_weight > 0 else None,
        "iterations": iters, "s_per_kimg": _sig(seconds / batch * 1000), "img_per_s": _sig(batch / seconds),
        "peak_memory_gib": _sig(_peak_memory_gib(device)), "gflop_per_iteration": _sig(flops / 1e9),
        "tflop_per_s": _sig(flops / seconds / 1e12),
    }, as_json)


@app.command("generate")
def bench_generate(
    resolution: Annotated[int, typer.Option("--resolution", callback=power_of_two(4), help="Output resolution.")] = 1024,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per forward pass.")] = 32,
    arch: Annotated[train.Arch, typer.Option("--arch", help="Generator architecture.")] = train.Arch.stylegan,
    precision: Annotated[train.Precision, typer.Option("--precision", help="Autocast dtype.")] = train.Precision.fp32,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the synthesis network.")] = False,
    fmap_base: Annotated[int, typer.Option("--fmap-base", min=16, help="Capacity, as for `sgan train`.")] = 8192,
    fmap_max: Annotated[int, typer.Option("--fmap-max", min=1, help="Most feature maps in any layer.")] = 512,
    iters: Annotated[int, typer.Option("--iters", min=1, help="Timed batches.")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed batches first.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Generation speed: z -> mapping -> synthesis -> uint8 images on the device, in img/s."""
    device = _device()
    G = Generator(arch.value, resolution, fmap_base=fmap_base, fmap_max=fmap_max).eval().requires_grad_(False)
    G.to(device)
    synthesis = torch.compile(G.synthesis) if compile_ else G.synthesis
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision.value)

    def generate(synth=synthesis) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            z = torch.randn(batch, G.z_dim, device=device)
            img = synth(G.mapping(z).unsqueeze(1).repeat(1, G.num_ws, 1), noise_mode="random")
            return quantize(img)

    seconds = _seconds_per_call(generate, warmup, iters, device)
    flops = _count_flops(lambda: generate(G.synthesis))
    _print_figures("sgan bench generate", {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "arch": arch.value, "resolution": resolution, "batch": batch, "precision": precision.value,
        "compile": compile_, "img_per_s": _sig(batch / seconds), "ms_per_batch": _sig(seconds * 1000),
        "peak_memory_gib": _sig(_peak_memory_gib(device)), "gflop_per_image": _sig(flops / batch / 1e9),
        "tflop_per_s": _sig(flops / seconds / 1e12),
    }, as_json)


@app.command("data")
def bench_data(
    run: RunOption = None,
    data: DataOption = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Loader processes, as `sgan train --workers`.")] = 2,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per batch.")] = 32,
    batches: Annotated[int, typer.Option("--batches", min=1, help="Timed batches per resolution.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Images per second the training loader delivers from the LMDB at every resolution, with
    `--workers` processes, pinned memory on GPU machines, and the trainer's shuffling and mirroring."""
    run_dir = rundir.resolve_run(run)
    dataset = Dataset(data if data is not None else run_dir / "data" / "dataset.lmdb")
    stream = train.ImageStream(len(dataset), 0, mirror=True)
    pin = torch.cuda.is_available()
    figures: dict = {"dataset": str(dataset.path), "images": len(dataset), "workers": workers, "batch": batch}
    for res in dataset.resolutions:
        if res < 8:
            continue
        loader = train.real_batches(dataset, stream, res, 0, batch, 0, 1, workers, pin)
        next(loader)  # workers started, first batches in flight
        start = time.perf_counter()
        for _ in range(batches):
            next(loader)
        figures[f"img_per_s_{res}"] = round(batches * batch / (time.perf_counter() - start), 1)
        del loader
    _print_figures("sgan bench data", figures, as_json)
