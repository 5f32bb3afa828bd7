"""`sgan import NAME` and `sgan import URL` (docs/design.md §16): a network is downloaded into the user cache once,
resumed where a dropped connection left it, checked before anything is converted, and taken from the cache
afterwards without a request. The networks are the small NVIDIA-format stand-ins of nvidia_files.py, served by a
local HTTP server that answers Range requests and can cut a download short; `$SGAN_CATALOGUE` points the catalogue
at it, as it would at a mirror."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import threading
from pathlib import Path

import nvidia_files
import pytest
from conftest import sgan_here

from stylegan_cli.nvidia import tf_pickles, torch_pickles

LICENCE = {"name": "Test Licence", "url": "https://example.org/licence", "terms": "for tests only"}
SMALL_TF = dict(fmap_base=64, fmap_max=16)
SMALL_PT = dict(channel_base=128, channel_max=16)
# The stand-ins of the four formats `sgan import` reads: (writer, its arguments, resolution, the format it reports).
FORMATS = {
    "pggan": (nvidia_files.write_pggan, dict(SMALL_TF, latent_size=24), 16, tf_pickles.PGGAN),
    "stylegan": (nvidia_files.write_stylegan, dict(SMALL_TF, latent_size=20, dlatent_size=24, mapping_layers=2,
                                                   mapping_fmaps=12), 16, tf_pickles.STYLEGAN),
    "stylegan2": (nvidia_files.write_stylegan2_tf, dict(SMALL_TF, z_dim=20, w_dim=24, mapping_layers=2), 16,
                  tf_pickles.STYLEGAN2),
    "stylegan2-ada": (nvidia_files.write_stylegan2_pt, dict(SMALL_PT, z_dim=20, w_dim=24, mapping_layers=2), 16,
                      torch_pickles.FORMAT),
}


class Server:
    """An HTTP server on 127.0.0.1 serving `files` by path: Range requests get the rest of the file (206) unless
    `ranges` is off or If-Range names another version; `cut[path] = n` sends only n bytes of the body on the next
    request for it, then closes the connection. Every request is recorded."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ranges = True
        self.requests: list[dict] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.lstrip("/")
                server.requests.append({"path": path, "range": self.headers.get("Range"),
                                        "if_range": self.headers.get("If-Range")})
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
                asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = 0
                if asked and server.ranges and self.headers.get("If-Range", etag) == etag:
                    start = int(asked.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body[: server.cut.pop(path, len(body))])

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def server():
    served = Server()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh user cache for the test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SGAN_CACHE", str(path))
    return path


def stand_in(tmp_path: Path, kind: str) -> bytes:
    """The bytes of a small network pickle in `kind`'s format."""
    writer, kwargs, resolution, _ = FORMATS[kind]
    path = tmp_path / f"{kind}.pkl"
    writer(path, resolution, **kwargs)
    return path.read_bytes()


def catalogue(tmp_path: Path, monkeypatch, *networks: dict) -> None:
    """$SGAN_CATALOGUE: a catalogue of `networks` (their other fields filled in) under the test licence."""
    defaults = {"family": "Test", "dataset": "Random", "resolution": 16, "format": tf_pickles.STYLEGAN2, "url": None,
                "manual": None, "size": None, "sha256": None, "licence": "test", "notes": ""}
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps({"licences": {"test": LICENCE},
                                "networks": [{**defaults, "file": f"{n['name']}.pkl", **n} for n in networks]}))
    monkeypatch.setenv("SGAN_CATALOGUE", str(path))


