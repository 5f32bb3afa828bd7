"""NVIDIA's published networks by name (docs/design.md §16): the catalogue, and each network's file in the user
cache, downloaded on first use.

The catalogue is data, `catalogue.json` beside this module: per network its name (`<family>-<dataset>-<resolution>`),
NVIDIA's file name, the URL sgan downloads it from (None where NVIDIA publishes it only on Google Drive, whose
`manual` link the user follows by hand), its size and SHA-256 where a source states them, the format `sgan import`
will find in it, and its licence; a few short aliases stand for names. `$SGAN_CATALOGUE` names a JSON file of the
same shape whose entries replace the fields of the entries they name (a mirror's URL, a digest) or add networks.

Files live in `CACHE/networks/` under the network's name (`stylegan2-ffhq-1024.pkl`; a URL outside the catalogue
under its file name and a hash of the URL), each with `NAME.sha256` beside it in `sha256sum`'s format: the digest
the catalogue states, else the one the download had (recorded on first use), against which every later use checks
the file. `licences-shown.jsonl` lists the licences sgan has printed, each printed once.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import urllib.parse
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

from stylegan_cli.core import locks, rundir
from stylegan_cli.core.console import err
from stylegan_cli.core.download import DownloadError, cache_dir, fetch, sha256
from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.nvidia import tf_pickles, torch_pickles

CATALOGUE_ENV = "SGAN_CATALOGUE"
FORMATS = (tf_pickles.PGGAN, tf_pickles.STYLEGAN, tf_pickles.STYLEGAN2, torch_pickles.FORMAT)  # what convert.read tells
LICENCES_SHOWN = "licences-shown.jsonl"


@dataclass(frozen=True)
class Licence:
    id: str  # the catalogue's key for it
    name: str
    url: str
    terms: str  # what it allows, in a clause: "non-commercial use only, ..."


@dataclass(frozen=True)
class Network:
    name: str  # what `sgan import NAME` takes: <family>-<dataset>-<resolution>
    family: str
    dataset: str
    resolution: int
    format: str  # one of FORMATS
    file: str  # NVIDIA's name for the file
    url: str | None  # where sgan downloads it from; None: NVIDIA publishes it only where sgan does not download
    manual: str | None  # the link NVIDIA gives for a download by hand, for networks without a url
    size: int | None  # bytes, where a source states it
    sha256: str | None  # where NVIDIA publishes it or a source states it
    licence: Licence
    notes: str = ""


@dataclass(frozen=True)
class Catalogue:
    networks: dict[str, Network]  # by name, in the catalogue's order
    aliases: dict[str, str]  # a few short names: alias -> network name

    def find(self, name: str) -> Network | None:
        return self.networks.get(self.aliases.get(name, name))

    def suggestions(self, name: str) -> str:
        """' (did you mean A, B or C?)' for the names nearest to a mistyped one: those containing it, else
        difflib's closest; '' when none is near."""
        names = sorted([*self.networks, *self.aliases])
        near = [n for n in names if name.lower() in n] or difflib.get_close_matches(name.lower(), names, n=5)
        near = near[:5]
        if len(near) > 1:
            return f" (did you mean {', '.join(near[:-1])} or {near[-1]}?)"
        return f" (did you mean {near[0]}?)" if near else ""


def load() -> Catalogue:
    """The package's catalogue, with `$SGAN_CATALOGUE`'s licences, aliases and entries over it."""
    doc = json.loads(resources.files(__package__).joinpath("catalogue.json").read_text(encoding="utf-8"))
    licences, aliases = dict(doc["licences"]), dict(doc["aliases"])
    entries = {entry["name"]: entry for entry in doc["networks"]}
    extra = os.environ.get(CATALOGUE_ENV)
    if extra:
        path = Path(extra).expanduser()
        try:
            more = json.loads(path.read_text(encoding="utf-8"))
            licences.update(more.get("licences", {}))
            aliases.update(more.get("aliases", {}))
            for entry in more.get("networks", []):
                entries[entry["name"]] = {**entries.get(entry["name"], {}), **entry}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise UsageError(f"{CATALOGUE_ENV} names {path}, which is not a catalogue of networks "
                             f"({type(e).__name__}: {e}).") from None
    networks = {}
    try:
        for name, entry in entries.items():
            try:
                networks[name] = _network(entry, licences)
            except ValueError as e:
                raise ValueError(f"The network {name} {e}") from None
        for alias, name in aliases.items():
            if name not in networks or alias in networks:
                raise ValueError(f"The alias {alias} " + ("names a network as well" if alias in networks
                                                          else f"stands for {name}, which the catalogue lacks"))
    except ValueError as e:
        if not extra:
            raise
        raise UsageError(f"{e} (in the catalogue with {CATALOGUE_ENV}'s entries).") from None
    return Catalogue(networks, aliases)


