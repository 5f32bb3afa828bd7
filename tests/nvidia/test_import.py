"""`sgan import` (docs/design.md §12): small files in each of NVIDIA's formats, built with the real naming and
layout rules (nvidia_files.py), are imported and rendered by sgan, and checked against an independent
computation of NVIDIA's forward passes (oracles.py); then the rest of the pipeline runs on them. Class-conditional
networks (StyleGAN2-ADA's, TF and PyTorch, and the StyleGAN3 repository's StyleGAN2) are checked for given labels."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import nvidia_files
import nvidia_pickling
import oracles
import pytest
import torch
from conftest import sgan, sgan_here
from PIL import Image

from stylegan_cli.model import checkpoint
from stylegan_cli.synthesis.generator import load_generator
from stylegan_cli.synthesis.images import quantize
from stylegan_cli.synthesis.latents import z_from_seed

SEEDS = (0, 1, 5)
SMALL_TF = dict(fmap_base=64, fmap_max=16)  # 16 maps up to 8x8, then 8, 4, ... (tiny but the full layout)
SMALL_PT = dict(channel_base=128, channel_max=16)  # the same maps: ADA's channel base is twice fmap_base

# name: (writer, writer kwargs, resolution, oracle for G_ema/Gs, the file's key for it, D oracle or None)
FORMATS = {
    "pggan-fused": (nvidia_files.write_pggan, dict(SMALL_TF, latent_size=24), 16, oracles.pggan_G, "Gs",
                    oracles.pggan_D),
    "pggan-separate": (nvidia_files.write_pggan, dict(SMALL_TF, latent_size=24, fused=False), 16, oracles.pggan_G,
                       "Gs", None),
    "stylegan": (nvidia_files.write_stylegan, dict(SMALL_TF, latent_size=20, dlatent_size=24, mapping_layers=3,
                                                   mapping_fmaps=12), 32, oracles.stylegan_G, "Gs", oracles.stylegan_D),
    "stylegan-128-fused": (nvidia_files.write_stylegan, dict(fmap_base=512, fmap_max=4, mapping_layers=2,
                                                             latent_size=8, dlatent_size=8, mapping_fmaps=8), 128,
                           oracles.stylegan_G, "Gs", oracles.stylegan_D),
    "stylegan2-tf": (nvidia_files.write_stylegan2_tf, dict(SMALL_TF, z_dim=20, w_dim=24, mapping_layers=2), 32,
                     oracles.stylegan2_tf_G, "Gs", oracles.stylegan2_tf_D),
    "stylegan2-ada": (nvidia_files.write_stylegan2_pt, dict(SMALL_PT, z_dim=20, w_dim=24, mapping_layers=2), 32,
                      oracles.stylegan2_pt_G, "G_ema", oracles.stylegan2_pt_D),
    "stylegan2-sg3": (nvidia_files.write_stylegan2_pt, dict(SMALL_PT, mapping_layers=2, flavour="stylegan3"), 16,
                      oracles.stylegan2_pt_G, "G_ema", oracles.stylegan2_pt_D),
    # Conditional: the TF one as StyleGAN2-ADA's TF code writes it (D_main maps the label with 0 layers by default;
    # its G embeds the label in z_dim features, which sgan's must be w_dim), the PyTorch ones with D mappings of
    # 2 layers and of MappingNetwork's default 8.
    "stylegan2-tf-cond": (nvidia_files.write_stylegan2_tf, dict(SMALL_TF, z_dim=24, w_dim=24, mapping_layers=2,
                                                                c_dim=10), 16, oracles.stylegan2_tf_G, "Gs",
                          oracles.stylegan2_tf_D),
    "stylegan2-ada-cond": (nvidia_files.write_stylegan2_pt, dict(SMALL_PT, z_dim=20, w_dim=24, mapping_layers=2,
                                                                 c_dim=10, d_mapping_kwargs={"num_layers": 2}), 16,
                           oracles.stylegan2_pt_G, "G_ema", oracles.stylegan2_pt_D),
    "stylegan2-sg3-cond": (nvidia_files.write_stylegan2_pt, dict(SMALL_PT, mapping_layers=2, flavour="stylegan3",
                                                                 c_dim=10), 16, oracles.stylegan2_pt_G, "G_ema",
                           oracles.stylegan2_pt_D),
}
CLASSES = (3, 0, 9)  # the labels of SEEDS' images from conditional networks
D_CLASSES = (3, 0, 9, 3, 7, 1, 9, 2)


def _c_dim(name: str) -> int:
    return FORMATS[name][1].get("c_dim", 0)


def _one_hot(name: str, classes) -> torch.Tensor | None:
    """The labels for `classes` as NVIDIA's networks and sgan's take them, (N, c_dim) float64; None where the
    format's network is unconditional."""
    c_dim = _c_dim(name)
    return torch.nn.functional.one_hot(torch.tensor(classes), c_dim).double() if c_dim else None


