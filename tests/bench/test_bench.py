"""`sgan bench`: prints figures for BENCHMARKS.md on any machine, this one included."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import FACES, sgan, sgan_here

from stylegan_cli.bench.timing import count_work


def test_bench_prep_compares_with_the_reference_on_the_same_landmarks(prepped, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for photo in sorted(FACES.glob("*.jpg"))[:2]:
        shutil.copy(photo, src / photo.name)
    landmarks = prepped / "data" / "landmarks.json"  # covers all eight photos; the bench reads only these two
    entries = json.loads(landmarks.read_text())
    subset = {k: v for k, v in entries.items() if (src / v["in_the_wild"]["file_path"]).exists()}
    (tmp_path / "lm.json").write_text(json.dumps(subset))
    result = sgan("bench", "prep", "--src", src, "--landmarks", tmp_path / "lm.json", "--resolution", 128,
                  "--workers", 2, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["faces"] == 2 and figures["resolution"] == 128
    assert figures["reference_img_per_s_1core"] > 0 and figures["sgan_img_per_s_2proc"] > 0
    ref, fast = figures["reference_img_per_s_1core"], figures["sgan_img_per_s_1core"]
    # The speed-up is computed before the rates are rounded to 3 decimals, so it may differ from their ratio
    # by what that rounding allows, more on a slow machine; plus its own rounding to 2 decimals.
    assert abs(figures["speedup_per_core"] - fast / ref) <= fast / ref * (0.0005 / ref + 0.0005 / fast) + 0.005
    assert figures["psnr_db_min"] >= 40  # the fast path stays within 40 dB of FFHQ's from 128x128 up


def test_bench_train_times_the_trainers_step_counts_its_work_and_profiles_it(tmp_path):
    result = sgan("bench", "train", "--resolution", 16, "--batch", 4, "--fmap-base", 64, "--fmap-max", 16,
                  "--arch", "stylegan2", "--r1-every", 2, "--iters", 1, "--warmup", 1, "--json",
                  "--profile", tmp_path / "profile.txt")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["r1_every"] == 2 and figures["pl_every"] == 4  # path length every 4 steps by default
    assert figures["iterations"] == 4  # whole periods of the lazy regularisers
    assert abs(figures["s_per_kimg"] / 1000 * figures["img_per_s"] - 1) < 0.01
    assert figures["gflop_per_iteration"] > 0 and figures["tflop_per_s"] >= 0 and figures["peak_memory_gib"] > 0
    assert figures["ops_per_iteration"] > 0
    assert "s_per_kimg" in result.stderr  # the table, for people
    assert "aten::convolution" in (tmp_path / "profile.txt").read_text()  # torch.profiler's, of one more iteration


@pytest.mark.slow
def test_bench_train_with_augmentation_reports_its_share_of_the_step():
    """The same iteration timed with and without the augmentation pipeline (StyleGAN2-ADA) in front of D."""
    result = sgan("bench", "train", "--resolution", 32, "--batch", 4, "--fmap-base", 64, "--fmap-max", 16,
                  "--arch", "stylegan2", "--config-f", "--iters", 1, "--warmup", 1, "--aug", "ada", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["aug"] == "ada" and figures["augpipe"] == "bgc"
    assert figures["s_per_kimg_without_augment"] > 0
    assert figures["augment_share"] == pytest.approx(1 - figures["s_per_kimg_without_augment"] / figures["s_per_kimg"],
                                                     abs=0.01)


def test_a_training_iteration_never_waits_for_the_device():
    """No loss read back, no branch on a tensor, no blocking copy: the host can queue iterations ahead of the GPU
    (docs/design.md §8). fp16 covers the loss scaling, whose skipped steps are decided on the device."""
    result = sgan("bench", "train", "--resolution", 16, "--batch", 4, "--fmap-base", 64, "--fmap-max", 16,
                  "--arch", "stylegan2", "--r1-every", 2, "--precision", "fp16", "--iters", 1, "--warmup", 1, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["precision"] == "fp16" and figures["iterations"] == 4  # every pass: G, G_pl, D, D_r1
    assert figures["syncs_per_iteration"] == 0


def test_the_work_counter_counts_what_the_host_waits_for_and_nothing_on_the_host_side():
    net = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(net.parameters())  # not fused: reads its step counts, which live on the host
    x = torch.randn(8, 4)

    def step() -> torch.Tensor:
        opt.zero_grad()
        loss = net(x).square().mean()
        loss.backward()
        opt.step()
        return loss

    step()  # the optimiser's state exists
    quiet = count_work(step, list(net.parameters()))
    read = count_work(lambda: step().item(), list(net.parameters()))
    assert quiet.syncs == 0 and read.syncs == 1 and read.ops == quiet.ops + 1
    assert quiet.flops == read.flops == 2 * 2 * 8 * 4  # the forward and the weight gradient (x needs none)
    host = torch.randn(4)  # a copy to another device waits unless it is non_blocking ("meta" stands in for a GPU)
    assert count_work(lambda: host.to("meta")).syncs == 1
    assert count_work(lambda: host.to("meta", non_blocking=True)).syncs == 0


def test_bench_generate_reports_images_per_second_and_flops_per_image():
    small = sgan("bench", "generate", "--resolution", 16, "--batch", 2, "--fmap-base", 64, "--fmap-max", 16,
                 "--iters", 2, "--warmup", 1, "--json")
    large = sgan("bench", "generate", "--resolution", 32, "--batch", 2, "--fmap-base", 64, "--fmap-max", 16,
                 "--iters", 2, "--warmup", 1, "--json", "--precision", "bf16")
    assert small.returncode == 0 and large.returncode == 0, small.stderr + large.stderr
    small, large = json.loads(small.stdout), json.loads(large.stdout)
    assert small["img_per_s"] > 0 and large["precision"] == "bf16"
    assert large["gflop_per_image"] > small["gflop_per_image"] > 0  # one more block of convolutions


def test_bench_project_reports_steps_per_second_of_the_projector(capsys):
    result = sgan("bench", "project", "--resolution", 16, "--fmap-base", 64, "--fmap-max", 16, "--space", "wplus",
                  "--steps", 2, "--warmup", 1, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert (figures["arch"], figures["g_arch"], figures["space"], figures["steps"]) == ("stylegan2", "skip", "wplus", 2)
    assert figures["steps_per_s"] > 0
    assert figures["s_per_1000_steps"] == pytest.approx(1000 / figures["steps_per_s"], rel=1e-3)
    code, _, err = sgan_here(capsys, "bench", "project", "--arch", "pggan", "--g-arch", "orig")
    assert code == 2 and "no mapping network" in err


def test_bench_data_measures_every_level_of_the_dataset(prepped):
    result = sgan("bench", "data", "-r", prepped, "--workers", 1, "--batch", 4, "--batches", 3, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["images"] == 8 and figures["workers"] == 1
    assert [k for k in figures if k.startswith("img_per_s_")] == ["img_per_s_8", "img_per_s_16", "img_per_s_32",
                                                                  "img_per_s_64"]
    assert all(figures[f"img_per_s_{r}"] > 0 for r in (8, 16, 32, 64))