def served(tmp_path, monkeypatch, server, kind: str = "stylegan2", **fields) -> tuple[str, bytes]:
    """A stand-in of `kind` on the server and in the catalogue as `test-KIND` (with its size and SHA-256 unless
    `fields` say otherwise): (its name, its bytes)."""
    data = stand_in(tmp_path, kind)
    name = f"test-{kind}"
    server.files[f"{name}.pkl"] = data
    catalogue(tmp_path, monkeypatch, {"name": name, "format": FORMATS[kind][3], "url": server.url(f"{name}.pkl"),
                                      "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **fields})
    return name, data


def one_sentence(err: str) -> bool:
    """Whether the failure is one line `sgan: ...`, the last on stderr (the licence and progress may precede it)."""
    lines = err.strip().splitlines()
    return bool(lines) and [line for line in lines if line.startswith("sgan: ")] == lines[-1:]


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_a_network_by_name_is_downloaded_checked_and_imported(capsys, tmp_path, monkeypatch, cache, server, kind):
    name, data = served(tmp_path, monkeypatch, server, kind)
    code, out, err = sgan_here(capsys, "import", name, "-r", tmp_path / "run", "--json")
    assert code == 0, err
    summary = json.loads(out)
    cached = cache / "networks" / f"{name}.pkl"
    assert summary["format"] == FORMATS[kind][3] and summary["resolution"] == FORMATS[kind][2]
    assert summary["file"] == str(cached) and cached.read_bytes() == data
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert Path(summary["checkpoint"]).is_file()
    assert (cache / "networks" / f"{name}.pkl.sha256").read_text() == f"{summary['sha256']}  {name}.pkl\n"
    assert not list((cache / "networks").glob(".*.part*"))


def test_a_second_import_takes_the_cache_without_a_request_and_the_licence_is_shown_once(
        capsys, tmp_path, monkeypatch, cache, server):
    name, data = served(tmp_path, monkeypatch, server)
    code, out, first = sgan_here(capsys, "import", name, "-r", tmp_path / "run")
    assert code == 0 and "Test Licence" in first and "for tests only" in first and LICENCE["url"] in first
    assert len(server.requests) == 1
    for run, words in (("run", "is already imported"), ("another-run", "StyleGAN2 (TensorFlow)")):
        code, out, again = sgan_here(capsys, "import", name, "-r", tmp_path / run)
        assert code == 0 and words in again, again
        assert "Test Licence" not in again and "downloading" not in again
        assert Path(out.strip()) == tmp_path / run / "checkpoints" / "ckpt-0000000.pt"
    assert len(server.requests) == 1
    code, out, _ = sgan_here(capsys, "models", "--json")
    listed = {n["name"]: n for n in json.loads(out)["networks"]}
    assert listed[name]["cached"] == str(cache / "networks" / f"{name}.pkl")


def test_a_dropped_download_is_resumed_with_a_range_request(capsys, tmp_path, monkeypatch, cache, server):
    name, data = served(tmp_path, monkeypatch, server)
    half = len(data) // 2
    server.cut[f"{name}.pkl"] = half
    code, out, err = sgan_here(capsys, "import", name, "-r", tmp_path / "run")
    assert code == 1 and one_sentence(err) and "stopped after" in err and "resumes" in err, err
    part = cache / "networks" / f".{name}.pkl.part"
    assert part.read_bytes() == data[:half]
    assert not (cache / "networks" / f"{name}.pkl").exists() and not (tmp_path / "run").exists()

    code, out, err = sgan_here(capsys, "import", name, "-r", tmp_path / "run")
    assert code == 0, err
    resumed = server.requests[-1]
    assert resumed["range"] == f"bytes={half}-" and resumed["if_range"]
    assert (cache / "networks" / f"{name}.pkl").read_bytes() == data and not part.exists()
    assert Path(out.strip()).name == "ckpt-0000000.pt"


def test_a_server_that_ignores_ranges_makes_the_rerun_start_over_cleanly(capsys, tmp_path, monkeypatch, cache, server):
    name, data = served(tmp_path, monkeypatch, server)
    server.cut[f"{name}.pkl"] = len(data) // 3
    assert sgan_here(capsys, "import", name, "-r", tmp_path / "run")[0] == 1
    server.ranges = False
    code, out, err = sgan_here(capsys, "import", name, "-r", tmp_path / "run")
    assert code == 0 and "starting over" in err, err
    assert server.requests[-1]["range"] is not None
    assert (cache / "networks" / f"{name}.pkl").read_bytes() == data


def test_a_file_that_changed_on_the_server_since_the_drop_is_downloaded_anew(
        capsys, tmp_path, monkeypatch, cache, server):
    """If-Range: the server sends the new version whole, and no part of the old one stays."""
    name, old = served(tmp_path, monkeypatch, server, sha256=None, size=None)
    server.cut[f"{name}.pkl"] = len(old) // 2
    assert sgan_here(capsys, "import", name, "-r", tmp_path / "run")[0] == 1
    (tmp_path / "new").mkdir()
    new = stand_in(tmp_path / "new", "stylegan2-ada")
    server.files[f"{name}.pkl"] = new
    code, out, err = sgan_here(capsys, "import", name, "-r", tmp_path / "run", "--json")
    assert code == 0, err
    assert (cache / "networks" / f"{name}.pkl").read_bytes() == new
    assert json.loads(out)["format"] == torch_pickles.FORMAT


def test_a_download_with_the_wrong_checksum_is_deleted_and_nothing_is_imported(
        capsys, tmp_path, monkeypatch, cache, server):
    name, data = served(tmp_path, monkeypatch, server, sha256="0" * 64)
    code, out, err = sgan_here(capsys, "import", name, "-r", tmp_path / "run")
    assert code == 1 and one_sentence(err) and "SHA-256" in err and "deleted" in err, err
    assert not [p for p in (cache / "networks").iterdir() if name in p.name]
    assert not (tmp_path / "run").exists()


def test_a_file_missing_on_the_server_is_one_sentence(capsys, tmp_path, monkeypatch, cache, server):
    """Exit 1 for a catalogue entry (NVIDIA moved it; a mirror can be given), 2 for a URL the user typed."""
    catalogue(tmp_path, monkeypatch, {"name": "test-gone", "url": server.url("gone.pkl")})
    code, out, err = sgan_here(capsys, "import", "test-gone", "-r", tmp_path / "run")
    assert code == 1 and one_sentence(err) and "HTTP 404" in err and "SGAN_CATALOGUE" in err, err
    code, out, err = sgan_here(capsys, "import", server.url("nowhere.pkl"), "-r", tmp_path / "run")
    assert code == 2 and one_sentence(err) and "HTTP 404" in err, err
    assert not (tmp_path / "run").exists()


@pytest.fixture
def refusing_port():
    """A port on 127.0.0.1 bound but not listening, so that connections to it are refused while the test runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_no_connection_is_one_sentence_and_leaves_nothing(capsys, tmp_path, monkeypatch, cache, refusing_port):
    catalogue(tmp_path, monkeypatch, {"name": "test-offline", "url": f"http://127.0.0.1:{refusing_port}/x.pkl"})
    code, out, err = sgan_here(capsys, "import", "test-offline", "-r", tmp_path / "run")
    assert code == 1 and one_sentence(err) and "connection refused" in err, err
    assert not (tmp_path / "run").exists()
    assert not list(cache.rglob("*test-offline*"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device every write to fails with ENOSPC")
def test_a_full_disk_is_one_sentence_and_leaves_no_file_under_the_final_name(
        capsys, tmp_path, monkeypatch, cache, server):
    name, data = served(tmp_path, monkeypatch, server)
    part = cache / "networks" / f".{name}.pkl.part"
    part.parent.mkdir(parents=True)
    part.symlink_to("/dev/full")  # the download's writes land on a device that is always full
    code, out, err = sgan_here(capsys, "import", name, "-r", tmp_path / "run")
    assert code == 1 and one_sentence(err) and "no space left on the device" in err, err
    assert not (cache / "networks" / f"{name}.pkl").exists() and not (tmp_path / "run").exists()


def test_a_url_is_downloaded_once_its_digest_recorded_and_a_damaged_copy_fetched_again(
        capsys, tmp_path, monkeypatch, cache, server):
    data = stand_in(tmp_path, "stylegan2")
    server.files["net/stylegan2-demo.pkl"] = data
    url = server.url("net/stylegan2-demo.pkl")
    code, out, err = sgan_here(capsys, "import", url, "-r", tmp_path / "run", "--json")
    assert code == 0, err
    cached = Path(json.loads(out)["file"])
    assert cached.parent == cache / "networks" and re.fullmatch(r"stylegan2-demo-[0-9a-f]{8}\.pkl", cached.name)
    digest = hashlib.sha256(data).hexdigest()
    assert cached.with_name(cached.name + ".sha256").read_text().split()[0] == digest
    assert sgan_here(capsys, "import", url, "-r", tmp_path / "run")[0] == 0 and len(server.requests) == 1

    cached.write_bytes(data[:-1] + b"!")  # damaged on disk since
    code, out, err = sgan_here(capsys, "import", url, "-r", tmp_path / "run")
    assert code == 0 and "damaged" in err and "downloading it again" in err, err
    assert len(server.requests) == 2 and cached.read_bytes() == data


def test_an_unknown_name_is_a_usage_error_suggesting_the_nearest(capsys, tmp_path, cache):
    code, out, err = sgan_here(capsys, "import", "stylegan2-ffhq", "-r", tmp_path / "run")
    assert code == 2 and one_sentence(err) and "stylegan2-ffhq-1024" in err and "sgan models" in err, err
    assert not (tmp_path / "run").exists()


def test_a_network_nvidia_publishes_only_on_google_drive_says_where_and_is_found_once_saved(
        capsys, tmp_path, cache):
    code, out, err = sgan_here(capsys, "import", "stylegan-ffhq-1024", "-r", tmp_path / "run")
    assert code == 1 and one_sentence(err), err
    assert "https://drive.google.com/" in err and "sgan import karras2019stylegan-ffhq-1024x1024.pkl" in err
    saved = cache / "networks" / "stylegan-ffhq-1024.pkl"
    assert str(saved) in err and not (tmp_path / "run").exists()

    saved.parent.mkdir(parents=True)
    saved.write_bytes(stand_in(tmp_path, "stylegan"))  # downloaded by hand and saved where the sentence says
    code, out, err = sgan_here(capsys, "import", "stylegan-ffhq-1024", "-r", tmp_path / "run", "--json")
    assert code == 0, err
    assert json.loads(out)["format"] == tf_pickles.STYLEGAN and "CC BY-NC 4.0" in err


def test_a_mirror_in_sgan_catalogue_serves_a_published_network_under_its_name_and_alias(
        capsys, tmp_path, monkeypatch, cache, server):
    """An entry that gives only a new url (and a digest) keeps the rest of NVIDIA's entry, licence included."""
    data = stand_in(tmp_path, "stylegan2-ada")
    server.files["mirror/ffhq.pkl"] = data
    path = tmp_path / "mirror.json"
    path.write_text(json.dumps({"networks": [{"name": "stylegan2-ada-ffhq-1024", "url": server.url("mirror/ffhq.pkl"),
                                              "sha256": hashlib.sha256(data).hexdigest()}]}))
    monkeypatch.setenv("SGAN_CATALOGUE", str(path))
    code, out, err = sgan_here(capsys, "import", "ffhq-1024", "-r", tmp_path / "run", "--json")
    assert code == 0 and "Adaptive Discriminator Augmentation" in err and "nvlabs.github.io" in err, err
    assert json.loads(out)["file"] == str(cache / "networks" / "stylegan2-ada-ffhq-1024.pkl")
    assert sgan_here(capsys, "import", "stylegan2-ada-ffhq-1024", "-r", tmp_path / "run")[0] == 0
    assert len(server.requests) == 1
