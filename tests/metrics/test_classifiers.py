"""`sgan classifiers train`: attribute classifiers for the linear-separability metric (StyleGAN §4.2),
trained and checked on real labelled photos: CIFAR-10 with two binary attributes derived from the
classes, `vehicle` (airplane, automobile, ship, truck) and `flies` (airplane, bird)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CIFAR, REPO, sgan, sgan_here
from PIL import Image

from stylegan_cli.core.errors import UsageError
from stylegan_cli.metrics.classifiers import build_classifier, load_classifiers

PER_CLASS = 100
VEHICLES = {"airplane", "automobile", "ship", "truck"}
FLYERS = {"airplane", "bird"}
# Small enough to train in seconds on two CPU cores: 16x16 inputs, a narrow discriminator, 5k images each;
# a fifth of the images held out. Networks this small train fastest on one thread, which also keeps them
# from stalling when other processes share the cores.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
NET_ARGS = ("--resolution", 16, "--fmap-base", 128, "--fmap-max", 32)
TRAIN_ARGS = (*NET_ARGS, "--kimg", 5, "--batch", 32, "--lr", 0.002, "--val-fraction", 0.2)


def extract_cifar(folder: Path) -> Path:
    """The first PER_CLASS images of each CIFAR-10 class under folder/img/<class>/, and folder/labels.csv."""
    if (folder / "labels.csv").is_file():
        return folder
    rows = []
    for source in sorted(CIFAR.iterdir()):
        cls = source.name
        (folder / "img" / cls).mkdir(parents=True, exist_ok=True)
        for image in sorted(source.glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(image, folder / "img" / cls / image.name)
            rows.append([f"{cls}/{image.name}", int(cls in VEHICLES), int(cls in FLYERS)])
    with open(folder / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file", "vehicle", "flies"], *rows])
    return folder


def train_cifar_classifiers(base: Path) -> tuple[Path, dict]:
    """Trains the CIFAR classifiers once per session under `base` (a re-run skips the finished ones):
    (the classifiers folder, the --json report)."""
    data = extract_cifar(base / "cifar")
    result = sgan("classifiers", "train", "--images", data / "img", "--labels", data / "labels.csv",
                  "-r", base / "run", *TRAIN_ARGS, "--json", env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    return base / "run" / "classifiers", json.loads(result.stdout)


@pytest.fixture(scope="session")
def cifar(tmp_path_factory) -> Path:
    return extract_cifar(tmp_path_factory.getbasetemp() / "cifar")


@pytest.fixture(scope="session")
def cifar_classifiers(tmp_path_factory) -> tuple[Path, dict]:
    return train_cifar_classifiers(tmp_path_factory.getbasetemp())


def cifar_batch(cifar: Path, classes: list[str], count: int) -> torch.Tensor:
    """Images of the given classes as generated images come: NCHW floats in [-1, 1], here 32x32."""
    files = [f for cls in classes for f in sorted((cifar / "img" / cls).glob("*.jpg"))[:count]]
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1


def write_csv(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_one_classifier_per_attribute_is_trained_and_validated(cifar_classifiers):
    folder, report = cifar_classifiers
    assert report["outputs"] == [str(folder / "vehicle.pt"), str(folder / "flies.pt"), str(folder / "classifiers.json")]
    index = json.loads((folder / "classifiers.json").read_text())
    assert index["complete"] and index["attributes"] == ["vehicle", "flies"] and index["resolution"] == 16
    assert index["architecture"] == {"network": "Discriminator", "fmap_base": 128, "fmap_max": 32,
                                     "mbstd_group_size": 1}
    assert index["counts"] == {"images": 10 * PER_CLASS, "train": 8 * PER_CLASS, "validation": 2 * PER_CLASS}
    assert index["settings"]["training"]["kimg"] == 5 and index["settings"]["training"]["batch"] == 32
    vehicle = index["reports"]["vehicle"]
    # 4 of 10 classes are vehicles: always answering "not a vehicle" scores about 0.6.
    assert 0.5 < vehicle["baseline"] < 0.7
    assert vehicle["accuracy"] >= max(0.72, vehicle["baseline"] + 0.1), vehicle
    assert index["accuracy"] == {name: index["reports"][name]["accuracy"] for name in ("vehicle", "flies")}
    positives = vehicle["positives"]["train"] + vehicle["positives"]["validation"]
    assert positives == 4 * PER_CLASS and index["reports"]["flies"]["positives"]["validation"] > 0


def test_weights_are_plain_state_dicts_of_the_discriminator_architecture(cifar_classifiers):
    folder, _ = cifar_classifiers
    state = torch.load(folder / "vehicle.pt", weights_only=True)
    assert state.keys() == build_classifier(16, 128, 32).state_dict().keys()
    assert not list(folder.glob(".*.tmp"))


def test_loaded_classifiers_label_images_of_any_size(cifar_classifiers, cifar):
    classifiers = load_classifiers(cifar_classifiers[0], "cpu")
    assert classifiers.attributes == ["vehicle", "flies"] and classifiers.resolution == 16
    vehicles, animals = cifar_batch(cifar, ["ship", "truck"], 20), cifar_batch(cifar, ["cat", "horse"], 20)
    p_vehicles, p_animals = classifiers.probabilities(vehicles), classifiers.probabilities(animals)
    assert p_vehicles.shape == (40, 2) and ((p_vehicles >= 0) & (p_vehicles <= 1)).all()
    assert p_vehicles[:, 0].mean() > p_animals[:, 0].mean() + 0.2
    bigger = torch.nn.functional.interpolate(vehicles, scale_factor=2, mode="nearest")  # 64x64: area-averaged back
    assert torch.allclose(classifiers.probabilities(bigger), p_vehicles, atol=1e-5)
    assert classifiers.probabilities(vehicles[:, :, ::4, ::4]).shape == (40, 2)  # 8x8: upsampled


def test_a_rerun_keeps_finished_classifiers_and_retrains_when_settings_change(cifar_classifiers, cifar, tmp_path):
    folder, _ = cifar_classifiers
    run = tmp_path / "run"
    shutil.copytree(folder, run / "classifiers")
    before = (run / "classifiers" / "vehicle.pt").read_bytes()
    again = sgan("classifiers", "train", "--images", cifar / "img", "--labels", cifar / "labels.csv", "-r", run,
                 *TRAIN_ARGS, env=ONE_THREAD)
    assert again.returncode == 0, again.stderr
    assert "Keeping 2 classifiers" in again.stderr
    assert (run / "classifiers" / "vehicle.pt").read_bytes() == before
    assert again.stdout.splitlines()[-1] == str(run / "classifiers" / "classifiers.json")
    changed = sgan("classifiers", "train", "--images", cifar / "img", "--labels", cifar / "labels.csv", "-r", run,
                   *NET_ARGS, "--kimg", 0.032, env=ONE_THREAD)
    assert changed.returncode == 0, changed.stderr
    assert "Keeping" not in changed.stderr
    assert (run / "classifiers" / "vehicle.pt").read_bytes() != before
    assert json.loads((run / "classifiers" / "classifiers.json").read_text())["settings"]["training"]["kimg"] == 0.032


def finished_attributes(index: Path) -> list[str]:
    try:
        return list(json.loads(index.read_text())["reports"])
    except (OSError, ValueError):
        return []


# `sgan classifiers train ARGS` with the second classifier held after its first minibatch until the
# process is interrupted, having first created the file argv[1]: where the interrupt lands is then
# decided by the test, not by how fast the machine trains.
PAUSED_AT_THE_SECOND = """
import sys, time
from pathlib import Path
from stylegan_cli.cli.app import main
from stylegan_cli.metrics import classifiers

