"""`sgan truncate`: the truncation trick in W (StyleGAN §2.1, App. B, Figure 8), drawn and re-centred by
`synthesis/truncation.py`.

`--seeds S --psi P` draws the sweep: a row per seed, a column per psi, each cell
w' = w_avg + psi (w - w_avg) (on the first `--trunc-cutoff` style inputs only, when given).
Files in RUN/truncate/: grid.png, every cell as seedSSSS-psiP.png (P printed with at least two
decimals and as many as it takes to be exact: seed0001-psi0.70.png, seed0001-psi-0.50.png), and
latents.npz holding each seed's z and untruncated w.

`--compute-avg` re-estimates the centre of mass of W from `--samples` latents and stores it beside the
checkpoint (`<ckpt>.w_avg.npy`), where every later stage finds it instead of the average tracked in training.
"""

from __future__ import annotations

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
    RunOption,
    check_cutoff,
    out_dir,
)
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.synthesis import truncation
from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.latents import parse_floats, parse_seeds

FIGURE8_PSI = "1,0.7,0.5,0,-0.5,-1"


def truncate(
    seeds: Annotated[Optional[str], typer.Option("--seeds", show_default=False,
                                                 help="Seeds, one grid row each: 1-6, 1,5,9 or 0-3,10.")] = None,
    psi: Annotated[str, typer.Option("--psi", help="Truncation psi values, one grid column each; the "
                                                   "default is the paper's Figure 8.")] = FIGURE8_PSI,
    trunc_cutoff: CutoffOption = None,
    compute_avg: Annotated[bool, typer.Option("--compute-avg", help="Re-estimate the centre of mass of W and "
                                              "store it beside the checkpoint for every later stage.")] = False,
    samples: Annotated[Optional[int], typer.Option("--samples", min=1, show_default=False,
                                                   help=f"Latents to average with --compute-avg "
                                                        f"(default {truncation.AVG_SAMPLES}).")] = None,
    noise_mode: NoiseOption = NoiseMode.const,
    batch: BatchOption = 32,
    ckpt: CkptOption = None,
    label: ClassOption = None,
    out: OutOption = None,
    grid_scale: GridScaleOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Truncation sweep (StyleGAN Figure 8): a row per seed, a column per psi; or --compute-avg.

    Cells are written as seedSSSS-psiP.png (seed0001-psi0.70.png, seed0001-psi-0.50.png) next to
    grid.png and latents.npz in RUN/truncate/ (or --out)."""
    if seeds is None and not compute_avg:
        raise UsageError("Give --seeds (and --psi) to draw a truncation sweep, --compute-avg to re-estimate "
                         "the average w, or both.")
    if samples is not None and not compute_avg:
        raise UsageError("--samples only applies with --compute-avg.")
    if compute_avg and label is not None:
        raise UsageError("--compute-avg stores the centre of all of W beside the checkpoint; a class's own centre is "
                         "computed whenever --class is given, so leave out one of them.")
    seed_list = parse_seeds(seeds) if seeds is not None else []
    psis = [p + 0.0 for p in parse_floats(psi, "--psi")]  # + 0.0 turns -0.0 into 0.0 for file names
    run_dir = rundir.resolve_run(run)
    folder = out_dir(run_dir, out, "truncate")
    loaded = load_generator(run_dir, ckpt, label)
    G = loaded.G
    check_cutoff(G, trunc_cutoff)
    with rundir.stage(run_dir, writes=folder) as record:
        summary: dict = {"outputs": record.outputs, "checkpoint": str(loaded.ckpt), "kimg": loaded.kimg}
        if compute_avg:
            path = truncation.store_w_avg(G, loaded.ckpt, samples or truncation.AVG_SAMPLES)
            record.outputs.append(str(path))
            summary["w_avg"] = str(path)
        if seed_list:
            summary.update(truncation.sweep(G, seed_list, psis, trunc_cutoff, noise_mode.value, batch,
                                            folder, record.outputs, grid_scale))
            err.print(f"{len(seed_list)} seeds x {len(psis)} psi at {G.resolution}x{G.resolution} from "
                      f"{loaded.ckpt} (kimg {loaded.kimg:.1f}).")
        results(record.outputs, summary if as_json else None)

