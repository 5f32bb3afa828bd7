#!/usr/bin/env bash
# From a folder of face photos to a trained generator, its samples and a mixing grid, in one run directory:
#   bash pipelines/end_to_end.sh PHOTOS RUN [RESOLUTION] [KIMG]
# Every step resumes where it stopped if the script is run again.
set -euo pipefail
photos="$1"
run="$2"
resolution="${3:-256}"
kimg="${4:-25000}"
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")

sgan prep ffhq --src "$photos" -r "$run" --resolution "$resolution"
sgan data grid -r "$run" --out "$run/data/grid.png" --seed 0
if [ "$gpus" -gt 1 ]; then
    torchrun --nproc-per-node "$gpus" -m stylegan_cli train -r "$run" --kimg "$kimg" --mirror
else
    sgan train -r "$run" --kimg "$kimg" --mirror
fi
sgan sample -r "$run" --seeds 0-63 --grid 8x8 --trunc 0.7 --trunc-cutoff 8 --save-latents
sgan mix -r "$run" --coarse 1,2,3 --fine 4,5,6,7
