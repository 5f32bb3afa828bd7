"""The options several commands share, defined once as Typer annotations."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from stylegan_cli.core import rundir
from stylegan_cli.core.device import PRECISIONS
from stylegan_cli.core.errors import UsageError
from stylegan_cli.model.discriminator import D_ARCHS
from stylegan_cli.model.generator import ARCHS, G_ARCHS, Generator
from stylegan_cli.projection.projector import SPACES
from stylegan_cli.training.config import CONFIG_F, LOSSES

RunOption = Annotated[
    Optional[Path],
    typer.Option("-r", "--run", help="Run directory (default: $SGAN_RUN, else the current directory).",
                 show_default=False),
]
DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="Dataset (an sgan LMDB) to use instead of RUN/data/dataset.lmdb.", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of paths.")]


# The choices of --arch, --g-arch, --d-arch, --loss, --precision and --space, from the lists the library defines.
Arch = Enum("Arch", {name: name for name in ARCHS}, type=str)
GArch = Enum("GArch", {name: name for name in G_ARCHS}, type=str)
DArch = Enum("DArch", {name: name for name in D_ARCHS}, type=str)
Loss = Enum("Loss", {name.replace("-", "_"): name for name in LOSSES}, type=str)
Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)
ProjectionSpace = Enum("ProjectionSpace", {name: name for name in SPACES}, type=str)


class NoiseMode(str, Enum):
    const = "const"
    random = "random"
    none = "none"


GArchOption = Annotated[GArch, typer.Option(
    "--g-arch", help="Generator design: --arch's own, growable (orig), or StyleGAN2's output skips or residual "
                     "blocks (stylegan2 only; §4.1, Figure 7).")]
DArchOption = Annotated[DArch, typer.Option(
    "--d-arch", help="Discriminator design: Progressive GAN's, growable (orig), or StyleGAN2's input skips or "
                     "residual blocks (stylegan2 only; §4.1, Figure 7).")]
SpaceOption = Annotated[ProjectionSpace, typer.Option(
    "--space", help="Where a projection searches (StyleGAN2 §5): w, one w for every style input; wplus, one w per "
                    "style input (closer reconstructions that mix less cleanly).")]
ConfigFOption = Annotated[bool, typer.Option(
    "--config-f", help="StyleGAN2 config F: --arch stylegan2 --g-arch skip --d-arch resnet.")]
CkptOption = Annotated[Optional[Path], typer.Option("--ckpt", help="Checkpoint to read (default: the run's newest).",
                                                    show_default=False)]
BatchOption = Annotated[int, typer.Option("--batch", min=1, help="Images per forward pass.")]
NoiseOption = Annotated[NoiseMode, typer.Option("--noise-mode", help="Per-layer noise: fixed, drawn per image "
                                                                     "from its seed, or off.")]
TruncOption = Annotated[float, typer.Option("--trunc", help="Truncation psi: w' = w_avg + psi (w - w_avg); 1 is off.")]
CutoffOption = Annotated[Optional[int], typer.Option("--trunc-cutoff", min=1, show_default=False,
                                                     help="Truncate only the first N style inputs (default: all).")]
OutOption = Annotated[Optional[Path], typer.Option(
    "--out", show_default=False, help="Folder to write into (default: the stage's own folder in the run, "
                                      "RUN/samples, RUN/mix, ...).")]
GridScaleOption = Annotated[Optional[int], typer.Option(
    "--grid-scale", min=1, show_default=False,
    help="Enlarge grids (and the GIF) by this whole factor, nearest neighbour; 1 keeps them 1:1 (default: "
         "grids of images under 128 px are enlarged to at least 512 px wide).")]


def out_dir(run_dir: Path, out: Path | None, stage_name: str) -> Path:
    """The folder a synthesis stage writes: --out, else its folder in the run; a file is a usage error."""
    folder = out if out is not None else rundir.stage_dir(run_dir, stage_name)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{'--out' if out is not None else 'The output folder'} {folder} is a file, not a folder.")
    return folder


def power_of_two(minimum: int):
    """A Typer callback accepting a power of two of at least `minimum` (or no value)."""

    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and (value < minimum or value & (value - 1)):
            raise typer.BadParameter(f"{value} is not a power of two of at least {minimum}.")
        return value

    return check


def architectures(ctx: typer.Context, config_f: bool = False, **given: Enum) -> dict[str, str]:
    """The values of --arch and of --g-arch/--d-arch (`given` by parameter name), or --config-f's, which
    those flags may repeat but not contradict; checked: the skip and residual designs are StyleGAN2's."""
    chosen = {key: value.value for key, value in given.items()}
    if config_f:
        for key, value in chosen.items():
            # Typer may carry its own copy of Click, so the source is compared by name.
            if ctx.get_parameter_source(key).name != "DEFAULT" and value != CONFIG_F[key]:
                raise UsageError(f"--config-f means --{key.replace('_', '-')} {CONFIG_F[key]}, not {value}.")
        chosen.update({key: CONFIG_F[key] for key in chosen})
    for key in ("g_arch", "d_arch"):
        if chosen.get(key, "orig") != "orig" and chosen["arch"] != "stylegan2":
            raise UsageError(f"--{key.replace('_', '-')} {chosen[key]} is a StyleGAN2 design (§4.1) and needs "
                             f"--arch stylegan2, not {chosen['arch']}.")
    return chosen


def check_cutoff(G: Generator, cutoff: int | None) -> None:
    """`--trunc-cutoff` (of every stage that truncates) against the generator's style inputs."""
    if cutoff is not None and cutoff > G.num_ws:
        raise UsageError(f"--trunc-cutoff {cutoff} is beyond this generator's {G.num_ws} style inputs.")
