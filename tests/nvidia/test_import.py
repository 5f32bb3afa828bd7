"""`sgan import` (docs/design.md §12): small files in each of NVIDIA's formats, built with the real naming and
layout rules (nvidia_files.py), are imported and rendered by sgan, and checked against an independent
computation of NVIDIA's forward passes (oracles.py); then the rest of the pipeline runs on them."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import nvidia_files
import nvidia_pickling
import oracles
import pytest
import torch
from conftest import sgan, sgan_here

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
}


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


def _oracle_images(name: str, written, z: np.ndarray, psi: float, cutoff: int | None) -> torch.Tensor:
    _, _, _, oracle, key, _ = FORMATS[name]
    if oracle is oracles.pggan_G:
        return oracle(_params(written, key), z)
    return oracle(_params(written, key), z, psi, cutoff)


def test_sgan_renders_what_nvidias_code_computes(imported):
    """Seeds as NVIDIA's scripts draw them, the file's constant noise, with and without truncation (Progressive
    GAN has no W space to truncate in)."""
    name, written, run, ckpt = imported
    G = load_generator(run, None).G
    z = np.stack([z_from_seed(s, G.z_dim) for s in SEEDS])
    for psi, cutoff in [(1.0, None)] + ([] if name.startswith("pggan") else [(0.7, 2)]):
        with torch.no_grad():
            ws = G.mapping(torch.from_numpy(z).float(), broadcast=True)
            if psi != 1:
                ws = G.truncate(ws, psi, cutoff)
            ours = G.synthesis(ws, noise_mode="const").double()
        theirs = _oracle_images(name, written, z, psi, cutoff)
        scale = max(1.0, theirs.abs().max().item())
        assert (ours - theirs).abs().max().item() <= 1e-4 * scale, (name, psi)
        # The PNGs NVIDIA's scripts write: x * 127.5 + 128, clipped, truncated to 8 bits.
        nvidia_png = (theirs * 127.5 + 128).clamp(0, 255).to(torch.uint8).int()
        assert (quantize(ours.float()).int() - nvidia_png).abs().max().item() <= 1, (name, psi)


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
    with torch.no_grad():
        ours = D(images).double()
    theirs = d_oracle(_params(written, "D"), images.double()).reshape(-1)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4 * max(1.0, theirs.abs().max().item())), name


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


def _conditional(G: torch.nn.Module) -> None:
    G.c_dim = G.mapping.c_dim = 10
    G.mapping.embed = _layer("FullyConnectedLayer", weight=torch.randn(24, 10), bias=torch.zeros(24))


def _alias_free(G: torch.nn.Module) -> None:  # StyleGAN3's SynthesisInput and its layers L0_36_512, ...
    G.synthesis.input = _layer("SynthesisInput", freqs=torch.randn(16, 2), phases=torch.randn(16))
    G.synthesis.input.affine = _layer("FullyConnectedLayer", weight=torch.randn(4, 24), bias=torch.zeros(4))


@pytest.mark.parametrize("change, words", [(_conditional, "conditional"), (_alias_free, "StyleGAN3 (alias-free")])
def test_networks_sgan_cannot_represent_are_refused_saying_what_they_are(capsys, tmp_path, change, words):
    nets = nvidia_files.stylegan2_pt(8, **SMALL_PT, w_dim=24, mapping_layers=1)
    change(nets["G_ema"])
    source = tmp_path / "network.pkl"
    nvidia_pickling.dump_persistent(source, {**nets, "augment_pipe": None, "training_set_kwargs": {}})
    code, out, err = sgan_here(capsys, "import", source, "-r", tmp_path / "run")
    assert code == 1 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


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
