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
from stylegan_cli.training.augment import PRESETS
from stylegan_cli.training.config import ADA_DEFAULT_BELOW, AUG_FLAGS, AUG_MODES, CONFIG_F, LOSSES, TrainConfig

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
AugMode = Enum("AugMode", {name: name for name in AUG_MODES}, type=str)
AugPipe = Enum("AugPipe", {name: name for name in PRESETS}, type=str)
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
ClassOption = Annotated[Optional[str], typer.Option(
    "--class", show_default=False, help="Class to render, a number or a name, for a class-conditional network "
                                       "(required there for seeds; truncation then centres on the class's mean w).")]
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


# Discriminator augmentation (StyleGAN2-ADA), for `sgan train` and `sgan bench train`.
AugOption = Annotated[Optional[AugMode], typer.Option(
    "--aug", show_default=False,
    help="Augment what D sees (StyleGAN2-ADA): ada adapts p to --target, fixed holds it at --p (default: ada for "
         f"stylegan2 on fewer than {ADA_DEFAULT_BELOW:,} images, else none; the run's first line says which).")]
AugpipeOption = Annotated[AugPipe, typer.Option(
    "--augpipe", help="Augmentations (NVIDIA's presets): b(lit) g(eometric) c(olour) f(ilter) n(oise) c(utout).")]
TargetOption = Annotated[Optional[float], typer.Option(
    "--target", min=0, max=1, show_default=False,
    help="ADA's target for r_t = E[sign D(real)] (default 0.6).")]
POption = Annotated[Optional[float], typer.Option(
    "--p", min=0, max=1, show_default=False, help="The augmentation probability of --aug fixed.")]
AdaKimgOption = Annotated[Optional[float], typer.Option(
    "--ada-kimg", min=0.001, show_default=False,
    help="ADA's speed: p can go from 0 to 1 in this many kimg (default 500).")]


def augmentation(aug: Optional[Enum], augpipe: Enum, target: Optional[float], p: Optional[float],
                 ada_kimg: Optional[float]) -> dict:
    """The TrainConfig fields of the augmentation flags, refusing combinations that mean nothing (as NVIDIA's
    train.py does): --p without --aug fixed, --target or --ada-kimg without ada. --aug None is left to the
    configuration's default, which is ada or none, so --p then needs --aug fixed too."""
    mode = AugMode(aug).value if aug is not None else None
    if target is not None and target <= 0:
        raise UsageError(f"--target {target}: r_t lies in [-1, 1] and ADA's target in (0, 1].")
    if mode == "fixed" and p is None:
        raise UsageError("--aug fixed needs --p, the probability to augment with.")
    if p is not None and mode != "fixed":
        raise UsageError("--p is the probability of --aug fixed; pass --aug fixed with it.")
    if mode in ("fixed", "none") and (target is not None or ada_kimg is not None):
        raise UsageError(f"--target and --ada-kimg steer --aug ada; this run has --aug {mode}.")
    return {"aug": mode, "augpipe": AugPipe(augpipe).value, "aug_p": p,
            "ada_target": TrainConfig.ada_target if target is None else target,
            "ada_kimg": TrainConfig.ada_kimg if ada_kimg is None else ada_kimg}


def given_augmentation(ctx: typer.Context) -> set[str]:
    """The augmentation settings (TrainConfig fields) given on the command line."""
    return {field for field, flag in AUG_FLAGS.items()
            if ctx.get_parameter_source(flag.lstrip("-").replace("-", "_")).name != "DEFAULT"}
