"""`sgan train --metrics`: each result is that of the checkpoint it names, evaluated at the resolution and
fade-in the checkpoint records, so `sgan metrics --ckpt` on that checkpoint gives it again, to every digit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import sgan

from stylegan_cli.model import checkpoint

# 8x8 for two steps of 8 images, then 16x16 fading in over two steps. KID on 8 images: the cheapest metric
# on Inception features that any resolution admits (SWD and MS-SSIM refuse 8x8; FID takes eigendecompositions).
ARGS = ["--resolution", 16, "--fmap-base", 128, "--fmap-max", 32, "--lod-kimg", 0.016, "--batch", 8,
        "--workers", 0, "--metrics", "kid8"]


@pytest.fixture(scope="module")
def data(prepped) -> Path:
    return prepped / "data" / "dataset.lmdb"


# Each run ends with a metric right after a step that changed the phase: the first step at 16x16 (alpha 0), then
# the step halfway through the fade. Checkpoints are named by whole kimg, so both runs write ckpt-0000000.pt: each
# line is checked before the next run replaces the checkpoint it names. (kimg, resolution, alpha) of each stop:
STOPS = [(0.016, 16, 0.0), (0.024, 16, 0.5)]


@pytest.mark.slow
def test_each_metric_line_is_what_sgan_metrics_gives_for_the_checkpoint_it_names(tmp_path, data):
    run = tmp_path / "run"
    for n, (kimg, res, alpha) in enumerate(STOPS, 1):
        result = sgan("train", "-r", run, "--data", data, "--kimg", kimg, *ARGS)
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert len(lines) == n
        line = lines[-1]
        state = checkpoint.load(Path(line["checkpoint"]))
        assert line["kimg"] == state["nimg"] / 1000 == kimg
        assert (line["settings"]["resolution"], line["settings"]["alpha"]) == (state["resolution"], state["alpha"])
        assert (state["resolution"], state["alpha"]) == (res, pytest.approx(alpha))
        again = sgan("metrics", "-r", tmp_path / "elsewhere", "--ckpt", line["checkpoint"], "kid8", "--json")
        assert again.returncode == 0, again.stderr
        (result_again,) = json.loads(again.stdout)["results"]
        assert result_again["value"] == line["value"]
        assert {k: result_again[k] for k in ("metric", "checkpoint", "kimg")} == \
            {k: line[k] for k in ("metric", "checkpoint", "kimg")}
        assert result_again["settings"] == line["settings"]
