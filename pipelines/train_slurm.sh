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
# The first node hosts the rendezvous (not `| head -n 1`: under pipefail, scontrol could die of SIGPIPE).
hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
head_node=${hosts%%$'\n'*}

# Forward each warning signal once to the training step (srun passes it on to torchrun and sgan,
# which save a checkpoint and exit).
pid=
stopped=
forward() { stopped=$1; kill -"$1" "$pid" 2>/dev/null || true; }
trap 'forward USR1' USR1
trap 'forward TERM' TERM
srun --kill-on-bad-exit=1 torchrun \
    --nnodes "$SLURM_NNODES" --nproc-per-node "${SLURM_GPUS_PER_NODE:-8}" \
    --rdzv-backend c10d --rdzv-endpoint "$head_node:29500" --rdzv-id "$SLURM_JOB_ID" \
    -m stylegan_cli train -r "$run" "$@" &
pid=$!
# A trapped signal ends `wait` at once, while the step is still saving its checkpoint: wait again
# until the step has really exited, then take its own exit status (bash keeps it for `wait`).
wait "$pid" || true
while kill -0 "$pid" 2>/dev/null; do
    wait "$pid" || true
done
status=0
wait "$pid" || status=$?
# 128+signal means "stopped to be resumed"; so does a failure after a forwarded stop signal (torchrun
# reports a signal it received itself as its own failure, exit 1, while the ranks have saved): ask
# Slurm to run the job again.
if { [ "$status" -gt 128 ] || { [ -n "$stopped" ] && [ "$status" -ne 0 ]; }; } && [ -n "${SLURM_JOB_ID:-}" ]; then
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
