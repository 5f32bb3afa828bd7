"""`sgan sample`: uncurated samples from the moving-average generator (StyleGAN Figure 2, App. B).

One PNG per seed (`RUN/samples/seed0007.png`), a grid with `--grid COLSxROWS`, the latents with
`--save-latents` (`RUN/samples/latents.npz`: z, w before truncation, seeds), truncation with `--trunc` and
`--trunc-cutoff` (the paper's Figure 2: psi 0.7 on the first 8 style inputs, 4x4-32x32).
"""

from __future__ import annotations

import re
from typing import Annotated, Optional

import typer

from stylegan_cli import generate, rundir
from stylegan_cli.cli import JsonOption, RunOption
from stylegan_cli.console import err, results
from stylegan_cli.errors import UsageError
from stylegan_cli.grid import image_grid, save_png
from stylegan_cli.latents import parse_latents


def _parse_grid(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UsageError(f"--grid {text!r} must be COLUMNSxROWS, like 8x8.")
    return int(m.group(1)), int(m.group(2))


def command(
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds to render: 0-63, 1,5,9 or 0-3,10; or latents as "
                                                       "file.npz, file.npz:i, or - (an .npz on stdin).")] = "0-15",
    grid: Annotated[Optional[str], typer.Option("--grid", help="Also write the images as one COLSxROWS grid, "
                                                               "e.g. 8x8 (filled row by row).", show_default=False)] = None,
    save_latents: Annotated[bool, typer.Option("--save-latents", help="Write z, w and seeds to "
                                                                      "RUN/samples/latents.npz.")] = False,
    trunc: generate.TruncOption = 1.0,
    trunc_cutoff: generate.CutoffOption = None,
    noise_mode: generate.NoiseOption = generate.NoiseMode.const,
    batch: generate.BatchOption = 32,
    ckpt: generate.CkptOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Render one image per seed with the newest checkpoint's moving-average generator."""
    run_dir = rundir.resolve_run(run)
    shape = _parse_grid(grid)
    loaded = generate.load_generator(run_dir, ckpt)
    G = loaded.G
    latents = parse_latents(seeds, G.z_dim)
    if shape is not None and shape[0] * shape[1] < len(latents):
        raise UsageError(f"--grid {grid} holds {shape[0] * shape[1]} images, fewer than the {len(latents)} seeds.")
    out = run_dir / "samples"
    with rundir.stage(run_dir) as record:
        raw = generate.to_ws(G, latents)
        ws = generate.truncate(G, raw, trunc, trunc_cutoff)
        noise_seeds = [l.seed if l.seed is not None else i for i, l in enumerate(latents)]
        images = generate.synthesize(G, ws, batch, noise_mode.value, noise_seeds=noise_seeds, description="sample")
        for latent, image in zip(latents, images):
            record.outputs.append(str(save_png(out / f"{latent.label}.png", image)))
        if shape is not None:
            record.outputs.append(str(save_png(out / "grid.png", image_grid(list(images), cols=shape[0]))))
        if save_latents:
            record.outputs.append(str(generate.save_latents(out / "latents.npz", latents, raw)))
        err.print(f"{len(images)} images at {G.resolution}x{G.resolution} from {loaded.ckpt} (kimg {loaded.kimg:.1f}).")
        results(record.outputs, {"outputs": record.outputs, "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg}
                if as_json else None)
