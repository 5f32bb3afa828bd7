"""`sgan bench`: speed figures for BENCHMARKS.md, measured the same way every time (docs/design.md §8).

`bench train`, `bench generate`, `bench project` and `bench data` time the trainer's iteration,
generation, the projector's step and the LMDB loader after a warm-up, with device synchronisation;
FLOPs are counted by torch's flop formulas on the same work run eagerly. `bench prep` times sgan's
alignment against FFHQ's reference on the same landmarks. The measuring is in the `bench/` package;
these commands take the flags and print.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from stylegan_cli.bench.data import loader_figures
from stylegan_cli.bench.generate import generate_figures
from stylegan_cli.bench.prep import find_faces, prep_figures
from stylegan_cli.bench.project import project_figures
from stylegan_cli.bench.train import train_figures
from stylegan_cli.cli.options import (
    Arch,
    AugMode,
    AugPipe,
    AugpipeOption,
    ConfigFOption,
    DArchOption,
    DataOption,
    GArch,
    GArchOption,
    Precision,
    ProjectionSpace,
    RunOption,
    SpaceOption,
    architectures,
    power_of_two,
)
from stylegan_cli.core import rundir
from stylegan_cli.core.console import results
from stylegan_cli.core.device import default_device
from stylegan_cli.core.errors import UsageError
from stylegan_cli.data.dataset import Dataset
from stylegan_cli.training.config import TrainConfig

app = typer.Typer(help="Measure speed: figures for BENCHMARKS.md.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Also print the figures as one JSON document on stdout.")]
FmapBaseOption = Annotated[Optional[int], typer.Option("--fmap-base", min=16, show_default=False,
                                                       help="Capacity, as for `sgan train` (and its default).")]
FmapMaxOption = Annotated[int, typer.Option("--fmap-max", min=1, help="Most feature maps in any layer.")]
C = TrainConfig  # the defaults below are `sgan train`'s


def _print_figures(title: str, figures: dict, as_json: bool) -> None:
    table = Table(title=title, show_header=False)
    for key, value in figures.items():
        table.add_row(key, str(value))
    Console(stderr=True).print(table)
    if as_json:
        results([], figures)


def _capacity(networks: dict[str, str], resolution: int, fmap_base: int | None, device) -> int:
    """--fmap-base, or the one `sgan train` would give this generator (config F's for a skip or resnet one)."""
    return TrainConfig(resolution=resolution, **networks, fmap_base=fmap_base).resolved(device).fmap_base


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
    jobs, detect_rate = find_faces(src, landmarks)
    if not jobs:
        raise UsageError(f"No faces found under {src}.")
    figures = prep_figures(jobs * repeat, resolution, workers)
    if detect_rate is not None:  # landmarks were found by a detector, not read from a file
        figures[f"landmarks_{landmarks}_img_per_s_1core"] = round(detect_rate, 3)
    _print_figures("sgan bench prep", figures, as_json)


@app.command("train")
def bench_train(
    ctx: typer.Context,
    resolution: Annotated[int, typer.Option("--resolution", callback=power_of_two(8),
                                            help="Training resolution (fixed; no fade).")] = 256,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Minibatch.")] = 32,
    arch: Annotated[Arch, typer.Option("--arch", help="Generator architecture.")] = C.arch,
    g_arch: GArchOption = C.g_arch,
    d_arch: DArchOption = C.d_arch,
    config_f: ConfigFOption = False,
    precision: Annotated[Optional[Precision], typer.Option("--precision", show_default=False,
                                                                 help="Default: as `sgan train` chooses.")] = None,
    compile_: Annotated[bool, typer.Option("--compile",
                                           help="torch.compile G and D, as `sgan train --compile`.")] = False,
    fmap_base: FmapBaseOption = C.fmap_base,
    fmap_max: FmapMaxOption = C.fmap_max,
    r1_every: Annotated[Optional[int], typer.Option("--r1-every", min=1, show_default=False,
                                                    help="R1 every N steps (default as `sgan train`).")] = None,
    iters: Annotated[int, typer.Option("--iters", min=1, help="Timed iterations, rounded up to whole "
                                                              "regularisation periods.")] = 16,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed iterations first (compilation, "
                                                                "cuDNN autotuning).")] = 8,
    aug: Annotated[AugMode, typer.Option("--aug", help="Augment D's inputs as `sgan train --aug` (ada and fixed "
                                                       "cost the same: the pipeline runs whatever p is), and "
                                                       "report the augmentation's share of the step.")] = AugMode.none,
    augpipe: AugpipeOption = C.augpipe,
    profile: Annotated[Optional[Path], typer.Option("--profile", dir_okay=False, show_default=False,
                                                    help="Also write torch.profiler's table of one more iteration "
                                                         "(the 30 operators that took most device time) here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Steady-state training speed: s/kimg, img/s, peak memory and achieved TFLOP/s of the trainer's own
    iteration (a D step and a G step, R1 and path length at their schedule) on synthetic reals, and the
    operators it dispatches and the times the host waits for the device (counted eagerly)."""
    networks = architectures(ctx, config_f, arch=arch, g_arch=g_arch, d_arch=d_arch)
    device = default_device()
    # One fixed resolution and nothing on a schedule but the regularisers: only the iteration is timed.
    cfg = TrainConfig(resolution=resolution, **networks, fmap_base=fmap_base, fmap_max=fmap_max, kimg=1e9,
                      lod_kimg=1e9, progressive=False, batch=batch, r1_every=r1_every,
                      precision=precision.value if precision else None, compile=compile_, snap_kimg=1e9,
                      tick_kimg=1e9, image_ticks=1, workers=0, aug=AugMode(aug).value,
                      augpipe=AugPipe(augpipe).value, aug_p=0.0).resolved(device)
    _print_figures("sgan bench train", train_figures(cfg, device, iters, warmup, profile), as_json)


@app.command("generate")
def bench_generate(
    ctx: typer.Context,
    resolution: Annotated[int, typer.Option("--resolution", callback=power_of_two(4),
                                            help="Output resolution.")] = 1024,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per forward pass.")] = 32,
    arch: Annotated[Arch, typer.Option("--arch", help="Generator architecture.")] = C.arch,
    g_arch: GArchOption = C.g_arch,
    precision: Annotated[Precision, typer.Option("--precision", help="Autocast dtype.")] = Precision.fp32,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the synthesis network.")] = False,
    fmap_base: FmapBaseOption = C.fmap_base,
    fmap_max: FmapMaxOption = C.fmap_max,
    iters: Annotated[int, typer.Option("--iters", min=1, help="Timed batches.")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed batches first.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Generation speed: z -> mapping -> synthesis -> uint8 images on the device, in img/s."""
    networks = architectures(ctx, arch=arch, g_arch=g_arch)
    device = default_device()
    figures = generate_figures(
        **networks, resolution=resolution, batch=batch, precision=precision.value, compiled=compile_,
        fmap_base=_capacity(networks, resolution, fmap_base, device), fmap_max=fmap_max, iters=iters, warmup=warmup,
        device=device,
    )
    _print_figures("sgan bench generate", figures, as_json)


@app.command("project")
def bench_project(
    ctx: typer.Context,
    resolution: Annotated[int, typer.Option("--resolution", callback=power_of_two(16),
                                            help="Generator resolution.")] = 1024,
    arch: Annotated[Arch, typer.Option("--arch", help="Generator architecture (one with a mapping network).")] = (
        Arch.stylegan2
    ),
    g_arch: GArchOption = GArch.skip,
    space: SpaceOption = ProjectionSpace.w,
    fmap_base: FmapBaseOption = C.fmap_base,
    fmap_max: FmapMaxOption = C.fmap_max,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Timed steps.")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=1, help="Untimed steps first.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Projection speed (`sgan project`, StyleGAN2 §5): optimisation steps per second, LPIPS included."""
    networks = architectures(ctx, arch=arch, g_arch=g_arch)
    if networks["arch"] == "pggan":
        raise UsageError("--arch pggan has no mapping network to project into.")
    device = default_device()
    figures = project_figures(**networks, resolution=resolution, fmap_base=_capacity(networks, resolution, fmap_base,
                                                                                     device),
                              fmap_max=fmap_max, space=space.value, steps=steps, warmup=warmup, device=device)
    _print_figures("sgan bench project", figures, as_json)


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
    dataset = Dataset(rundir.dataset_path(rundir.resolve_run(run), data))
    _print_figures("sgan bench data", loader_figures(dataset, workers, batch, batches), as_json)
