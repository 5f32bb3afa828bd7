"""Class-conditional training and generation (docs/design.md §15): `sgan train --cond` on a labelled dataset, and
`--class` on the synthesis stages.

The run of this file trains on two CIFAR-10 classes of clearly different colour (frog: green-brown, ship: blue) at
16x16, long enough for the labels to matter, and checks what a user would look at: the samples of each class
resemble that class's real images more than the other's.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import CIFAR, sgan

from stylegan_cli.model.discriminator import Discriminator
from stylegan_cli.model.generator import Generator

CLASSES = ("frog", "ship")
TRAIN = ("--cond", "--arch", "stylegan2", "--no-progressive", "--fmap-base", 256, "--fmap-max", 64, "--batch", 16,
         "--pl-weight", 0, "--aug", "none", "--lr", 0.003, "--workers", 0, "--tick", 0.25)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A run whose dataset holds the 200 frog and ship images of the test assets at 16x16, labelled by folder."""
    root = tmp_path_factory.mktemp("cond")
    for name in CLASSES:
        shutil.copytree(CIFAR / name, root / "src" / name)
    run = root / "run"
    result = sgan("prep", "images", "--src", root / "src", "-r", run, "--resolution", 16, "--labels", "folders")
    assert result.returncode == 0, result.stderr
    return run


@pytest.fixture(scope="module")
def trained(labelled):
    result = sgan("train", "-r", labelled, *TRAIN, "--kimg", 1, "--snap", 1, timeout=1800)
    assert result.returncode == 0, result.stderr
    return labelled


def _mean_colours(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1, 3).astype(np.float64).mean(axis=(0, 1))


def test_the_networks_take_labels_as_nvidias_do():
    G = Generator("stylegan2", 16, z_dim=32, w_dim=32, mapping_width=32, fmap_base=128, fmap_max=32,
                  g_arch="skip", c_dim=3)
    D = Discriminator(16, fmap_base=128, fmap_max=32, d_arch="resnet", arch="stylegan2", c_dim=3)
    # the label's embedding joins the normalised z: the first mapping layer reads z_dim + w_dim features
    assert G.mapping_network.layers[0].weight.shape == (32, 64)
    # D maps the label to as many features as its 4x4 layers have, and projects its last layer's on them
    assert D.mapping(None, torch.eye(3)).shape == (3, 32) and D.epilogue.out.weight.shape[0] == 32
    z, c = torch.randn(4, 32), torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        images = G(z, c=c, noise_mode="const")
        other = G(z, c=torch.eye(3)[[1, 2, 0, 1]], noise_mode="const")
        assert not torch.allclose(images, other)  # the label changes the image
        # the score is the projection of D's last features on the mapped label, scaled by 1/sqrt(cmap_dim)
        x = torch.randn(4, 3, 16, 16)
        D.epilogue.out.register_forward_hook(lambda m, i, o: features.append(o))
        features = []
        scores = D(x, c=c)
        expected = (features[0] * D.mapping(None, c)).sum(1) / 32**0.5
        assert torch.allclose(scores, expected, atol=1e-6)
    for arch in ("stylegan", "pggan"):
        G = Generator(arch, 16, z_dim=32, w_dim=32, mapping_width=32, fmap_base=128, fmap_max=32, c_dim=3)
        D = Discriminator(16, fmap_base=128, fmap_max=32, arch=arch, c_dim=3)
        with torch.no_grad():
            assert D(G(z, c=c), c=c).shape == (4,)
    assert G.w_dim == 35  # pggan's input is z and the one-hot label, normalised together (Progressive GAN's code)


@pytest.mark.slow
def test_cond_needs_a_labelled_dataset_and_is_given_again_on_resume(trained, tmp_path):
    unlabelled = tmp_path / "plain"
    shutil.copytree(CIFAR / "ship", tmp_path / "src")
    assert sgan("prep", "images", "--src", tmp_path / "src", "-r", unlabelled, "--resolution", 16).returncode == 0
    result = sgan("train", "-r", unlabelled, "--cond", "--kimg", 0.016, "--workers", 0)
    assert result.returncode == 2 and "--cond needs a labelled dataset" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    without = sgan("train", "-r", trained, "--kimg", 1.1, "--workers", 0)
    assert without.returncode == 2 and "holds a class-conditional network (2 classes); pass --cond" in without.stderr
    config = json.loads((trained / "train" / "config.json").read_text())
    assert config["c_dim"] == 2 and config["class_names"] == list(CLASSES)