def _labelled(c: torch.Tensor | None) -> dict:
    """The keyword that gives an oracle its labels, none for an unconditional network."""
    return {} if c is None else {"c": c}


def _params(written, key: str):
    """The oracle's input: TF variables as written, or a PyTorch module's state dict."""
    net = written[key]
    return net.state_dict() if isinstance(net, torch.nn.Module) else net


@pytest.fixture(scope="module", params=sorted(FORMATS))
def imported(request, tmp_path_factory):
    """(format name, the written networks, the run it was imported into, the checkpoint path)."""
    name = request.param
    writer, kwargs, resolution, *_ = FORMATS[name]
    folder = tmp_path_factory.mktemp(name)
    written = writer(folder / f"{name}.pkl", resolution, seed=7, **kwargs)
    result = sgan("import", folder / f"{name}.pkl", "-r", folder / "run")
    assert result.returncode == 0, result.stderr
    return name, written, folder / "run", Path(result.stdout.strip())


def _oracle_images(name: str, written, z: np.ndarray, psi: float, cutoff: int | None,
                   c: torch.Tensor | None = None) -> torch.Tensor:
    _, _, _, oracle, key, _ = FORMATS[name]
    if oracle is oracles.pggan_G:
        return oracle(_params(written, key), z)
    return oracle(_params(written, key), z, psi, cutoff, **_labelled(c))


def _nvidia_png(images: torch.Tensor) -> torch.Tensor:
    """The PNGs NVIDIA's scripts write: x * 127.5 + 128, clipped, truncated to 8 bits (as ints)."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).int()


def test_sgan_renders_what_nvidias_code_computes(imported):
    """Seeds as NVIDIA's scripts draw them, the file's constant noise, with and without truncation (Progressive
    GAN has no W space to truncate in); a conditional network's images for CLASSES."""
    name, written, run, ckpt = imported
    G = load_generator(run, None).G
    z = np.stack([z_from_seed(s, G.z_dim) for s in SEEDS])
    c = _one_hot(name, CLASSES)
    for psi, cutoff in [(1.0, None)] + ([] if name.startswith("pggan") else [(0.7, 2)]):
        with torch.no_grad():
            ws = G.mapping(torch.from_numpy(z).float(), None if c is None else c.float(), broadcast=True)
            if psi != 1:
                ws = G.truncate(ws, psi, cutoff)
            ours = G.synthesis(ws, noise_mode="const").double()
        theirs = _oracle_images(name, written, z, psi, cutoff, c)
        scale = max(1.0, theirs.abs().max().item())
        assert (ours - theirs).abs().max().item() <= 1e-4 * scale, (name, psi)
        assert (quantize(ours.float()).int() - _nvidia_png(theirs)).abs().max().item() <= 1, (name, psi)


def test_the_discriminator_scores_what_nvidias_code_computes(imported):
    name, written, run, ckpt = imported
    d_oracle = FORMATS[name][5]
    state = checkpoint.load_training_state(ckpt)
    if d_oracle is None:
        assert "D" not in state and state["imported"]["notes"]
        return
    D = checkpoint.build_discriminator(state["config"])
    D.load_state_dict(state["D"])
    R = state["config"]["resolution"]
    # Smooth images (white noise averages away in D's downsampling), eight: two minibatch-std groups, which NVIDIA's
    # code forms by stride (samples 0, 2, 4, 6 and 1, 3, 5, 7).
    coarse = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    images = torch.nn.functional.interpolate(coarse, size=(R, R), mode="bilinear", align_corners=False)
    c = _one_hot(name, D_CLASSES)  # a conditional D scores each image for its label
    with torch.no_grad():
        ours = D(images, c=None if c is None else c.float()).double()
    theirs = d_oracle(_params(written, "D"), images.double(), **_labelled(c)).reshape(-1)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4 * max(1.0, theirs.abs().max().item())), name


def test_the_configuration_says_how_many_classes_and_how_deep_ds_label_mapping_is(imported):
    """c_dim from the file's label embedding (0: unconditional), d_mapping_layers from its D's label mapping; an
    imported network names no classes (sgan uses their numbers)."""
    name, written, run, ckpt = imported
    config = checkpoint.load_training_state(ckpt)["config"]
    assert config["c_dim"] == _c_dim(name) and config["class_names"] == []
    if not _c_dim(name):
        return
    D = written["D"]
    layers = D.state_dict() if isinstance(D, torch.nn.Module) else D
    depth = sum(1 for k in layers if re.fullmatch(r"mapping\.fc\d+\.weight|Mapping\d+/weight", k))
    assert config["d_mapping_layers"] == depth and depth == {"stylegan2-tf-cond": 0, "stylegan2-ada-cond": 2,
                                                             "stylegan2-sg3-cond": 8}[name]


