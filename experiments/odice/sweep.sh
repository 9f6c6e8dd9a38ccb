#!/usr/bin/env bash
# O-DICE lambda sweep on the bundled medium and medium-replay datasets, at the mini-leaderboard's
# budget (10,000 updates, evaluation every 2,500 on 10 episodes) with one seed (seed 0) per value,
# eta = 1.0: lambda in LAMBDAS (default 0.4) on DATASETS (default the six below). The code default
# lambda = 0.6 is the mini-leaderboard's earlier O-DICE runs, kept in
# experiments/odice/results/sweep/lambda-0.6/ (sweep_table.py uses their seed 0). The committed
# sweep is this default plus `LAMBDAS=0.8 DATASETS=offreg/hopper-medium-v0`. Results:
# experiments/odice/results/sweep/lambda-L/ (leaderboard format); table and chosen values:
# python experiments/odice/sweep_table.py. Rerunning continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAMBDAS=${LAMBDAS:-0.4}
DATASETS=${DATASETS:-"offreg/hopper-medium-v0 offreg/hopper-medium-replay-v0 offreg/walker2d-medium-v0
  offreg/walker2d-medium-replay-v0 offreg/halfcheetah-medium-v0 offreg/halfcheetah-medium-replay-v0"}
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
for d in $DATASETS; do
  for l in $LAMBDAS; do
    offreg leaderboard run --agents odice --datasets "$d" --seeds 1 --seed 0 --steps 10000 \
      --eval-every 2500 --eval-episodes 10 --set "odice.lambda_=$l" --out "experiments/odice/results/sweep/lambda-$l" --quiet
  done
done