train_one, calls = classifiers.train_one, []


class Held:
    def __init__(self, bar):
        self.bar = bar

    def advance(self, n=1):
        self.bar.advance(n)
        Path(sys.argv[1]).touch()
        time.sleep(600)


def paused_train_one(images, labels, settings, device, bar):
    calls.append(bar)
    return train_one(images, labels, settings, device, Held(bar) if len(calls) == 2 else bar)


classifiers.train_one = paused_train_one
main(sys.argv[2:])
"""


def test_ctrl_c_keeps_the_finished_classifiers_and_a_rerun_trains_the_rest(cifar, tmp_path):
    """classifiers.json is rewritten after each attribute; here the run is interrupted during the second."""
    out, held = tmp_path / "c", tmp_path / "held"
    args = ("classifiers", "train", "--images", cifar / "img", "--labels", cifar / "labels.csv", "-o", out,
            "-r", tmp_path / "run", *NET_ARGS, "--kimg", 3, "--batch", 32)
    env = {**{k: v for k, v in os.environ.items() if k != "SGAN_RUN"}, "PYTHONPATH": str(REPO), **ONE_THREAD}
    job = subprocess.Popen([sys.executable, "-c", PAUSED_AT_THE_SECOND, held, *map(str, args)], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not held.exists():
        assert job.poll() is None, job.stderr.read()
        assert time.monotonic() < deadline, "the second classifier never started"
        time.sleep(0.01)
    assert finished_attributes(out / "classifiers.json") == ["vehicle"]
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert sorted(p.name for p in out.iterdir()) == ["classifiers.json", "vehicle.pt"]  # no partial files
    with pytest.raises(UsageError, match="incomplete"):
        load_classifiers(out)
    vehicle = (out / "vehicle.pt").read_bytes()
    rerun = sgan(*args, env=ONE_THREAD)
    assert rerun.returncode == 0, rerun.stderr
    assert "Keeping 1 classifiers" in rerun.stderr
    assert (out / "vehicle.pt").read_bytes() == vehicle
    assert load_classifiers(out / "classifiers.json").attributes == ["vehicle", "flies"]
    assert sorted(p.name for p in out.iterdir()) == ["classifiers.json", "flies.pt", "vehicle.pt"]


@pytest.fixture()
def small_set(cifar, tmp_path) -> tuple[Path, list[str]]:
    """The image folder and the first few files, to build broken CSVs from."""
    return cifar / "img", [f"{cls}/{i:04d}.jpg" for cls in ("airplane", "cat") for i in range(3)]


@pytest.mark.parametrize("case, message", [
    ("no folder", "does not exist"),
    ("no csv", "does not exist"),
    ("no file column", "no `file` column"),
    ("not 0/1", "labels must be 0 or 1"),
    ("missing files", "1 of the 7 files"),
    ("one class", "needs examples of both 0 and 1"),
])
def test_bad_labelled_sets_are_one_clear_sentence(capsys, small_set, tmp_path, case, message):
    images, files = small_set
    rows = [["file", "vehicle"]] + [[f, int(f.startswith("airplane"))] for f in files]
    if case == "no file column":
        rows[0][0] = "path"
    elif case == "not 0/1":
        rows[2][1] = "yes"
    elif case == "missing files":
        rows.append(["airplane/nope.jpg", 1])
    elif case == "one class":
        rows = [["file", "vehicle"]] + [[f, 1] for f in files]
    labels = tmp_path / "missing.csv" if case == "no csv" else write_csv(tmp_path / "labels.csv", rows)
    folder = tmp_path / "nowhere" if case == "no folder" else images
    code, out, err = sgan_here(capsys, "classifiers", "train", "--images", folder, "--labels", labels,
                               "-r", tmp_path / "run", "--resolution", 16)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "classifiers").exists()


def test_the_loader_refuses_a_folder_that_holds_no_classifiers(tmp_path):
    with pytest.raises(UsageError, match="No classifiers at"):
        load_classifiers(tmp_path / "nothing")
    with pytest.raises(UsageError, match="not a classifiers folder"):
        load_classifiers(tmp_path)
