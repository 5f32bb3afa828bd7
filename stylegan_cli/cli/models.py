"""`sgan models`: NVIDIA's published networks by the names `sgan import NAME` takes (docs/design.md §16)."""

from __future__ import annotations

from rich import box
from rich.filesize import decimal
from rich.table import Table

from stylegan_cli.cli.options import JsonOption
from stylegan_cli.core.console import err, results
from stylegan_cli.nvidia import catalogue


def models(as_json: JsonOption = False) -> None:
    """List NVIDIA's published networks by the names `sgan import NAME` takes (the table on stderr)."""
    known = catalogue.load()
    if as_json:
        results([], {"cache": str(catalogue.networks_dir()), "aliases": known.aliases,
                     "networks": [catalogue.as_json(network) for network in known.networks.values()]})
        return
    aliases = "".join(f" {alias} stands for {name}." for alias, name in known.aliases.items())
    table = Table(box=box.SIMPLE_HEAD, caption_justify="left",
                  caption=f"`sgan import NAME` downloads into {catalogue.networks_dir()}; 'by hand': NVIDIA "
                          f"publishes the file only on Google Drive, and the import says where.{aliases}")
    table.add_column("name", no_wrap=True)  # what the user types: never cut
    table.add_column("dataset")
    table.add_column("res", justify="right")
    table.add_column("download")
    table.add_column("licence", no_wrap=True)
    for network in known.networks.values():
        if catalogue.cached_file(network).is_file():
            download = "cached"
        elif network.url is None:
            download = "by hand"
        else:
            download = decimal(network.size) if network.size else "direct"
        table.add_row(network.name, network.dataset, str(network.resolution), download, network.licence.id)
    err.print(table)
    results([])
