"""Write failures (design §2, §10): a full disk, no permission, a read-only file system or a vanished
folder is one sentence naming the file and the cause (exit 1), leaves nothing partial behind, keeps
the previous checkpoint `latest`, and the same write works again once the cause is gone.

Where the machine allows (root, `mount`), the conditions are real: a small tmpfs, remounted read-only
or larger, and an unprivileged user through setpriv. Each also has an injected variant that always runs."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, sgan
from PIL import Image

from stylegan_cli.core import rundir
from stylegan_cli.core.errors import SganError
from stylegan_cli.model import checkpoint
from stylegan_cli.model.generator import Generator

NO_SPACE = re.compile(r"^Cannot write (?P<path>\S+): no space left on the device \(about (?P<needed>[\d.]+) "
                      r"(?P<nunit>MB|KB|bytes) needed, (?P<free>[\d.]+) (?P<funit>GB|MB|KB|bytes) free on \S+\)\.$")
UNITS = {"bytes": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}


# --- helpers -----------------------------------------------------------------------------------


class Tmpfs:
    """Mounts small tmpfs file systems for a test, and always unmounts them afterwards."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def mount(self, folder: Path, size: str) -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root and `mount`; the injected variants cover this case")
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip() or done.returncode}); "
                        "the injected variants cover this case")
        self.mounted.append(folder)
        return folder

    def remount(self, folder: Path, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)

    def unmount_all(self) -> None:
        for folder in reversed(self.mounted):
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        self.mounted.clear()


@pytest.fixture
def tmpfs():
    mounts = Tmpfs()
    try:
        yield mounts
    finally:
        mounts.unmount_all()


def fill(folder: Path) -> Path:
    """Fills the file system holding `folder` to the last byte with one file, and returns it."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        try:  # the last pages, smaller than a chunk
            while True:
                f.write(b"\0" * 512)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def one_sentence(message: str, path: Path) -> None:
    """What §10 asks of a failure: one line, one sentence, naming the file."""
    assert "\n" not in message and message.endswith("."), message
    assert ". " not in message, message
    assert message.startswith(f"Cannot write {path}: "), message
    assert "Traceback" not in message and "enforce fail" not in message, message


def leftovers(folder: Path) -> list[str]:
    """Temporary files a failed write might have left."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.is_dir() else []


def big_state() -> dict:
    """A real training-like state of a few MB: a full-width generator at 16x16 (about 9 MB)."""
    torch.manual_seed(0)
    return {"format": checkpoint.FORMAT, "nimg": 1000,
            "G_ema": Generator("stylegan", 16, fmap_base=128, fmap_max=32).state_dict()}


def small_state() -> dict:
    torch.manual_seed(0)
    G = Generator("stylegan", 16, z_dim=32, w_dim=32, mapping_layers=2, mapping_width=32, fmap_base=128, fmap_max=32)
    return {"format": checkpoint.FORMAT, "nimg": 0, "G_ema": G.state_dict()}


def tensor_bytes(state: dict) -> int:
    return sum(t.numel() * t.element_size() for t in state["G_ema"].values())


def assert_latest_is(run: Path, name: str, state: dict) -> None:
    folder = rundir.checkpoints_dir(run)
    assert os.readlink(folder / "latest") == name
    loaded = checkpoint.load(folder / "latest")
    assert loaded["nimg"] == state["nimg"]
    assert all(torch.equal(loaded["G_ema"][k], v) for k, v in state["G_ema"].items())


class PatchedOs:
    """`os` for rundir with some functions replaced, so a failure is injected only where rundir writes."""

    def __init__(self, **replaced) -> None:
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(os, name)


def fake_disk(free: int):
    usage = namedtuple("usage", "total used free")
    return lambda path: usage(free + 10**6, 10**6, free)


# --- no space -----------------------------------------------------------------------------------


