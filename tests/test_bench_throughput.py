"""experiments/bench/throughput.py at toy sizes on the CPU, so the script behind the documented update
rates cannot rot: every agent that needs a dataset context (PRDC's index) gets it, and the ratios in
the JSON follow from the measured rates."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about 30 s, most of it compiling PRDC's update without optimizations
def test_throughput_script_times_td3bc_and_prdc_and_its_ratios_follow(tmp_path):
    out = tmp_path / "throughput.json"
    cmd = [sys.executable, str(ROOT / "experiments" / "bench" / "throughput.py"), "--agents", "td3bc,prdc",
           "--baselines", "none", "--rows", "600", "--obs-dim", "4", "--act-dim", "2", "--quick",
           "--warmup", "4", "--seeds", "0", "--out", str(out)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "OFFREG_INDEX_CACHE": "off",
           "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # compile time is most of this run
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    rates = {r["agent"]: r for r in res["offreg"]}
    assert set(rates) == {"td3bc", "prdc"}
    for r in rates.values():
        assert math.isfinite(r["updates_per_s"]) and r["updates_per_s"] > 0 and r["warmup_updates"] == 50
    assert math.isclose(res["cost_prdc_vs_td3bc"], rates["td3bc"]["updates_per_s"] / rates["prdc"]["updates_per_s"])
    assert rates["prdc"]["xla_flops_per_update"] > rates["td3bc"]["xla_flops_per_update"] > 0  # the search's ops
