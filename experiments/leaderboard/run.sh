#!/usr/bin/env bash
# The committed mini-leaderboard: every locomotion agent (BC, TD3+BC, PRDC, A2PR, O-DICE) on offreg's
# bundled medium and medium-replay datasets of Hopper, HalfCheetah and Walker2d, 3 seeds, 10,000
# gradient updates per seed: the budget a 2-core CPU machine allows in about two hours
# (the papers train 1M steps with 5 seeds, so this is a smoke-scale comparison).
#
# The work runs in two lanes, one process per CPU core with XLA limited to one thread each: the
# updates' matrix products are small, so one process gains little from a second core, while two
# processes keep both busy. Each lane walks its datasets one at a time, every agent on a dataset
# before the next, so an interrupted run leaves whole datasets. LANES=1 runs everything in one process.
#
# Results: experiments/leaderboard/results/results/*.json; report: experiments/leaderboard/results/report/.
# Shown with its numbers in docs/leaderboard.md. The learning checks of docs/prdc_a2pr.md and
# docs/odice.md read the same results (experiments/learning_checks.py).
# Rerunning continues where it stopped (finished jobs are skipped, interrupted ones resume).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/leaderboard/results
AGENTS=bc,td3bc,prdc,a2pr,odice
LANE_A=(offreg/hopper-medium-replay-v0 offreg/halfcheetah-medium-v0 offreg/walker2d-medium-replay-v0)
LANE_B=(offreg/hopper-medium-v0 offreg/halfcheetah-medium-replay-v0 offreg/walker2d-medium-v0)
SETTINGS=(--seeds 3 --steps 10000 --eval-every 2500 --eval-episodes 10 --out "$OUT")

lane() {
  for d in "$@"; do
    offreg leaderboard run --agents "$AGENTS" --datasets "$d" "${SETTINGS[@]}" --quiet
  done
}

if [ "${LANES:-2}" = 2 ]; then
  export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
  lane "${LANE_A[@]}" > "$OUT/lane_a.log" 2>&1 &
  lane "${LANE_B[@]}" > "$OUT/lane_b.log" 2>&1 &
  wait
  unset XLA_FLAGS
else
  lane "${LANE_A[@]}" "${LANE_B[@]}"
fi
# records the whole matrix (every job is complete by now, so nothing trains) and writes the report
ALL=$(IFS=,; echo "${LANE_A[*]},${LANE_B[*]}")
offreg leaderboard run --agents "$AGENTS" --datasets "$ALL" "${SETTINGS[@]}" --quiet
offreg leaderboard report "$OUT" --format md,csv,html --out "$OUT/report"
