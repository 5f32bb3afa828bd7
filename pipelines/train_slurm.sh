#!/usr/bin/env bash
#SBATCH --job-name=sgan-train
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
# Multi-node training: one torchrun per node, one process per GPU. Slurm sends SIGUSR1 five minutes
# before the time limit (and SIGTERM on preemption): sgan saves a checkpoint and exits, and the
# requeued job resumes from it. Usage: sbatch pipelines/train_slurm.sh RUN_DIR [sgan train flags...]
set -euo pipefail
run="$1"
shift
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

# Forward the warning signal to the training processes (they checkpoint on SIGUSR1/SIGTERM).
trap 'kill -USR1 "$pid" 2>/dev/null' USR1
trap 'kill -TERM "$pid" 2>/dev/null' TERM
srun --kill-on-bad-exit=1 torchrun \
    --nnodes "$SLURM_NNODES" --nproc-per-node "${SLURM_GPUS_PER_NODE:-8}" \
    --rdzv-backend c10d --rdzv-endpoint "$head_node:29500" --rdzv-id "$SLURM_JOB_ID" \
    -m stylegan_cli train -r "$run" "$@" &
pid=$!
wait "$pid" || status=$?
status=${status:-0}
# 128+signal means "stopped to be resumed": ask Slurm to run the job again.
if [ "$status" -gt 128 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
