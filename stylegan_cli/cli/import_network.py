"""`sgan import FILE`: one of NVIDIA's published network pickles (Progressive GAN, StyleGAN, StyleGAN2 in TensorFlow
or PyTorch) as the run's first checkpoint, read without TensorFlow and without running anything from the file
(docs/design.md §12). Afterwards every stage works on it, and `sgan train` fine-tunes it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stylegan_cli.cli.options import JsonOption, RunOption
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.nvidia import convert


def import_network(
    file: Annotated[Path, typer.Argument(help="The network pickle, e.g. stylegan2-ffhq-config-f.pkl or "
                                              "karras2019stylegan-ffhq-1024x1024.pkl.", show_default=False)],
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import an NVIDIA network pickle as the run's first checkpoint (printed on stdout)."""
    if not file.is_file():
        raise UsageError(f"No network pickle at {file}." if not file.exists() else f"{file} is not a file.")
    run_dir = rundir.resolve_run(run)
    digest = convert.sha256(file)
    done = convert.already_imported(run_dir, digest)
    converted = convert.read(file)  # checked (and refused, if need be) before anything is written
    with rundir.stage(run_dir, writes=rundir.checkpoints_dir(run_dir)) as record:
        if done is not None:
            err.print(f"{file} is already imported as {done}.")
            path = done
        else:
            path = convert.write_checkpoint(run_dir, converted, file, digest)
            record.outputs.append(str(path))
        net = converted.network
        err.print(f"{converted.format}: {net['arch']} (G {net['g_arch']}, D {net['d_arch']}) at "
                  f"{net['resolution']}x{net['resolution']}, z {net['z_dim']}, w {net['w_dim']}"
                  + (f", class-conditional on {net['c_dim']} classes (sample with --class K)." if net.get("c_dim")
                     else "."))
        for note in converted.notes:
            err.print(note)
        results([path], {"checkpoint": str(path), "format": converted.format, **net,
                         "parameters": converted.parameters,
                         "taken": ["G", "G_ema", "w_avg", "const noise"] + (["D"] if converted.D is not None else []),
                         "notes": converted.notes} if as_json else None)