def test_sampling_a_conditional_import_needs_a_class_and_renders_it(imported, capsys, tmp_path):
    """`sgan sample --class 3` renders class 3 (the oracle's images, to one level); without --class, or with a
    class the network lacks, it is a one-sentence usage error."""
    name, written, run, ckpt = imported
    if not _c_dim(name):
        return
    out = tmp_path / "samples"
    result = sgan("sample", "--class", 3, "--seeds", "0-3", "-r", run, "--out", out)
    assert result.returncode == 0, result.stderr
    pngs = [np.asarray(Image.open(out / f"seed{s:04d}.png")) for s in range(4)]
    z_dim = checkpoint.load_training_state(ckpt)["config"]["z_dim"]
    z = np.stack([z_from_seed(s, z_dim) for s in range(4)])
    theirs = _nvidia_png(_oracle_images(name, written, z, 1.0, None, _one_hot(name, [3] * 4)))
    ours = torch.from_numpy(np.stack(pngs)).permute(0, 3, 1, 2).int()
    assert ours.shape == theirs.shape and (ours - theirs).abs().max().item() <= 1, name
    for args, words in ((["--seeds", "0-3"], "--class"), (["--class", "99", "--seeds", "0"], "99")):
        code, stdout, err = sgan_here(capsys, "sample", *args, "-r", run, "--out", tmp_path / "refused")
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_the_checkpoint_holds_both_generators_w_avg_and_the_files_noise(imported):
    name, written, run, ckpt = imported
    state = checkpoint.load_training_state(ckpt)
    assert ckpt.name == "ckpt-0000000.pt" and state["nimg"] == 0 and state["imported"]["format"]
    assert not any(torch.equal(state["G"][k], state["G_ema"][k]) for k in state["G"] if k.endswith("conv.weight"))
    noise = [v for k, v in state["G_ema"].items() if k.endswith("noise.const")]
    if name.startswith("pggan"):
        assert noise == []
        return
    key = FORMATS[name][4]
    if key == "G_ema":
        theirs = [v for k, v in written[key].state_dict().items() if k.endswith("noise_const")]
        w_avg = written[key].state_dict()["mapping.w_avg"]
    else:
        params = written[key]
        theirs = [params[f"synthesis/noise{i}"] for i in range(len(noise))]
        w_avg = params["dlatent_avg"]
    assert len(noise) == len(theirs) and all(np.array_equal(np.asarray(a).reshape(-1), np.asarray(b).reshape(-1))
                                             for a, b in zip(noise, theirs))
    assert np.array_equal(state["G_ema"]["w_avg"].numpy(), np.asarray(w_avg, dtype=np.float32))


