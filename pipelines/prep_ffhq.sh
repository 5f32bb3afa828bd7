#!/usr/bin/env bash
#SBATCH --job-name=sgan-prep
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --requeue
# Rebuild FFHQ from its in-the-wild photos and published landmarks (ffhq-dataset-v2.json), on all
# the cores the job has. Preempted or killed, the same job requeued resumes where it stopped.
# Usage: sbatch pipelines/prep_ffhq.sh FFHQ_ROOT RUN_DIR [RESOLUTION]
#   FFHQ_ROOT holds in-the-wild-images/ and ffhq-dataset-v2.json.
set -euo pipefail
root="$1"
run="$2"
resolution="${3:-1024}"
workers="${SLURM_CPUS_PER_TASK:-$(nproc)}"

sgan prep ffhq --src "$root" --landmarks "$root/ffhq-dataset-v2.json" --resolution "$resolution" \
    --workers "$workers" -r "$run"
sgan data info -r "$run"
sgan data grid -r "$run" --out "$run/data/grid.png" --seed 0
