#!/usr/bin/env bash
# Issue 15's speed figures on one GPU, in one go of under 8 minutes on an H200 (docs/design.md §8):
# - `sgan bench train` at 256 and 1024, for the default arch and for config F, in bf16 (and fp32 at 256 for
#   comparison; with --compile as time allows): s/kimg, peak memory, operators and host synchronisations per
#   iteration, and torch.profiler's table of one iteration at 256;
# - `sgan bench generate` at 256 and 1024 in bf16 and fp32;
# - `sgan bench data` on a small dataset `sgan prep images` makes from tests/assets/cifar10 at 1024;
# - the seconds from starting a tiny `sgan train` to its first tick.
#
# Usage: OUT=FOLDER bash pipelines/gpu_bench.sh
# Writes FOLDER/gpu_bench.json (the machine, and every measurement: its command, status, seconds, and figures or
# the end of its error output), FOLDER/profile_256.txt and FOLDER/gpu_bench.log (all the commands' stderr).
# A failed measurement is recorded as such and the others go on. They run in order of importance, each within its
# own time limit, and are skipped once SGAN_GPU_BENCH_BUDGET seconds (default 420) have gone.
# SGAN_GPU_BENCH_TINY=1 runs every measurement at 16x16 (32x32 for the 1024 ones) with small networks and one or
# two iterations: a dry run of the script on any machine, a CPU one included.
#
# sgan is installed here with the torch already present. On a machine that reaches no package index, put wheels
# of what its Python lacks in .whl/ first (sgan imports lmdb and dlib: `pip download --no-deps --only-binary=:all:
# -d .whl lmdb dlib-bin`, for that machine's Python and platform); they are installed from there.
set -euo pipefail
cd "$(dirname "$0")/.."
source pipelines/gpu_bench_lib.sh  # bench_start, measure, cifar_subset: the installing, the machine, the recording
bench_start gpu_bench

if [ "$tiny" = 1 ]; then
    lo=16 hi=32 batch=4 per_class=2 small=(--fmap-base 64 --fmap-max 16) steps=(--iters 1 --warmup 1)
    steps_hi=("${steps[@]}") batches=(--batches 2)
else
    lo=256 hi=1024 batch=32 per_class=32 small=() steps=(--iters 16 --warmup 4) steps_hi=(--iters 8 --warmup 4)
    batches=(--batches 30)
fi

# The first tick's timing.
cat >"$work/first_tick.py" <<'EOF'
import json, subprocess, sys, time
from pathlib import Path
log = Path(sys.argv[1]) / "train" / "log.jsonl"
start = time.monotonic()
proc, first = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL), None
while first is None and proc.poll() is None:
    time.sleep(0.05)
    if log.exists() and log.read_text().strip():
        first = time.monotonic() - start
proc.wait()
ticks = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
print(json.dumps({"seconds_to_first_tick": first and round(first, 2), "seconds_in_all": round(time.monotonic() - start, 2),
                  "first_tick": ticks[0] if ticks else None}))
sys.exit(proc.returncode)
EOF
train=("${sgan[@]}" bench train --batch "$batch" "${small[@]}" --json)
measure "train_${lo}_stylegan_bf16" 90 "${train[@]}" --resolution "$lo" --precision bf16 "${steps[@]}" \
    --profile "$OUT/profile_${lo}.txt"
measure "train_${hi}_stylegan_bf16" 90 "${train[@]}" --resolution "$hi" --precision bf16 "${steps_hi[@]}"
measure "train_${lo}_config_f_bf16" 90 "${train[@]}" --resolution "$lo" --config-f --precision bf16 "${steps[@]}"
measure "train_${hi}_config_f_bf16" 120 "${train[@]}" --resolution "$hi" --config-f --precision bf16 "${steps_hi[@]}"
# StyleGAN2-ADA's augmentation in front of D: its share of the step (NVIDIA reports about 10% on GPU)
measure "train_${lo}_config_f_bf16_ada" 150 "${train[@]}" --resolution "$lo" --config-f --precision bf16 --aug ada \
    "${steps[@]}"
measure "train_${lo}_stylegan_fp32" 90 "${train[@]}" --resolution "$lo" --precision fp32 "${steps[@]}"
measure "train_${lo}_config_f_fp32" 90 "${train[@]}" --resolution "$lo" --config-f --precision fp32 "${steps[@]}"

generate=("${sgan[@]}" bench generate --batch "$batch" "${small[@]}" --json)
for res in "$lo" "$hi"; do
    for precision in bf16 fp32; do
        measure "generate_${res}_${precision}" 60 "${generate[@]}" --resolution "$res" --precision "$precision"
    done
done

# A small dataset at 1024 (CIFAR-10's 32x32 photos scaled up: what is timed is the loader, not the pictures).
cifar_subset "$work/photos" "$per_class"
measure prep_images 90 "${sgan[@]}" prep images --src "$work/photos" -r "$work/run" --resolution "$hi" --json
for workers in 2 8; do
    measure "data_workers_${workers}" 60 "${sgan[@]}" bench data -r "$work/run" --workers "$workers" \
        --batch "$batch" "${batches[@]}" --json
done
tick=$(python3 -c "print($batch / 1000)")
measure "first_tick_${lo}" 120 python3 "$work/first_tick.py" "$work/tick" "${sgan[@]}" train -r "$work/tick" \
    --data "$work/run/data/dataset.lmdb" --resolution "$lo" --no-progressive --batch "$batch" "${small[@]}" \
    --kimg "$(python3 -c "print(2 * $tick)")" --tick "$tick" --snap 1000 --workers 4

# Last, as time allows: torch.compile, whose compilation takes minutes at first.
measure "train_${lo}_stylegan_bf16_compile" 180 "${train[@]}" --resolution "$lo" --precision bf16 --compile \
    "${steps[@]}"
measure "train_${lo}_config_f_bf16_compile" 180 "${train[@]}" --resolution "$lo" --config-f --precision bf16 \
    --compile "${steps[@]}"
echo "Done: $OUT/gpu_bench.json" >&2
