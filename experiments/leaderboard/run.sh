#!/usr/bin/env bash
# The committed mini-leaderboard: every locomotion agent on offreg's bundled Hopper data, at a budget
# a 2-core CPU machine allows (a smoke-scale comparison, far from the papers' 1M steps x 5 seeds).
# Results files: experiments/leaderboard/results/results/*.json; report: experiments/leaderboard/results/report/.
# Shown with its numbers in docs/leaderboard.md.
# Rerunning continues where it stopped (finished jobs are skipped, interrupted ones resume).
set -euo pipefail
cd "$(dirname "$0")/../.."
offreg leaderboard run \
  --agents bc,td3bc,prdc,a2pr,odice \
  --datasets offreg/hopper-medium-replay-v0,offreg/hopper-medium-v0 \
  --seeds 2 --steps 3000 --eval-every 1000 --eval-episodes 5 \
  --out experiments/leaderboard/results
offreg leaderboard report experiments/leaderboard/results --format md,csv,html \
  --out experiments/leaderboard/results/report
