"""The pipeline as a shell script chains it: prep, a tiny training, sample, mix and truncate in one run."""

from __future__ import annotations

import json

from conftest import FACES, sgan
from PIL import Image


def test_prep_train_sample_mix_truncate_in_one_run_directory(tmp_path):
    run = tmp_path / "run"
    steps = [
        ["prep", "ffhq", "--src", FACES, "--landmarks", "dlib", "--resolution", 32, "--workers", 2],
        ["train", "--resolution", 32, "--fmap-base", 128, "--fmap-max", 32, "--kimg", 0.096, "--lod-kimg", 0.024,
         "--batch", 8, "--workers", 0],
        ["sample", "--seeds", "0-7", "--grid", "4x2", "--save-latents"],
        ["mix", "--coarse", "1,2", "--middle", "3,4,5"],
        ["truncate", "--seeds", "1,2", "--psi", "0,0.7,1"],
    ]
    for args in steps:
        result = sgan(*args, env={"SGAN_RUN": str(run)})
        assert result.returncode == 0, (args, result.stderr)
    # Grids of 32 px images are enlarged by the smallest whole factor that makes them 512 px wide or more.
    assert Image.open(run / "samples" / "grid.png").size == (4 * (4 * 32 + 3 * 2), 4 * (2 * 32 + 2))
    assert Image.open(run / "mix" / "grid.png").size == (4 * (4 * 32 + 3 * 2), 4 * (3 * 32 + 2 * 2))
    assert Image.open(run / "truncate" / "grid.png").size == (6 * (3 * 32 + 2 * 2), 6 * (2 * 32 + 2))
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["command"][1] for h in history] == ["prep", "train", "sample", "mix", "truncate"]
    assert all(h["exit_status"] == 0 for h in history)
