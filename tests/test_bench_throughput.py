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
    pairs = sorted(p / t for t, p in zip(rates["td3bc"]["call_seconds"], rates["prdc"]["call_seconds"], strict=True))
    assert pairs and pairs[0] <= res["cost_prdc_vs_td3bc_paired"] <= pairs[-1]
    assert rates["prdc"]["xla_flops_per_update"] > rates["td3bc"]["xla_flops_per_update"] > 0  # the search's ops


def test_alternate_times_in_rounds_and_pairs_each_round():
    sys.path.insert(0, str(ROOT / "experiments" / "bench"))
    from alternate import alternate, paired_ratio

    order = []
    rec = alternate({"a": lambda: order.append("a") or 1, "b": lambda: order.append("b") or 2}, repeats=3)
    assert order == ["a", "b"] * 3 and rec["b"]["results"] == [2, 2, 2] and len(rec["a"]["seconds"]) == 3
    # a slow phase in round 2 slows both calls: the paired ratio stays 2, the fastest calls' ratio is 1
    base, other = [1.0, 3.0, 1.0], [2.0, 6.0, 2.0]
    assert paired_ratio(base, other) == 2.0
    assert paired_ratio([1.0, 1.0, 1.0], [1.5, 9.0, 2.0]) == 2.0  # the median, not the mean
    slow = alternate({"x": lambda: __import__("time").sleep(0.02)}, repeats=5, long_call_s=0.01)
    assert len(slow["x"]["seconds"]) == 1  # stops after a round with a call over long_call_s


def test_box_width_benchmark_times_one_array_and_chunks(tmp_path):
    sys.path.insert(0, str(ROOT / "experiments" / "bench"))
    from box_width import main

    out = tmp_path / "box_width.json"
    res = main(["--widths", "5,20", "--pairs", "64", "--repeats", "2", "--out", str(out)])
    assert json.loads(out.read_text()) == res
    assert [r["chunks"] for r in res["rows"]] == [1, 2]
    assert all(r["one_array_ms"] > 0 and r["chunked_ms"] > 0 for r in res["rows"])