def _network(entry: dict, licences: dict) -> Network:
    """An entry as a Network, or ValueError saying in a clause what is wrong with it."""
    names = {f.name for f in fields(Network)}
    missing = names - {"notes"} - set(entry)
    if missing or set(entry) - names:
        raise ValueError(f"lacks {', '.join(sorted(missing))}" if missing
                         else f"has fields a network has not: {', '.join(sorted(set(entry) - names))}")
    licence = licences.get(entry["licence"])
    if not isinstance(licence, dict) or set(licence) != {f.name for f in fields(Licence)} - {"id"}:
        raise ValueError(f"names the licence {entry['licence']!r}, which the catalogue lacks or gives without its "
                         f"name, url and terms")
    network = Network(**{**entry, "licence": Licence(id=entry["licence"], **licence)})
    resolution = network.resolution
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", network.name):
        raise ValueError("has a name other than lower-case words joined by hyphens")
    if network.format not in FORMATS:
        raise ValueError(f"has the format {network.format!r}, which is none of {', '.join(FORMATS)}")
    if not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"has the resolution {resolution!r}, which is not a power of two of at least 4")
    if network.url is None and network.manual is None:
        raise ValueError("has neither a url nor a manual link")
    if network.url is not None and urllib.parse.urlsplit(network.url).scheme not in ("http", "https"):
        raise ValueError(f"has the url {network.url!r}, which is not http(s)")
    if network.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", network.sha256):
        raise ValueError("has a sha256 other than 64 lower-case hexadecimal digits")
    if network.size is not None and (not isinstance(network.size, int) or network.size <= 0):
        raise ValueError(f"has the size {network.size!r}, which is not a number of bytes")
    return network


def networks_dir() -> Path:
    return cache_dir() / "networks"


def cached_file(network: Network) -> Path:
    return networks_dir() / f"{network.name}{Path(network.file).suffix or '.pkl'}"


def as_json(network: Network) -> dict:
    """The entry as `sgan models --json` shows it, with the cached file (or None)."""
    path = cached_file(network)
    return {**asdict(network), "cached": str(path) if path.is_file() else None}


def obtain(network: Network) -> tuple[Path, str]:
    """(the network's file, its SHA-256): from the cache, else downloaded into it. One sentence, exit status 1,
    for a network sgan cannot download: where to get it by hand."""
    path = cached_file(network)
    if network.url is None and not path.is_file():
        raise SganError(f"NVIDIA publishes {network.name} ({network.file}) only at {network.manual}, which sgan does "
                        f"not download from: download it there and run `sgan import {network.file}`, or save it as "
                        f"{path} for `sgan import {network.name}`.")
    _show_licence(network)
    try:
        return _cached(path, network.url, network.name, network.size, network.sha256)
    except DownloadError as e:
        if e.status not in (404, 410):
            raise
        raise DownloadError(f"{str(e).rstrip('.')}: NVIDIA may have moved it, and a catalogue in ${CATALOGUE_ENV} "
                            f"can give another URL (docs/design.md §16).", e.status) from None


def obtain_url(url: str) -> tuple[Path, str]:
    """(the file at `url`, its SHA-256), as `obtain` does for the catalogue's network of that URL if there is one."""
    network = next((n for n in load().networks.values() if n.url == url), None)
    if network is not None:
        return obtain(network)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(urllib.parse.urlsplit(url).path).name).lstrip(".") or "network"
    name = Path(stem)
    path = networks_dir() / f"{name.stem}-{hashlib.sha256(url.encode()).hexdigest()[:8]}{name.suffix}"
    return _cached(path, url, url, None, None)


def _cached(path: Path, url: str | None, what: str, size: int | None, digest: str | None) -> tuple[Path, str]:
    """(`path`, its SHA-256) once it holds the file: a cached one whose digest is the catalogue's or the one
    recorded at its download (any, if none is), else a fresh download."""
    record = path.with_name(f"{path.name}.sha256")
    if path.is_file():
        found = sha256(path)
        expected = digest or _recorded(record)
        if expected is None or found == expected:
            if expected is None:  # placed by hand, or cached before its record was written
                _record(record, path, found)
            return path, found
        source = "the catalogue's" if digest else f"the one in {record.name}"
        if url is None:
            raise SganError(f"{path} has the SHA-256 {found}, not {source} {expected}: it is another file, or "
                            f"damaged; save the right file there again.")
        err.print(f"{path} is another file, or damaged (its SHA-256 is not {source}): downloading it again")
        path.unlink()
    locks.hold(path.parent)  # one download into the cache at a time: a second sgan stops, naming this one
    if path.is_file():  # another sgan finished it since the check above
        return _cached(path, url, what, size, digest)
    found = fetch(url, path, what, size, digest)
    _record(record, path, found)
    err.print(f"{path}: SHA-256 {found}" + ("" if digest else " (recorded in the cache; no source states one)"))
    return path, found


def _recorded(record: Path) -> str | None:
    try:
        found = record.read_text().split()
    except OSError:
        return None
    return found[0] if found and re.fullmatch(r"[0-9a-f]{64}", found[0]) else None


def _record(record: Path, path: Path, digest: str) -> None:
    rundir.write_text(record, f"{digest}  {path.name}\n")


def _show_licence(network: Network) -> None:
    """The network's licence on stderr, the first time sgan meets it."""
    log = networks_dir() / LICENCES_SHOWN
    try:
        shown = {json.loads(line).get("licence") for line in log.read_text().splitlines() if line.strip()}
    except (OSError, ValueError, AttributeError):
        shown = set()
    licence = network.licence
    if licence.name in shown:
        return
    err.print(f"{network.name} is NVIDIA's, under the {licence.name}: {licence.terms} ({licence.url}); sgan shows "
              f"each licence once.")
    rundir.append_jsonl(log, {"licence": licence.name, "url": licence.url})
