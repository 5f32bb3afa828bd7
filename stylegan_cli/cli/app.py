"""The `sgan` command (docs/design.md §2, §10): one Typer app, the table of its commands, and the one
place where failures become exit statuses: 2 with one sentence for bad usage, 1 with one sentence for
run-time trouble (traceback with `--debug`), 128 + N when signal N stopped the stage.

Each command lives in its own module of this package (`cli/train.py`, `cli/mix.py`, ...); `_mount`
below is the command table that wires them in.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

try:  # Typer >= 0.16 carries its own copy of Click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer on top of Click
    from click import exceptions as click_exceptions

from stylegan_cli import __version__
from stylegan_cli.core import signals
from stylegan_cli.core.errors import SganError

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


def _mount() -> None:
    """Wires every command into the app, in the order `sgan --help` lists them: the command table."""
    if app.registered_groups or app.registered_commands:
        return
    from stylegan_cli.cli import (
        bench,
        classifiers,
        data,
        import_network,
        interpolate,
        metrics,
        mix,
        models,
        noise,
        prep,
        project,
        report,
        sample,
        train,
        truncate,
    )

    app.add_typer(prep.app, name="prep")
    app.add_typer(data.app, name="data")
    app.command("models")(models.models)
    app.command("import")(import_network.import_network)
    app.command("train")(train.train)
    app.command("sample")(sample.sample)
    app.command("truncate")(truncate.truncate)
    app.command("mix")(mix.mix)
    app.command("interpolate")(interpolate.interpolate)
    app.command("noise")(noise.noise)
    app.command("project")(project.project)
    app.command("metrics")(metrics.metrics)
    app.command("report")(report.report)
    app.add_typer(classifiers.app, name="classifiers")
    app.add_typer(bench.app, name="bench")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and maps failures to exit codes."""
    _mount()
    try:
        with signals.raising():
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
