"""The options several commands share, defined once as Typer annotations."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from stylegan_cli.core.errors import UsageError
from stylegan_cli.model.generator import ARCHS, Generator
from stylegan_cli.training.config import LOSSES, PRECISIONS

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


# The choices of --arch, --loss and --precision, from the lists the library defines.
Arch = Enum("Arch", {name: name for name in ARCHS}, type=str)
Loss = Enum("Loss", {name.replace("-", "_"): name for name in LOSSES}, type=str)
Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)


class NoiseMode(str, Enum):
    const = "const"
    random = "random"
    none = "none"


CkptOption = Annotated[Optional[Path], typer.Option("--ckpt", help="Checkpoint to read (default: the run's newest).",
                                                    show_default=False)]
BatchOption = Annotated[int, typer.Option("--batch", min=1, help="Images per forward pass.")]
NoiseOption = Annotated[NoiseMode, typer.Option("--noise-mode", help="Per-layer noise: fixed, drawn per image "
                                                                     "from its seed, or off.")]
TruncOption = Annotated[float, typer.Option("--trunc", help="Truncation psi: w' = w_avg + psi (w - w_avg); 1 is off.")]
CutoffOption = Annotated[Optional[int], typer.Option("--trunc-cutoff", min=1, show_default=False,
                                                     help="Truncate only the first N style inputs (default: all).")]


def power_of_two(minimum: int):
    """A Typer callback accepting a power of two of at least `minimum` (or no value)."""

    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and (value < minimum or value & (value - 1)):
            raise typer.BadParameter(f"{value} is not a power of two of at least {minimum}.")
        return value

    return check


def check_cutoff(G: Generator, cutoff: int | None) -> None:
    """`--trunc-cutoff` (of every stage that truncates) against the generator's style inputs."""
    if cutoff is not None and cutoff > G.num_ws:
        raise UsageError(f"--trunc-cutoff {cutoff} is beyond this generator's {G.num_ws} style inputs.")
