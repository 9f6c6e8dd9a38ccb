#!/usr/bin/env bash
# BC and TD3+BC on the bundled medium and medium-replay datasets at a longer budget than the
# mini-leaderboard (STEPS updates, default 100,000; 3 seeds): do the bundled datasets teach what
# D4RL's do? Results: experiments/datasets/results/baselines-STEPS/ (leaderboard format), checks:
# experiments/datasets/results/baselines-STEPS_checks.{md,json} (python experiments/learning_checks.py).
# Rerunning continues where it stopped. One XLA thread per job: run two of these (or this and
# another experiment) side by side on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-100000}
OUT=experiments/datasets/results/baselines-$STEPS
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
for d in offreg/hopper-medium-v0 offreg/walker2d-medium-v0 offreg/halfcheetah-medium-v0 \
         offreg/hopper-medium-replay-v0 offreg/walker2d-medium-replay-v0 offreg/halfcheetah-medium-replay-v0; do
  offreg leaderboard run --agents bc,td3bc --datasets "$d" --seeds 3 --steps "$STEPS" \
    --eval-every $((STEPS / 4)) --eval-episodes 10 --out "$OUT" --quiet
done
unset XLA_FLAGS
python experiments/learning_checks.py --leaderboard "$OUT" --out "experiments/datasets/results/baselines-${STEPS}_checks"
