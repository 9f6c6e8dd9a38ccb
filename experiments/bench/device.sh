#!/usr/bin/env bash
# Accelerator benchmark for a GPU machine without network: TD3+BC updates/s and the projected time of
# 1M updates, 1/5/20 vmapped seeds, PRDC on 1M rows (index built on the device), A2PR and O-DICE;
# one JSON file (experiments/bench/device.py documents every field).
#
#   bash experiments/bench/device.sh                 # writes $OUT/device.json (else experiments/bench/results/device.json)
#   bash experiments/bench/device.sh --out FILE      # any option of device.py passes through (--small, --rows, ...)
#
# Uses the JAX installed on the machine and only this repository (its offreg on PYTHONPATH; the data
# are generated from the bundled files). Stops after 290 s; the JSON then holds what finished
# ("complete": false).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
if ! "$PY" -c "import jax" 2>/dev/null; then
  echo "error: JAX is not importable by $PY; install offreg with JAX's GPU build (with network):" \
       "pip install -e \".[cuda12]\" (or \".[cuda13]\" for CUDA 13), then run this again" >&2
  exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import jax; print('jax', jax.__version__, 'on', jax.devices())"
exec timeout --signal=INT --kill-after=10 "${DEVICE_BENCH_TIMEOUT:-290}" "$PY" experiments/bench/device.py "$@"
