#!/usr/bin/env bash
# BC and TD3+BC on the bundled medium and medium-replay datasets at a longer budget than the
# mini-leaderboard (30,000 updates, 3 seeds): do the bundled datasets teach what D4RL's do?
# Results: experiments/datasets/results/baselines/ (leaderboard format), checks:
# experiments/datasets/results/baselines_checks.{md,json} (python experiments/learning_checks.py).
# Rerunning continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/datasets/results/baselines
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
for d in offreg/hopper-medium-replay-v0 offreg/hopper-medium-v0 offreg/halfcheetah-medium-replay-v0 \
         offreg/halfcheetah-medium-v0 offreg/walker2d-medium-replay-v0 offreg/walker2d-medium-v0; do
  offreg leaderboard run --agents bc,td3bc --datasets "$d" --seeds 3 --steps 30000 --eval-every 10000 \
    --eval-episodes 10 --out "$OUT" --quiet
done
unset XLA_FLAGS
python experiments/learning_checks.py --leaderboard "$OUT" --out experiments/datasets/results/baselines_checks