@pytest.mark.slow
def test_each_class_looks_like_its_own_real_images(trained):
    from stylegan_cli.data.dataset import Dataset

    dataset = Dataset(trained / "data" / "dataset.lmdb")
    reals = np.stack([dataset.image(i, 16) for i in range(len(dataset))])
    real_means = [_mean_colours(reals[dataset.labels == k]) for k in range(2)]
    del dataset
    for k, name in enumerate(CLASSES):
        result = sgan("sample", "-r", trained, "--seeds", "0-63", "--class", name, "--grid", "8x8")
        assert result.returncode == 0, result.stderr
        folder = trained / "samples" / name
        from PIL import Image
        fakes = np.stack([np.asarray(Image.open(folder / f"seed{s:04d}.png")) for s in range(64)])
        mean = _mean_colours(fakes)
        own, other = (np.linalg.norm(mean - real_means[j]) for j in (k, 1 - k))
        assert own < other, (name, mean, real_means)
    report = sgan("report", "-r", trained)
    assert report.returncode == 0, report.stderr
    html = (trained / "report.html").read_text() if (trained / "report.html").is_file() else report.stdout
    assert all(f"sgan sample --class {name}" in html for name in CLASSES)


@pytest.mark.slow
def test_class_choice_is_one_sentence_when_wrong_and_truncation_centres_on_the_class(trained, tmp_path):
    for args, words in ((("--seeds", "0-1"), "class-conditional (2 classes): pick one with --class"),
                        (("--seeds", "0-1", "--class", "cat"), "neither a class name (frog, ship)"),
                        (("--seeds", "0-1", "--class", "2"), "an index from 0 to 1")):
        result = sgan("sample", "-r", trained, *args, "--out", tmp_path / "x")
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    # psi 0 gives every seed the class's centre: one image per class, and the two classes' differ
    out = {}
    for name in CLASSES:
        result = sgan("sample", "-r", trained, "--seeds", "0-2", "--class", name, "--trunc", 0, "--save-latents",
                      "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        from PIL import Image
        images = [np.asarray(Image.open(tmp_path / name / f"seed{s:04d}.png")) for s in range(3)]
        assert all((im == images[0]).all() for im in images)
        out[name] = images[0]
        assert (np.load(tmp_path / name / "latents.npz")["labels"] == CLASSES.index(name)).all()
    assert not (out["frog"] == out["ship"]).all()
    # a latents file's rows keep their class: re-rendering the file without --class gives the same images
    again = sgan("sample", "-r", trained, "--seeds", tmp_path / "ship" / "latents.npz", "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    for stage in (("mix", "--coarse", "0-1", "--fine", "2"), ("truncate", "--seeds", "0-1"),
                  ("interpolate", "--seeds", "0,1", "--steps", 2), ("noise", "--seed", 0)):
        result = sgan(*stage, "-r", trained, "--class", "ship", "--out", tmp_path / stage[0])
        assert result.returncode == 0, (stage, result.stderr)


@pytest.mark.slow
def test_an_unconditional_network_refuses_a_class(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(CIFAR / "ship", tmp_path / "src")
    assert sgan("prep", "images", "--src", tmp_path / "src", "-r", run, "--resolution", 16).returncode == 0
    assert sgan("train", "-r", run, "--arch", "stylegan2", "--no-progressive", "--fmap-base", 64, "--fmap-max", 16,
                "--batch", 8, "--kimg", 0.008, "--workers", 0, "--aug", "none").returncode == 0
    result = sgan("sample", "-r", run, "--seeds", "0", "--class", "1")
    assert result.returncode == 2 and "unconditional network; leave out --class" in result.stderr


@pytest.mark.slow
def test_metrics_draw_the_generated_images_labels_from_the_dataset_and_say_so(trained):
    from stylegan_cli.data.dataset import Dataset
    from stylegan_cli.metrics.imagesets import draw_labels
    from stylegan_cli.synthesis.generator import load_generator

    G = load_generator(trained, None).G
    dataset = Dataset(trained / "data" / "dataset.lmdb")
    labels = np.repeat(np.int64(1), len(dataset))  # a dataset of one class gives every fake that class
    drawn = draw_labels(G, labels, 16, torch.Generator().manual_seed(0))
    assert (drawn.argmax(1) == 1).all() and drawn.shape == (16, 2)
    mixed = draw_labels(G, dataset.labels, 400, torch.Generator().manual_seed(0)).argmax(1).float().mean()
    assert 0.4 < float(mixed) < 0.6  # half frogs, half ships, as the dataset
    del dataset
    result = sgan("metrics", "-r", trained, "fid10", "--workers", 0, "--json")
    assert result.returncode == 0, result.stderr
    (found,) = json.loads(result.stdout)["results"]
    assert found["settings"]["labels"] == "drawn from the dataset"
