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
    ratio = figures["sgan_img_per_s_1core"] / figures["reference_img_per_s_1core"]
    assert abs(figures["speedup_per_core"] - ratio) < 0.02
    assert figures["psnr_db_min"] >= 40  # the fast path stays within 40 dB of FFHQ's from 128x128 up
