"""`sgan sample`: uncurated samples from the moving-average generator (StyleGAN Figure 2, App. B).

One PNG per seed (`RUN/samples/seed0007.png`; `RUN/samples/NAME/` for a class, `--class NAME`), a grid with
`--grid COLSxROWS`, the latents with `--save-latents` (`RUN/samples/latents.npz`: z, w before truncation,
seeds), truncation with `--trunc` and `--trunc-cutoff` (the paper's Figure 2: psi 0.7 on the first 8 style
inputs, 4x4-32x32). PNGs are encoded and written on every core while the next batch renders, and the rate
reported (images/s, end to end).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Optional

import typer

from stylegan_cli.cli.options import (
    BatchOption,
    CkptOption,
    ClassOption,
    CutoffOption,
    GridScaleOption,
    JsonOption,
    NoiseMode,
    NoiseOption,
    OutOption,
    Precision,
    RunOption,
    TruncOption,
    check_cutoff,
    out_dir,
)
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.synthesis.generator import class_folder, load_generator
from stylegan_cli.synthesis.images import PngWriter, save_png, scaled_grid
from stylegan_cli.synthesis.latents import parse_latents
from stylegan_cli.synthesis.latents import save_latents as write_latents
from stylegan_cli.synthesis.render import noise_seed, render_batches, to_ws
from stylegan_cli.synthesis.truncation import truncate


def _parse_grid(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UsageError(f"--grid {text!r} must be COLUMNSxROWS, like 8x8.")
    return int(m.group(1)), int(m.group(2))


def sample(
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds to render: 0-63, 1,5,9 or 0-3,10; or latents as "
                                                       "file.npz, file.npz:i, or - (an .npz on stdin).")] = "0-15",
    grid: Annotated[Optional[str], typer.Option("--grid", show_default=False,
                                                help="Also write the images as one COLSxROWS grid, "
                                                     "e.g. 8x8 (filled row by row).")] = None,
    save_latents: Annotated[bool, typer.Option(
        "--save-latents", help="Write z, w and seeds to latents.npz (in RUN/samples or --out).")] = False,
    trunc: TruncOption = 1.0,
    trunc_cutoff: CutoffOption = None,
    noise_mode: NoiseOption = NoiseMode.const,
    precision: Annotated[Precision, typer.Option(
        "--precision", help="Autocast dtype of the synthesis network (bf16/fp16: faster on GPUs, images within "
                            "a level or so of fp32's).")] = Precision.fp32,
    batch: BatchOption = 32,
    ckpt: CkptOption = None,
    label: ClassOption = None,
    out: OutOption = None,
    grid_scale: GridScaleOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Render one image per seed with the newest checkpoint's moving-average generator."""
    run_dir = rundir.resolve_run(run)
    shape = _parse_grid(grid)
    loaded = load_generator(run_dir, ckpt, label)
    G = loaded.G
    folder = out_dir(run_dir, out, "samples")
    if loaded.label is not None and out is None:  # a class's samples in a folder of their own: RUN/samples/NAME
        folder = folder / class_folder(loaded.config, loaded.label)
    latents = parse_latents(seeds, G.z_dim)
    if shape is not None and shape[0] * shape[1] < len(latents):
        raise UsageError(f"--grid {grid} holds {shape[0] * shape[1]} images, fewer than the {len(latents)} seeds.")
    with rundir.stage(run_dir, writes=folder) as record:
        raw = to_ws(G, latents)
        check_cutoff(G, trunc_cutoff)
        noise_seeds = [noise_seed(latent, i) for i, latent in enumerate(latents)]
        batches = render_batches(G, truncate(G, raw, trunc, trunc_cutoff), batch, noise_mode.value,
                                 noise_seeds=noise_seeds, own_noise=[latent.noise for latent in latents],
                                 precision=precision.value, description="sample")
        paths = iter(folder / f"{latent.label}.png" for latent in latents)
        kept, start = [], time.perf_counter()
        with PngWriter() as pngs:  # each batch is encoded and written while the next one renders
            for images in batches:
                record.outputs += [str(pngs.write(next(paths), image)) for image in images]
                if shape is not None:
                    kept.extend(images)
        rate = len(latents) / (time.perf_counter() - start)
        if shape is not None:
            picture = scaled_grid(kept, cols=shape[0], scale=grid_scale)
            record.outputs.append(str(save_png(folder / "grid.png", picture)))
        if save_latents:
            record.outputs.append(str(write_latents(folder / "latents.npz", latents, raw)))
        err.print(f"{len(latents)} images at {G.resolution}x{G.resolution} from {loaded.ckpt} "
                  f"(kimg {loaded.kimg:.1f}), {rate:.1f} img/s written.")
        results(record.outputs, {"outputs": record.outputs, "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg,
                                 "img_per_s": float(f"{rate:.4g}")} if as_json else None)