def test_a_checkpoint_on_a_full_file_system_says_so_and_keeps_the_previous_one(tmp_path, tmpfs):
    run = tmp_path / "run"
    folder = tmpfs.mount(rundir.checkpoints_dir(run), "4m")
    small, big = small_state(), big_state()
    checkpoint.save(run, small, 0)

    with pytest.raises(SganError) as failed:
        checkpoint.save(run, big, 1)
    message = str(failed.value)
    one_sentence(message, folder / "ckpt-0000001.pt")
    found = NO_SPACE.match(message)
    assert found, message
    needed = float(found["needed"]) * UNITS[found["nunit"]]
    free = float(found["free"]) * UNITS[found["funit"]]
    assert abs(needed - tensor_bytes(big)) < 0.1e6  # the size of the state, MB rounded
    assert 0 < free < needed < 10e6  # what is free once the partial file is gone: the 4 MB less the first checkpoint
    assert leftovers(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt-0000000.pt", "latest"]
    assert_latest_is(run, "ckpt-0000000.pt", small)

    tmpfs.remount(folder, "size=64m")  # the cause fixed: the same save now works
    checkpoint.save(run, big, 1)
    assert_latest_is(run, "ckpt-0000001.pt", big)
    assert leftovers(folder) == []


def test_torch_saves_errno_less_failure_is_read_as_no_space_from_the_free_space(tmp_path, monkeypatch):
    """The error of the issue: torch.save on a full disk raises a RuntimeError that does not mention the
    disk; with less free space than the state needs, that is reported as no space."""
    run = tmp_path / "run"
    small, big = small_state(), big_state()
    checkpoint.save(run, small, 0)

    def full_disk_save(state, f):
        f.write(b"PK\x03\x04" + b"\0" * 4096)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1086848 vs 1086736")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", full_disk_save)
        patch.setattr(rundir.shutil, "disk_usage", fake_disk(free=500_000))
        with pytest.raises(SganError) as failed:
            checkpoint.save(run, big, 1)
    message = str(failed.value)
    path = rundir.checkpoints_dir(run) / "ckpt-0000001.pt"
    one_sentence(message, path)
    assert NO_SPACE.match(message), message
    assert f"about {tensor_bytes(big) / 1e6:.1f} MB needed, 500 KB free" in message
    assert leftovers(path.parent) == [] and not path.exists()
    assert_latest_is(run, "ckpt-0000000.pt", small)

    checkpoint.save(run, big, 1)  # space again: the same save works
    assert_latest_is(run, "ckpt-0000001.pt", big)


def test_other_torch_save_failures_are_one_sentence_naming_the_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    checkpoint.save(run, small_state(), 0)

    def broken_save(state, f):
        f.write(b"PK")
        raise RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(SganError) as failed:
        checkpoint.save(run, big_state(), 1)
    path = rundir.checkpoints_dir(run) / "ckpt-0000001.pt"
    one_sentence(str(failed.value), path)
    assert "PytorchStreamWriter failed writing file data/3: file write failed" in str(failed.value)
    assert "no space" not in str(failed.value)
    assert leftovers(path.parent) == [] and os.readlink(path.parent / "latest") == "ckpt-0000000.pt"


