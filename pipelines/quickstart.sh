#!/usr/bin/env bash
# The quick start: install sgan, then run the pipeline end to end on the eight example photos
# that ship in examples/faces-frl (offline: landmarks from dlib). Usage: bash pipelines/quickstart.sh [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/quickstart}"

python3 -m pip install --quiet -e .

# 1. Photos -> FFHQ-aligned multi-resolution LMDB (4x4 ... 256x256).
sgan prep ffhq --src examples/faces-frl -r "$run" --landmarks dlib --resolution 256
# 2. Look at it: a summary and a preview grid.
sgan data info -r "$run"
sgan data grid -r "$run" --out "$run/data/grid.png"
echo "Done: open $run/data/grid.png; $run/history.jsonl lists every stage that ran." >&2
