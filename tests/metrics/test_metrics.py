"""`sgan metrics`: results that match independent computations, one metrics.jsonl line per result,
cached dataset statistics, and one clear sentence for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import CIFAR, sgan, sgan_here
from PIL import Image

from stylegan_cli.metrics import registry as metrics
from stylegan_cli.metrics.inception import load_inception


@pytest.fixture(scope="module")
def planes() -> Path:
    return _subset("airplane", 8)


@pytest.fixture(scope="module")
def cats() -> Path:
    return _subset("cat", 8)


_made: dict = {}


def _subset(name: str, n: int) -> Path:
    """A folder with the first n CIFAR-10 images of one class, converted to PNG."""
    import tempfile

    if name not in _made:
        out = Path(tempfile.mkdtemp(prefix=f"cifar-{name}-"))
        for path in sorted((CIFAR / name).iterdir())[:n]:
            Image.open(path).save(out / f"{path.stem}.png")
        _made[name] = out
    return _made[name]


def features_of(folder: Path) -> np.ndarray:
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir())]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return load_inception()(batch).double().numpy()


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))


def results_of(out: str) -> dict:
    return {r["metric"]: r for r in json.loads(out)["results"]}


def test_metric_names_follow_the_papers_and_nvidias_conventions():
    assert metrics.parse_metric("fid50k") == metrics.Metric("fid50k", "fid", 50_000)
    assert metrics.parse_metric("fid500").count == 500
    assert metrics.parse_metric("fid").count == 50_000
    assert metrics.parse_metric("pr50k3") == metrics.Metric("pr50k3", "pr", 50_000, neighbours=3)
    assert metrics.parse_metric("pr10k5").neighbours == 5
    ppl = metrics.parse_metric("ppl_zend")
    assert (ppl.kind, ppl.space, ppl.sampling, ppl.count) == ("ppl", "z", "end", 100_000)
    assert metrics.parse_metric("ls").space == "w" and metrics.parse_metric("ls_z").space == "z"
    assert metrics.parse_metric("swd").count == 16_384 and metrics.parse_metric("msssim").count == 10_000


def test_fid_of_a_folder_with_itself_is_zero(capsys, tmp_path, planes):
    code, out, err = sgan_here(capsys, "metrics", "fid", "--real", planes, "--fake", planes, "-r", tmp_path, "--json")
    assert code == 0, err
    assert abs(results_of(out)["fid"]["value"]) < 1e-6


@pytest.mark.slow
def test_fid_of_two_folders_equals_a_scipy_computation_on_the_same_features(capsys, tmp_path, planes, cats):
    code, out, err = sgan_here(capsys, "metrics", "fid", "kid", "pr", "--real", planes, "--fake", cats,
                               "-r", tmp_path, "--json")
    assert code == 0, err
    got = results_of(out)
    expected = scipy_fid(features_of(planes), features_of(cats))
    assert got["fid"]["value"] == pytest.approx(expected, rel=1e-4)
    assert got["kid"]["value"] > 0
    assert 0 <= got["pr_precision"]["value"] <= 1 and 0 <= got["pr_recall"]["value"] <= 1
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["metric"] for line in lines] == ["fid", "kid", "pr_precision", "pr_recall"]
    assert lines[0]["settings"]["real"] == str(planes) and lines[0]["settings"]["count"] == 8
    assert lines[0]["checkpoint"] is None and lines[0]["seconds"] >= 0


@pytest.mark.parametrize("args, message", [
    (["fid", "--real", "EMPTY", "--fake", "PLANES"], "holds no images"),
    (["fid", "--real", "PLANES", "--fake", "BIG"], "The real images are 32x32 and the fake ones 64x64"),
    (["fid", "--real", "PLANES", "--fake", "MIXED"], "a set must have one size"),
    (["fid", "--real", "PLANES"], "--real needs --fake"),
    (["ppl_wend", "--real", "PLANES", "--fake", "PLANES"], "needs a generator"),
    (["fid", "--real", "PLANES", "--fake", "PLANES", "--inception", "NOWHERE"], "--inception names"),
    (["fidelity"], "Unknown metric 'fidelity'"),
])
def test_bad_input_is_one_sentence_and_exit_status_2(capsys, tmp_path, planes, args, message):
    (tmp_path / "empty").mkdir()
    big, mixed = tmp_path / "big", tmp_path / "mixed"
    big.mkdir()
    mixed.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (i, 0, 0)).save(big / f"{i}.png")
    shutil.copy(next(planes.iterdir()), mixed / "a.png")
    Image.new("RGB", (64, 64)).save(mixed / "b.png")
    names = {"EMPTY": tmp_path / "empty", "PLANES": planes, "BIG": big, "MIXED": mixed,
             "NOWHERE": tmp_path / "nowhere.pt"}
    code, out, err = sgan_here(capsys, "metrics", *[names.get(a, a) for a in args], "-r", tmp_path / "run")
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def evaluated_run(trained, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("metrics-run") / "run"
    shutil.copytree(trained, run, symlinks=True)
    return run


@pytest.mark.slow
def test_a_run_is_evaluated_at_its_training_resolution_and_logged_per_result(evaluated_run, user_cache):
    result = sgan("metrics", "-r", evaluated_run, "fid8", "kid8", "ppl_wend4", "swd8", "msssim4", "--no-crop",
                  "--workers", 0, "--batch", 4, "--json")
    assert result.returncode == 0, result.stderr
    got = results_of(result.stdout)
    assert got["fid8"]["value"] > 0 and np.isfinite(got["kid8"]["value"]) and got["ppl_wend4"]["value"] > 0
    assert got["swd8"]["value"] == got["swd8_16"]["value"] > 0  # a 16x16 model has one pyramid level
    assert 0 < got["msssim4"]["value"] < 1
    lines = [json.loads(line) for line in (evaluated_run / "metrics.jsonl").read_text().splitlines()]
    assert [line["metric"] for line in lines] == ["fid8", "kid8", "ppl_wend4", "swd8", "swd8_16", "msssim4"]
    for line in lines:
        assert Path(line["checkpoint"]).parent == evaluated_run / "checkpoints"
        assert line["kimg"] > 0 and line["settings"]["resolution"] == 16 and line["seconds"] >= 0
    assert list((user_cache / "stats").glob("*-16-8-inception.npy")), "the dataset's features were not cached"


def test_cached_dataset_statistics_give_the_same_fid(evaluated_run, user_cache):
    def fid8() -> float:
        result = sgan("metrics", "-r", evaluated_run, "fid8", "--workers", 0, "--batch", 4, "--json")
        assert result.returncode == 0, result.stderr
        return results_of(result.stdout)["fid8"]["value"]

    first = fid8()  # computes the dataset's statistics into the cache (or finds them there)
    cached = list((user_cache / "stats").glob("*-16-8-inception.npy"))
    assert cached
    before = cached[0].stat().st_mtime_ns
    assert fid8() == pytest.approx(first, rel=1e-6)
    assert cached[0].stat().st_mtime_ns == before


@pytest.mark.slow
def test_the_generated_images_can_be_made_in_bf16_and_the_result_says_so(evaluated_run):
    fp32, bf16 = (sgan("metrics", "-r", evaluated_run, "fid8", *flags, "--workers", 0, "--batch", 4, "--json")
                  for flags in ([], ["--precision", "bf16"]))
    assert fp32.returncode == 0 and bf16.returncode == 0, fp32.stderr + bf16.stderr
    fp32, bf16 = results_of(fp32.stdout)["fid8"], results_of(bf16.stdout)["fid8"]
    assert bf16["settings"] == {**fp32["settings"], "precision": "bf16"} and "precision" not in fp32["settings"]
    # other images (bf16 moves pixels by a level or so), much the same distance
    assert bf16["value"] != fp32["value"] and bf16["value"] == pytest.approx(fp32["value"], rel=0.1)


@pytest.mark.slow
def test_training_with_metrics_logs_them_at_the_end_and_rejects_unknown_names_up_front(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run, symlinks=True)
    args = ["train", "-r", run, "--resolution", 16, "--fmap-base", 128, "--fmap-max", 32, "--kimg", 0.144,
            "--lod-kimg", 0.032, "--batch", 8, "--workers", 0, "--snap", 1]
    bad = sgan(*args, "--metrics", "fid4,fidelity")
    assert bad.returncode == 2 and "Unknown metric 'fidelity'" in bad.stderr
    result = sgan(*args, "--metrics", "fid4")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(line["metric"], line["kimg"]) for line in lines] == [("fid4", 0.144)]
    assert Path(lines[0]["checkpoint"]).is_file() and lines[0]["value"] > 0


def test_linear_separability_uses_the_classifiers_given_and_needs_some(evaluated_run, tmp_path, capsys):
    images = tmp_path / "labelled"
    rows = [["file", "vehicle"]]
    for cls, label in (("airplane", 1), ("cat", 0)):
        (images / cls).mkdir(parents=True)
        for path in sorted((CIFAR / cls).glob("*.jpg"))[:20]:
            shutil.copy(path, images / cls / path.name)
            rows.append([f"{cls}/{path.name}", label])
    (tmp_path / "labels.csv").write_text("".join(",".join(map(str, row)) + "\n" for row in rows))
    trained = sgan("classifiers", "train", "--images", images, "--labels", tmp_path / "labels.csv",
                   "-r", tmp_path, "-o", tmp_path / "classifiers", "--resolution", 16, "--fmap-base", 64,
                   "--fmap-max", 16, "--kimg", 0.064, "--batch", 8, env={"OMP_NUM_THREADS": "1"})
    assert trained.returncode == 0, trained.stderr
    code, out, err = sgan_here(capsys, "metrics", "-r", evaluated_run, "ls_z40", "--classifiers",
                               tmp_path / "classifiers", "--batch", 8, "--json")
    assert code == 0, err
    value = results_of(out)["ls_z40"]["value"]
    assert 1.0 <= value <= 2.0 + 1e-9  # exp of one binary conditional entropy, at most ln 2
    code, out, err = sgan_here(capsys, "metrics", "-r", tmp_path / "elsewhere", "ls", "--ckpt",
                               evaluated_run / "checkpoints" / "latest")
    assert code == 2 and "ls needs attribute classifiers" in err
