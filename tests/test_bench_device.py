"""experiments/bench/device.sh (and device.py behind it) at toy sizes on the CPU, so the GPU benchmark
cannot rot: the JSON has every field, every rate is positive and finite, and the derived numbers
follow from the measured ones."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("device")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu",
           "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # compile time is most of this run
    proc = subprocess.run(["bash", str(ROOT / "experiments" / "bench" / "device.sh"), "--small"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "device.json").read_text())


def _rates(r):
    return [r["td3bc"], r["prdc"], r["a2pr"], r["odice"], *r["seeds"].values()]


def test_every_part_is_reported(result):
    assert result["complete"] is True
    assert result["jax"] == jax.__version__ and result["platform"] == "cpu" and result["device"]
    assert result["rows"] == 400 and result["file"]["rows"] == 400
    assert set(result["seeds"]) == {"1", "2"}
    assert 0 < result["wall_s"] < 600


def test_rates_are_positive_finite_and_consistent(result):
    for r in _rates(result):
        assert r["batch_size"] == 256
        assert math.isfinite(r["updates_per_s"]) and r["updates_per_s"] > 0
        assert r["updates_per_s"] == pytest.approx(r["steps_per_call"] / min(r["call_seconds"]))
        assert r["compile_and_first_call_s"] > 0
    td3 = result["td3bc"]
    assert td3["projected_1m_updates_s"] == pytest.approx(1e6 / td3["updates_per_s"])
    for s, r in result["seeds"].items():
        assert r["seeds"] == int(s)
        assert r["seed_updates_per_s"] == pytest.approx(int(s) * r["updates_per_s"])


def test_prdc_reports_its_index_and_search(result):
    p = result["prdc"]
    assert p["index_build_s"] > 0
    assert 0 <= p["certified_fraction"] <= 1 and p["leaves_per_query"] > 0
    assert p["cost_vs_td3bc"] == pytest.approx(result["td3bc"]["updates_per_s"] / p["updates_per_s"])


def test_a_missing_jax_is_one_line_saying_how_to_install(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    proc = subprocess.run(["bash", str(ROOT / "experiments" / "bench" / "device.sh")], capture_output=True,
                          text=True, env={**os.environ, "PYTHON": str(fake)})
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert 'pip install -e ".[cuda12]"' in proc.stderr
