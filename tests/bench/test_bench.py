"""`sgan bench prep`: prints figures for BENCHMARKS.md on any machine, this one included."""

from __future__ import annotations

import json
import shutil

from conftest import FACES, sgan


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


def test_bench_train_times_the_trainers_step_and_counts_its_flops():
    result = sgan("bench", "train", "--resolution", 16, "--batch", 4, "--fmap-base", 64, "--fmap-max", 16,
                  "--arch", "stylegan2", "--r1-every", 2, "--iters", 1, "--warmup", 1, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["r1_every"] == 2 and figures["pl_every"] == 4  # path length every 4 steps by default
    assert figures["iterations"] == 4  # whole periods of the lazy regularisers
    assert abs(figures["s_per_kimg"] / 1000 * figures["img_per_s"] - 1) < 0.01
    assert figures["gflop_per_iteration"] > 0 and figures["tflop_per_s"] >= 0 and figures["peak_memory_gib"] > 0
    assert "s_per_kimg" in result.stderr  # the table, for people


def test_bench_generate_reports_images_per_second_and_flops_per_image():
    small = sgan("bench", "generate", "--resolution", 16, "--batch", 2, "--fmap-base", 64, "--fmap-max", 16,
                 "--iters", 2, "--warmup", 1, "--json")
    large = sgan("bench", "generate", "--resolution", 32, "--batch", 2, "--fmap-base", 64, "--fmap-max", 16,
                 "--iters", 2, "--warmup", 1, "--json", "--precision", "bf16")
    assert small.returncode == 0 and large.returncode == 0, small.stderr + large.stderr
    small, large = json.loads(small.stdout), json.loads(large.stdout)
    assert small["img_per_s"] > 0 and large["precision"] == "bf16"
    assert large["gflop_per_image"] > small["gflop_per_image"] > 0  # one more block of convolutions


def test_bench_data_measures_every_level_of_the_dataset(prepped):
    result = sgan("bench", "data", "-r", prepped, "--workers", 1, "--batch", 4, "--batches", 3, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["images"] == 8 and figures["workers"] == 1
    assert [k for k in figures if k.startswith("img_per_s_")] == ["img_per_s_8", "img_per_s_16", "img_per_s_32",
                                                                  "img_per_s_64"]
    assert all(figures[f"img_per_s_{r}"] > 0 for r in (8, 16, 32, 64))
