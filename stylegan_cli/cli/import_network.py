"""`sgan import FILE|NAME|URL`: one of NVIDIA's published network pickles (Progressive GAN, StyleGAN, StyleGAN2 in
TensorFlow or PyTorch) as the run's first checkpoint, read without TensorFlow and without running anything from the
file (docs/design.md §12). A NAME from `sgan models` or a URL is downloaded into the user cache first, resumably and
checked, and taken from there afterwards (§16). Afterwards every stage works on it, and `sgan train` fine-tunes it."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated

import typer

from stylegan_cli.cli.options import JsonOption, RunOption
from stylegan_cli.core import download, rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.download import DownloadError
from stylegan_cli.core.errors import UsageError
from stylegan_cli.nvidia import catalogue, convert


def import_network(
    source: Annotated[str, typer.Argument(
        show_default=False,
        help="The network pickle (e.g. stylegan2-ffhq-config-f.pkl), a network's name from `sgan models` (e.g. "
             "stylegan2-ffhq-1024), or an http(s) URL; names and URLs are downloaded into the cache once.")],
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import one of NVIDIA's networks (a pickle, a name from `sgan models`, a URL) as the run's first checkpoint
    (printed on stdout)."""
    run_dir = rundir.resolve_run(run)
    file, digest = _network_file(source)
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
        results([path], {"checkpoint": str(path), "source": source, "file": str(file), "sha256": digest,
                         "format": converted.format, **net, "parameters": converted.parameters,
                         "taken": ["G", "G_ema", "w_avg", "const noise"] + (["D"] if converted.D is not None else []),
                         "notes": converted.notes} if as_json else None)


def _network_file(source: str) -> tuple[Path, str]:
    """(the pickle to read, its SHA-256): a file that exists, else the catalogue's network of that name, or the file
    at a URL, from the cache or downloaded into it."""
    if "://" in source:
        if urllib.parse.urlsplit(source).scheme not in ("http", "https"):
            raise UsageError(f"{source} is not an http(s) URL; download it by hand and import the file.")
        try:
            return catalogue.obtain_url(source)
        except DownloadError as e:
            if e.status in (404, 410):  # the URL named a file that is not there, like a missing path
                raise UsageError(str(e)) from None
            raise
    path = Path(source)
    if path.exists():
        if not path.is_file():
            raise UsageError(f"{path} is not a file.")
        return path, download.sha256(path)
    known = catalogue.load()
    network = known.find(source)
    if network is None:
        raise UsageError(f"No network pickle at {source}, and no network of that name in the catalogue"
                         f"{known.suggestions(source)}; `sgan models` lists them.")
    return catalogue.obtain(network)
