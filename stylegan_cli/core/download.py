"""The user cache and the one way sgan downloads into it (docs/design.md §7, §16).

`cache_dir` is where sgan keeps what it fetched or computed once (metric weights, dataset statistics,
NVIDIA's networks); `fetch` downloads one URL to a file with a progress bar, resuming a partial download,
and fails with one sentence. The standard library is enough: urllib sends the Range and If-Range headers and
keeps them across redirects (NGC answers with a redirect to its storage), and the body is read in blocks, so
progress and resumption need nothing more.

A download is written to `.NAME.part` beside its final name, with `.NAME.part.json` recording the URL, the
server's validator (ETag, else Last-Modified) and the length. A rerun asks for the rest with `Range: bytes=N-`
and `If-Range: <validator>`; a server that answers with the whole file instead (it ignores ranges, or the file
changed) starts the part over. Only a complete file, of the expected length and SHA-256 where they are known,
is renamed to its final name; one with another SHA-256 is deleted.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.filesize import decimal
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from stylegan_cli import __version__
from stylegan_cli.core.console import err, progress
from stylegan_cli.core.errors import SganError
from stylegan_cli.core.rundir import write_error

BLOCK = 1 << 20  # bytes read and written at a time
TIMEOUT = 60  # seconds a connection may stay silent before it counts as lost


def cache_dir() -> Path:
    """The user cache: `$SGAN_CACHE`, else `$XDG_CACHE_HOME/sgan`, else `~/.cache/sgan`; metric weights under
    `weights/`, dataset feature statistics under `stats/`, NVIDIA's networks under `networks/`."""
    if os.environ.get("SGAN_CACHE"):
        return Path(os.environ["SGAN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sgan"


def sha256(path: Path) -> str:
    return _hashed(path).hexdigest()


def _hashed(path: Path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest


class DownloadError(SganError):
    """A download that did not succeed, in one sentence; exit status 1. `status` is the HTTP status of a server
    that answered with an error (404, 403, ...), else None."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def fetch(url: str, dest: Path, what: str, size: int | None = None, digest: str | None = None) -> str:
    """Downloads `url` to `dest` and returns the file's SHA-256. `size` and `digest`, when known, are checked
    before the file gets its final name; `what` names the download in messages."""
    part, state_path = dest.with_name(f".{dest.name}.part"), dest.with_name(f".{dest.name}.part.json")
    state = _state(state_path, url)
    have = part.stat().st_size if state and part.is_file() else 0
    if have and have == state.get("total"):  # complete, but stopped before it was checked
        hasher = _hashed(part)
    else:
        response, have, total = _open(url, what, have, state.get("validator"))
        with response:
            if have == 0:
                etag = response.headers.get("ETag")
                validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
                _save_state(state_path, {"url": url, "validator": validator, "total": total})
            size_text = f" ({decimal(total)})" if total else ""
            err.print(f"{'resuming' if have else 'downloading'} {what}{size_text} from {url}"
                      + (f" at {decimal(have)}" if have else ""))
            hasher = _hashed(part) if have else hashlib.sha256()
            have, reason = _copy(response, part, have, total, what, hasher)
        if total is not None and have < total:
            raise DownloadError(f"The download of {what} stopped after {decimal(have)} of {decimal(total)} "
                                f"({reason}); the part is kept in {part}, and the same command resumes it.")
    found = hasher.hexdigest()
    wrong_size, wrong_digest = size is not None and have != size, digest is not None and found != digest
    if wrong_size or wrong_digest:
        _discard(part, state_path)
        mismatch = f"is {have:,} bytes long, not {size:,}" if wrong_size else f"has the SHA-256 {found}, not {digest}"
        raise DownloadError(f"The download of {what} from {url} {mismatch}, so it was deleted; try again later, "
                            f"or from another source.")
    try:
        os.replace(part, dest)
    except OSError as e:
        raise write_error(dest, e) from e
    state_path.unlink(missing_ok=True)
    return found


def _state(path: Path, url: str) -> dict:
    """What the unfinished download of `url` recorded ({} if none, or one of another URL)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("url") == url else {}


def _save_state(path: Path, state: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state) + "\n")
    except OSError as e:
        raise write_error(path, e) from e


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _open(url: str, what: str, have: int, validator: str | None) -> tuple[http.client.HTTPResponse, int, int | None]:
    """(the response, the bytes of the part it continues, the file's full length if known): the rest of the file
    after `have` bytes where the server resumes, else the whole file."""
    headers = {"User-Agent": f"sgan/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator:
            headers["If-Range"] = validator
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:  # the part is longer than the file: it belongs to another one
            return _open(url, what, 0, None)
        raise DownloadError(f"Cannot download {what}: {url} answered HTTP {e.code} ({e.reason}).", e.code) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _unreachable(e, url, what) from None
    if have and response.status == 206:
        found = re.fullmatch(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", "").strip())
        if found and int(found.group(1)) == have:
            return response, have, int(found.group(2))
        response.close()
        return _open(url, what, 0, None)
    if have:
        err.print(f"the server sent {what} from its start (it does not resume this download): starting over")
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def _unreachable(e: BaseException, url: str, what: str) -> DownloadError:
    """No answer from the server, as one sentence saying why."""
    reason = e.reason if isinstance(e, urllib.error.URLError) else e
    host = urllib.parse.urlsplit(url).netloc or url
    if isinstance(reason, socket.gaierror):
        why = "its name does not resolve: no network, or a mistyped host"
    elif isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(reason, TimeoutError):
        why = f"no answer within {TIMEOUT} s"
    elif isinstance(reason, ssl.SSLError):
        why = f"TLS failed: {reason.reason or reason}"
    elif isinstance(reason, OSError) and reason.strerror:
        why = reason.strerror[0].lower() + reason.strerror[1:]
    else:
        why = str(reason).rstrip(".") or type(reason).__name__
    return DownloadError(f"Cannot download {what}: {host} cannot be reached ({why}).")


def _copy(response, part: Path, have: int, total: int | None, what: str, hasher) -> tuple[int, str]:
    """Appends the response's body to the part (a fresh part when `have` is 0); (the part's length, why it
    stopped early if it did)."""
    reason = "the connection closed early"
    try:
        with open(part, "ab" if have else "wb") as f, _progress(what, total, have) as advance:
            while True:
                try:
                    block = response.read(BLOCK)
                except (OSError, http.client.HTTPException) as e:  # the connection broke
                    reason = f"the connection broke: {e}" if str(e) else f"the connection broke ({type(e).__name__})"
                    break
                if not block:
                    break
                f.write(block)
                hasher.update(block)
                have += len(block)
                advance(len(block))
    except OSError as e:
        failed = str(write_error(part, e, total - have if total else None)).rstrip(".")
        raise SganError(f"{failed}; the part downloaded so far is kept, and the same command resumes it.") from e
    return have, reason


@contextmanager
def _progress(what: str, total: int | None, done: int) -> Iterator[Callable[[int], None]]:
    """A byte counter with rate and ETA on a terminal; in a log, console.progress's plain lines in megabytes when
    the length is known."""
    if err.is_terminal:
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task(what, total=total, completed=done)
            yield lambda n: bar.advance(task, n)
    elif total:
        def megabytes(n: int) -> int:  # whole ones, and the total (rounded up) once the last byte is in
            return -(-total // 10**6) if n >= total else n // 10**6

        counted = [done]
        with progress(f"{what} (MB)", megabytes(total), megabytes(done)) as plain:

            def advance(n: int) -> None:
                before, counted[0] = counted[0], counted[0] + n
                if megabytes(counted[0]) > megabytes(before):
                    plain.advance(megabytes(counted[0]) - megabytes(before))

            yield advance
    else:
        yield lambda n: None

