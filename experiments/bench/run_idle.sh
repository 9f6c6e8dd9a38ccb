#!/usr/bin/env bash
# The update-throughput runs quoted in docs/benchmarks.md, docs/prdc_a2pr.md and docs/odice.md, on the
# bundled offreg/hopper-medium-replay-v0 (90,000 transitions). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=experiments/bench/results
D=offreg/hopper-medium-replay-v0
# 1. every agent and the PyTorch/d3rlpy baselines, default threads, after 2,000 training updates
python experiments/bench/throughput.py --dataset $D --agents td3bc,bc,prdc,a2pr,odice \
  --baselines torch,d3rlpy,d3rlpy-prdc --threads 0 --chunk 500 --repeats 2 --warmup 2000 \
  --seeds 5 --seed-agents td3bc --out $R/throughput-hopper-medium-replay.json
# 2. PRDC from its initial policy (the search's worst phase)
python experiments/bench/throughput.py --dataset $D --agents td3bc,prdc --baselines none --chunk 500 \
  --repeats 2 --warmup 0 --seeds 0 --out $R/throughput-hopper-medium-replay-prdc-init.json
# 3. PRDC where state-space candidates certify few queries (HalfCheetah: most go to the matmul scan)
python experiments/bench/throughput.py --dataset offreg/halfcheetah-medium-v0 --agents td3bc,prdc \
  --baselines d3rlpy-prdc --threads 0 --chunk 500 --repeats 2 --warmup 2000 --seeds 0 \
  --out $R/throughput-halfcheetah-medium-prdc.json