def test_png_json_and_log_writes_on_a_full_file_system(tmp_path, tmpfs):
    out = tmpfs.mount(tmp_path / "samples", "1m")
    png, js, log = out / "seed0000.png", out / "prep.json", out / "log.jsonl"
    rundir.write_bytes(png, b"old")
    rundir.write_json(js, {"old": True})
    rundir.append_jsonl(log, {"tick": 1})
    filler = fill(out)

    payload = os.urandom(300_000)
    with pytest.raises(SganError) as failed:
        rundir.write_bytes(png, payload)
    one_sentence(str(failed.value), png)
    assert NO_SPACE.match(str(failed.value)) and "about 300 KB needed" in str(failed.value)
    assert png.read_bytes() == b"old"  # no half file under the final name
    with pytest.raises(SganError) as failed:
        rundir.write_json(js, {"rows": list(range(100_000))})
    one_sentence(str(failed.value), js)
    assert "no space left on the device" in str(failed.value)
    assert js.read_text() == '{\n  "old": true\n}\n'

    # An append that only partly fits is taken back whole: no half line for readers to trip on.
    with open(filler, "r+b") as f:
        f.truncate(os.path.getsize(filler) - 8192)
    with pytest.raises(SganError) as failed:
        rundir.append_jsonl(log, {"tick": 2, "pad": "x" * 100_000})
    one_sentence(str(failed.value), log)
    assert "no space left on the device" in str(failed.value)
    assert log.read_text() == '{"tick": 1}\n'
    assert leftovers(out) == []

    filler.unlink()  # space freed: the same writes work
    rundir.write_bytes(png, payload)
    rundir.append_jsonl(log, {"tick": 2})
    assert png.read_bytes() == payload and log.read_text() == '{"tick": 1}\n{"tick": 2}\n'


