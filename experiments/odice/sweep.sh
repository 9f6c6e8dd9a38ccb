#!/usr/bin/env bash
# O-DICE lambda sweep on the bundled medium and medium-replay datasets, at the mini-leaderboard's
# budget (10,000 updates, evaluation every 2,500 on 10 episodes) with one seed (seed 0) per value:
# lambda in LAMBDAS (default "0.4 0.8"), eta = 1.0. The default lambda = 0.6 is seed 0 of the
# mini-leaderboard (experiments/leaderboard/results). Results: experiments/odice/results/sweep/lambda-L/
# (leaderboard format); table: python experiments/odice/sweep_table.py. Rerunning continues.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAMBDAS=${LAMBDAS:-"0.4 0.8"}
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
for d in offreg/hopper-medium-v0 offreg/hopper-medium-replay-v0 offreg/walker2d-medium-v0 \
         offreg/walker2d-medium-replay-v0 offreg/halfcheetah-medium-v0 offreg/halfcheetah-medium-replay-v0; do
  for l in $LAMBDAS; do
    offreg leaderboard run --agents odice --datasets "$d" --seeds 1 --seed 0 --steps 10000 \
      --eval-every 2500 --eval-episodes 10 --set "odice.lambda_=$l" --out "experiments/odice/results/sweep/lambda-$l" --quiet
  done
done
