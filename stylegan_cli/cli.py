"""The `sgan` command: one Typer app whose subcommands are the pipeline's stages (DESIGN.md §2).

Each stage module defines its own Typer app (`prep.app`, `data.app`, ...); this module mounts
them, holds the options every stage shares, and turns failures into exit codes: 2 with one
sentence for bad usage, 1 with one sentence for run-time trouble (traceback with `--debug`).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

try:  # Typer >= 0.16 carries its own copy of Click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer on top of Click
    from click import exceptions as click_exceptions

from stylegan_cli import __version__
from stylegan_cli.errors import SganError

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


def power_of_two(minimum: int):
    """A Typer callback accepting a power of two of at least `minimum` (or no value)."""

    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and (value < minimum or value & (value - 1)):
            raise typer.BadParameter(f"{value} is not a power of two of at least {minimum}.")
        return value

    return check

_debug = False

app = typer.Typer(
    name="sgan",
    help="The StyleGAN family as a pipeline of stages that read and write one run directory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        print(f"sgan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for run-time failures.")] = False,
) -> None:
    global _debug
    _debug = debug


# The stages in the order `sgan --help` lists them: a module holds either a Typer `app` (a group
# of subcommands) or a `command` function (one command named after the module).
STAGES = ("prep", "data", "train", "sample", "truncate", "mix", "interpolate", "noise", "metrics", "classifiers", "bench")


def _mount() -> None:
    import importlib

    if app.registered_groups or app.registered_commands:
        return
    for name in STAGES:
        module = importlib.import_module(f"stylegan_cli.{name}")
        if hasattr(module, "app"):
            app.add_typer(module.app, name=name)
        else:
            app.command(name)(module.command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and maps failures to exit codes."""
    _mount()
    try:
        code = app(args=argv, prog_name="sgan", standalone_mode=False)
    except click_exceptions.UsageError as e:
        if type(e).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
            _fail(e.format_message())
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted.")
        sys.exit(130)
    except SganError as e:
        if _debug:
            traceback.print_exc()
        _fail(str(e))
        sys.exit(e.exit_code)
    except Exception as e:  # a bug: say so plainly, keep the traceback for --debug
        if _debug:
            traceback.print_exc()
        _fail(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)")
        sys.exit(1)
    if code == 130:  # Typer turns Ctrl-C inside a command into this status instead of raising
        _fail("interrupted.")
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    """One line on stderr, never wrapped, so scripts and people read the same sentence."""
    sys.stderr.write("sgan: " + " ".join(message.split()) + "\n")