def test_injected_no_space_on_write_and_append(tmp_path, monkeypatch):
    png, log = tmp_path / "out" / "seed0000.png", tmp_path / "out" / "log.jsonl"
    rundir.write_bytes(png, b"old")
    rundir.append_jsonl(log, {"tick": 1})

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def half_a_line(fd, data):  # what a nearly full disk does: takes what fits, then refuses the rest
        return os.write(fd, data[: len(data) // 2])

    monkeypatch.setattr(rundir.shutil, "disk_usage", fake_disk(free=1_500_000_000))
    monkeypatch.setattr(rundir, "os", PatchedOs(fsync=no_space, write=half_a_line))
    with pytest.raises(SganError) as failed:
        rundir.write_bytes(png, b"x" * 2_000_000)
    one_sentence(str(failed.value), png)
    assert str(failed.value).startswith(f"Cannot write {png}: no space left on the device (about 2.0 MB needed, "
                                        f"1.5 GB free on ")
    with pytest.raises(SganError) as failed:
        rundir.append_jsonl(log, {"tick": 2})
    one_sentence(str(failed.value), log)
    assert "no space left on the device" in str(failed.value)
    monkeypatch.undo()
    assert png.read_bytes() == b"old" and log.read_text() == '{"tick": 1}\n'
    assert leftovers(png.parent) == []


# --- read-only ------------------------------------------------------------------------------------


def test_a_read_only_file_system(tmp_path, tmpfs):
    run = tmp_path / "run"
    folder = tmpfs.mount(rundir.checkpoints_dir(run), "32m")
    small = small_state()
    checkpoint.save(run, small, 0)
    rundir.append_jsonl(folder / "log.jsonl", {"tick": 1})
    tmpfs.remount(folder, "ro")

    for write, path in [(lambda: checkpoint.save(run, big_state(), 1), folder / "ckpt-0000001.pt"),
                        (lambda: rundir.write_bytes(folder / "grid.png", b"png"), folder / "grid.png"),
                        (lambda: rundir.append_jsonl(folder / "log.jsonl", {"tick": 2}), folder / "log.jsonl")]:
        with pytest.raises(SganError) as failed:
            write()
        one_sentence(str(failed.value), path)
        assert str(failed.value).endswith(f": the file system at {folder} is read-only.")
    assert_latest_is(run, "ckpt-0000000.pt", small)

    tmpfs.remount(folder, "rw")
    checkpoint.save(run, small, 1)
    assert os.readlink(folder / "latest") == "ckpt-0000001.pt" and leftovers(folder) == []


def test_injected_read_only_rename(tmp_path, monkeypatch):
    path = tmp_path / "out" / "grid.png"
    rundir.write_bytes(path, b"old")

    def read_only(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), src, None, dst)

    monkeypatch.setattr(rundir, "os", PatchedOs(replace=read_only))
    with pytest.raises(SganError) as failed:
        rundir.write_bytes(path, b"new")
    monkeypatch.undo()
    one_sentence(str(failed.value), path)
    assert "is read-only" in str(failed.value)
    assert path.read_bytes() == b"old" and leftovers(path.parent) == []


# --- permission denied ------------------------------------------------------------------------------

AS_NOBODY = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import torch
from stylegan_cli.core import rundir
from stylegan_cli.core.errors import SganError
from stylegan_cli.model import checkpoint
print("READY", flush=True)
locked = Path(sys.argv[2])
for write in (lambda: rundir.write_bytes(locked / "seed0000.png", b"png"),
              lambda: rundir.write_json(locked / "samples" / "report.json", {}),
              lambda: rundir.append_jsonl(locked / "log.jsonl", {"tick": 1}),
              lambda: checkpoint.save(locked, {"x": torch.zeros(4)}, 0)):
    try:
        write()
        print("WROTE")
    except SganError as e:
        print("SGAN", e)
"""


def test_permission_denied_for_an_unprivileged_user():
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run as another user; test_injected_permission_denied covers this")
    base = Path(tempfile.mkdtemp(prefix="sgan-perm-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)  # root's, readable by all, writable by no one else
        # User nobody; the capability to read and search any folder (Python may be installed in root's
        # home), but not to write where it may not: that stays the ordinary permission check.
        user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        for caps in (["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"], []):
            done = subprocess.run([*user, *caps, sys.executable, "-c", AS_NOBODY, str(REPO), str(base)],
                                  capture_output=True, text=True, timeout=300)
            if "READY" in done.stdout:
                break
        else:
            pytest.skip(f"the unprivileged user cannot run this Python ({done.stderr.strip()[-200:]})")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()[1:]
        targets = [base / "seed0000.png", base / "samples" / "report.json", base / "log.jsonl",
                   base / "checkpoints" / "ckpt-0000000.pt"]
        assert len(lines) == len(targets), done.stdout
        for line, target in zip(lines, targets):
            assert line.startswith("SGAN "), line
            one_sentence(line[5:], target)
            assert line.endswith(f": permission denied in the folder {base}."), line
        assert sorted(os.listdir(base)) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_injected_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "out" / "seed0000.png"
    path.parent.mkdir()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path.parent / f".{path.name}.x1y2.tmp"))

    monkeypatch.setattr(rundir.tempfile, "mkstemp", denied)
    with pytest.raises(SganError) as failed:
        rundir.write_bytes(path, b"png")
    one_sentence(str(failed.value), path)
    assert str(failed.value) == f"Cannot write {path}: permission denied in the folder {path.parent}."


# --- a vanished folder --------------------------------------------------------------------------------


def test_a_folder_removed_while_writing(tmp_path):
    path = tmp_path / "run" / "samples" / "grid.png"
    with pytest.raises(SganError) as failed:
        with rundir.atomic_path(path) as tmp:
            tmp.write_bytes(b"png")
            shutil.rmtree(path.parent)  # another job, or a user, cleans up meanwhile
    one_sentence(str(failed.value), path)
    assert str(failed.value) == f"Cannot write {path}: its folder {path.parent} was removed while sgan was writing."


def test_a_checkpoints_folder_removed_during_the_save(tmp_path, monkeypatch):
    run = tmp_path / "run"
    folder = rundir.checkpoints_dir(run)
    real_save = torch.save

    def save_then_vanish(state, f):
        real_save(state, f)
        shutil.rmtree(folder)

    monkeypatch.setattr(torch, "save", save_then_vanish)
    with pytest.raises(SganError) as failed:
        checkpoint.save(run, small_state(), 0)
    monkeypatch.undo()
    one_sentence(str(failed.value), folder / "ckpt-0000000.pt")
    assert "was removed while sgan was writing" in str(failed.value)
    checkpoint.save(run, small_state(), 0)  # the same save again makes the folder anew
    assert os.readlink(folder / "latest") == "ckpt-0000000.pt"


def test_an_error_reading_inside_the_block_is_not_taken_for_a_write_failure(tmp_path):
    """Only failures of the write itself become write sentences; a missing input stays what it is."""
    with pytest.raises(FileNotFoundError):
        with rundir.atomic_path(tmp_path / "out.png") as tmp:
            tmp.write_bytes((tmp_path / "no-such-input.png").read_bytes())
    assert leftovers(tmp_path) == []


# --- through the CLI ------------------------------------------------------------------------------------


def test_sample_into_a_full_then_read_only_file_system(trained, tmp_path, tmpfs):
    ckpt = checkpoint.latest(trained)
    run = tmp_path / "run"
    samples = tmpfs.mount(rundir.stage_dir(run, "samples"), "256k")
    filler = fill(samples)
    args = ["sample", "-r", run, "--ckpt", ckpt, "--seeds", "0-1"]

    full = sgan(*args)
    assert full.returncode == 1, full.stderr
    lines = [line for line in full.stderr.splitlines() if line.startswith("sgan:")]  # besides progress
    assert len(lines) == 1 and full.stderr.strip().endswith(lines[0]), full.stderr
    assert lines[0].startswith("sgan: Cannot write "), full.stderr
    assert "internal error" not in full.stderr and "no space left on the device" in lines[0]
    path = Path(lines[0].removeprefix("sgan: Cannot write ").split(":")[0])
    assert path.parent == samples and path.suffix == ".png"
    one_sentence(lines[0].removeprefix("sgan: "), path)
    assert leftovers(samples) == []

    filler.unlink()
    tmpfs.remount(samples, "ro")
    read_only = sgan(*args)
    assert read_only.returncode == 1, read_only.stderr
    assert read_only.stderr.strip().splitlines()[-1] == (f"sgan: Cannot write {samples / 'seed0000.png'}: "
                                                         f"the file system at {samples} is read-only.")
    assert "internal error" not in read_only.stderr and "Traceback" not in read_only.stderr

    tmpfs.remount(samples, "rw")  # the cause fixed: the same command works
    again = sgan(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [str(samples / "seed0000.png"), str(samples / "seed0001.png")]
    assert np.asarray(Image.open(samples / "seed0001.png")).shape == (16, 16, 3)


@pytest.mark.slow
def test_training_on_a_full_disk_stops_with_the_sentence_and_the_same_command_resumes(prepped, tmp_path, tmpfs):
    run = tmp_path / "run"
    folder = tmpfs.mount(rundir.checkpoints_dir(run), "128m")
    tiny = ["train", "-r", run, "--data", prepped / "data" / "dataset.lmdb", "--fmap-base", 128, "--fmap-max", 32,
            "--resolution", 16, "--workers", 0, "--batch", 8, "--seed", 3]
    first = sgan(*tiny, "--kimg", 0.016)
    assert first.returncode == 0, first.stderr
    assert checkpoint.load(folder / "latest")["nimg"] == 16

    filler = fill(folder)
    full = sgan(*tiny, "--kimg", 0.032)
    assert full.returncode == 1, full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("sgan: ") and "internal error" not in full.stderr, full.stderr
    one_sentence(last.removeprefix("sgan: "), folder / "ckpt-0000000.pt")
    assert NO_SPACE.match(last.removeprefix("sgan: ")), last
    assert leftovers(folder) == [] and checkpoint.load(folder / "latest")["nimg"] == 16  # the previous one

    filler.unlink()  # space freed: the same command resumes from the kept checkpoint and finishes
    again = sgan(*tiny, "--kimg", 0.032)
    assert again.returncode == 0, again.stderr
    assert "Resuming from" in again.stderr
    assert checkpoint.load(folder / "latest")["nimg"] == 32