@pytest.mark.slow
def test_importing_the_same_file_again_is_a_no_op_and_another_run_is_untouched(imported, tmp_path):
    name, written, run, ckpt = imported
    source = next(run.parent.glob("*.pkl"))
    again = sgan("import", source, "-r", run, "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["checkpoint"] == str(ckpt) and summary["resolution"] == FORMATS[name][2]
    assert summary["parameters"]["G"] > 0 and "G_ema" in summary["taken"]
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["ckpt-0000000.pt", "latest"]


def _write(path: Path, obj) -> Path:
    path.write_bytes(obj if isinstance(obj, bytes) else pickle.dumps(obj))
    return path


@pytest.mark.parametrize("make, status, words", [
    (lambda d: d / "missing.pkl", 2, "No network pickle"),
    (lambda d: d, 2, "is not a file"),
    (lambda d: _write(d / "dict.pkl", {"answer": 42}), 1, "not of NVIDIA's networks"),
    (lambda d: _write(d / "text.pkl", b"hello, not a pickle"), 1, "text.pkl"),
])
def test_bad_files_are_one_sentence_and_leave_no_run_behind(capsys, tmp_path, make, status, words):
    run = tmp_path / "run"
    code, out, err = sgan_here(capsys, "import", make(tmp_path), "-r", run)
    assert code == status and words in err and out == "" and len(err.strip().splitlines()) == 1, err
    assert not run.exists()


def test_a_truncated_file_is_refused(capsys, tmp_path):
    source = tmp_path / "whole.pkl"
    nvidia_files.write_stylegan2_pt(source, 8, **SMALL_PT, mapping_layers=1)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    code, out, err = sgan_here(capsys, "import", cut, "-r", tmp_path / "run")
    assert code == 1 and "truncated" in err and not (tmp_path / "run").exists()


def test_a_pickle_crafted_to_run_a_command_is_refused_and_the_command_never_runs(capsys, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    source = _write(tmp_path / "stylegan2-ffhq-config-f.pkl", {"G_ema": Exploit()})
    code, out, err = sgan_here(capsys, "import", source, "-r", tmp_path / "run")
    assert code == 1 and "system" in err and "refusing" in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def _layer(name: str, **tensors: torch.Tensor) -> torch.nn.Module:
    module = nvidia_files.nvidia_class(name, "ada")()
    for key, value in tensors.items():
        module.register_parameter(key, torch.nn.Parameter(value, requires_grad=False))
    return module


def _alias_free(path: Path) -> None:  # StyleGAN3's SynthesisInput and its layers L0_36_512, ...
    nets = nvidia_files.stylegan2_pt(8, **SMALL_PT, w_dim=24, mapping_layers=1)
    G = nets["G_ema"]
    G.synthesis.input = _layer("SynthesisInput", freqs=torch.randn(16, 2), phases=torch.randn(16))
    G.synthesis.input.affine = _layer("FullyConnectedLayer", weight=torch.randn(4, 24), bias=torch.zeros(4))
    nvidia_pickling.dump_persistent(path, {**nets, "augment_pipe": None, "training_set_kwargs": {}})


def _conditional_pt(**kwargs):
    return lambda path: nvidia_files.write_stylegan2_pt(path, 8, **SMALL_PT, w_dim=24, mapping_layers=1, c_dim=10,
                                                        **kwargs)


def _conditional_tf(**kwargs):
    return lambda path: nvidia_files.write_stylegan2_tf(path, 8, **SMALL_TF, mapping_layers=1, c_dim=10, **kwargs)


@pytest.mark.parametrize("write, words", [
    (_alias_free, "StyleGAN3 (alias-free"),
    # Conditional networks whose label embedding or mapping sgan's networks do not have.
    (_conditional_pt(embed_features=12), "embeds its labels in 12 features"),
    (_conditional_tf(z_dim=20, w_dim=24), "embeds its labels in 20 features"),  # TF's label_fmaps: latent_size
    (_conditional_pt(d_mapping_kwargs={"num_layers": 2, "lr_multiplier": 0.1}), "learning-rate multiplier 0.1"),
    (_conditional_tf(z_dim=24, w_dim=24, d_mapping_layers=1), "learning-rate multiplier 0.1"),  # D_main's default
    (_conditional_pt(cmap_dim=8), "labels to 8 features"),
])
def test_networks_sgan_cannot_represent_are_refused_saying_what_they_are(capsys, tmp_path, write, words):
    source = tmp_path / "network.pkl"
    write(source)
    code, out, err = sgan_here(capsys, "import", source, "-r", tmp_path / "run")
    assert code == 1 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_imported_run_passes_through_every_stage_and_fine_tunes(prepped, tmp_path):
    """Import a 32x32 StyleGAN2-ADA network into a run with a dataset, then sample, mix, truncate, interpolate,
    noise, a metric, and a short fine-tuning that starts from the file's networks, not from scratch."""
    run = tmp_path / "run"
    shutil.copytree(prepped / "data", run / "data")
    source = tmp_path / "net.pkl"
    nvidia_files.write_stylegan2_pt(source, 32, **SMALL_PT, z_dim=20, w_dim=24, mapping_layers=2)
    imported = sgan("import", source, "-r", run)
    assert imported.returncode == 0, imported.stderr
    for args in (["sample", "--seeds", "0-1"], ["mix", "--coarse", "1,2", "--fine", "3"],
                 ["truncate", "--seeds", "0", "--psi", "0,1"], ["interpolate", "--seeds", "0,1", "--steps", "3"],
                 ["noise", "--seed", "0", "--n", "4"], ["metrics", "msssim4"]):
        result = sgan(*args, "-r", run)
        assert result.returncode == 0, (args, result.stderr)
    before = checkpoint.load_training_state(Path(imported.stdout.strip()))
    tuned = sgan("train", "-r", run, "--kimg", 0.008, "--batch", 4, "--workers", 0, "--snap", 1, "--json")
    assert tuned.returncode == 0, tuned.stderr
    assert "Fine-tuning net.pkl" in tuned.stderr
    after = checkpoint.load_training_state(Path(json.loads(tuned.stdout)["checkpoint"]))
    assert after["nimg"] == 8 and after["config"]["resolution"] == 32 and not after["config"]["progressive"]
    for net in ("G", "D"):
        moved = max((after[net][k] - before[net][k]).abs().max().item() for k in before[net])
        assert 0 < moved < 0.05, (net, moved)  # two Adam steps of lr 0.002 from the file's weights
