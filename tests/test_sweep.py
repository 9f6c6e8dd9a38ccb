"""Coefficient sweeps: a grid of values x seeds trained in one compiled program.

``offreg train --agent odice --sweep lambda=0.4,0.6 --seeds 2`` gives four runs; each equals the
single run of that seed with that value up to float reassociation: vmap batches the reductions of
the update differently, so parameters may differ by a few float32 roundings (measured: at most
6e-8 after 6 updates), hence ``rtol=1e-5, atol=1e-6`` (a single run is another XLA program).
"""

import json

import jax
import numpy as np
import pytest

import offreg
from offreg.agents.odice import ODICE
from offreg.cli import main
from offreg.errors import ConfigError
from offreg.logging import read_jsonl

DATASET = "offreg/hopper-medium-replay-v0"
SMALL = {"policy_hidden_dims": "[16]", "value_hidden_dims": "[16]", "batch_size": 32}
SET = [f"--set={k}={v}" for k, v in SMALL.items()]


def _close(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    traces = {"n": 0}
    update = ODICE.update

    def counting(self, batch, key, context=()):
        traces["n"] += 1  # Python runs only while JAX traces
        return update(self, batch, key, context)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ODICE, "update", counting)
        code = main(["train", "--agent", "odice", "--dataset", DATASET, "--sweep", "lambda=0.4,0.6", "--seeds", "2",
                     "--steps", "6", "--log-every", "3", "--eval-every", "6", "--eval-episodes", "1", "--quiet",
                     *SET, "--out", str(out)])
    assert code == 0
    return out, traces["n"]


def test_four_runs_from_one_compile_each_equal_to_its_single_run(sweep_run):
    out, traces = sweep_run
    summary = json.loads((out / "summary.json").read_text())
    runs = [(p["sweep"]["lambda_"], p["seed"]) for p in summary["per_seed"]]
    assert runs == [(0.4, 0), (0.4, 1), (0.6, 0), (0.6, 1)]
    assert [p["sweep"] for p in summary["per_point"]] == [{"lambda_": 0.4}, {"lambda_": 0.6}]
    assert traces == 1  # one trace of the update for the whole grid: one compiled chunk
    records = read_jsonl(out / "metrics.jsonl")
    assert {(r["sweep"]["lambda_"], r["seed"], r["kind"]) for r in records} == {
        (v, s, k) for v in (0.4, 0.6) for s in (0, 1) for k in ("train", "eval")}
    ckpt = offreg.checkpoint.read_checkpoint(out)
    assert ckpt.runs() == [({"lambda_": v}, s) for v in (0.4, 0.6) for s in (0, 1)]
    kw = dict(steps=6, log_every=3, eval_every=0, progress=False)
    for index, (point, seed) in enumerate(ckpt.runs()):
        single = offreg.train("odice", DATASET, seeds=[seed], overrides={**SMALL, **point}, **kw)
        agent = ckpt.run_agent(index)
        assert float(agent.coefs["lambda_"]) == pytest.approx(point["lambda_"])
        _close(agent, single.agent(seed))
        mine = [r for r in records if r["kind"] == "train" and r["sweep"] == point and r["seed"] == seed]
        for a, b in zip(mine, single.records, strict=True):
            assert a["step"] == b["step"] and a["v_loss"] == pytest.approx(b["v_loss"], rel=1e-5, abs=1e-6)


def test_the_values_really_differ(sweep_run):
    out, _ = sweep_run
    ckpt = offreg.checkpoint.read_checkpoint(out)
    a, b = ckpt.run_agent(0), ckpt.run_agent(2)  # seed 0 at lambda 0.4 and 0.6
    assert not np.array_equal(np.asarray(jax.tree_util.tree_leaves(a.value.params)[0]),
                              np.asarray(jax.tree_util.tree_leaves(b.value.params)[0]))


def test_eval_and_resume_of_a_sweep(sweep_run, tmp_path, capsys):
    out, _ = sweep_run
    assert main(["eval", str(out), "--episodes", "1"]) == 0
    doc = json.loads((out / "eval.json").read_text())
    assert [(r["sweep"]["lambda_"], r["seed"]) for r in doc["per_seed"]] == [(0.4, 0), (0.4, 1), (0.6, 0), (0.6, 1)]
    assert "lambda_" in capsys.readouterr().out
    # a killed sweep resumes to exactly the uninterrupted one
    kw = dict(steps=6, seeds=2, eval_every=0, log_every=2, checkpoint_every=2, overrides=SMALL, progress=False,
              sweep={"lambda": [0.4, 0.6]})
    full = offreg.train("odice", DATASET, out_dir=tmp_path / "full", **kw)

    def kill(step, agents, records):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        offreg.train("odice", DATASET, out_dir=tmp_path / "killed", callback=kill, **kw)
    resumed = offreg.train(resume=tmp_path / "killed", progress=False)
    assert resumed.runs == full.runs
    for x, y in zip(jax.tree_util.tree_leaves(resumed.agents), jax.tree_util.tree_leaves(full.agents), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("args, message", [
    (["--agent", "odice", "--sweep", "nosuch=1,2"], "cannot sweep 'nosuch'"),
    (["--agent", "odice", "--sweep", "lambda=0.4,1.5"], "lambda_ must be in (0, 1]"),
    (["--agent", "odice", "--sweep", "lambda=0.4,abc"], "values must be numbers"),
    (["--agent", "odice", "--sweep", "lambda"], "--sweep expects COEF=V1,V2"),
    (["--agent", "odice", "--sweep", "lambda=0.4,0.4"], "distinct"),
    (["--agent", "td3bc", "--sweep", "actor_lr=1e-3"], "td3bc sweeps alpha, tau"),
    (["--agent", "r2pvi-tv", "--dataset", "offreg/linear-mdp-v0", "--sweep", "beta=1,2"], "no coefficients to sweep"),
])
def test_bad_sweeps_fail_before_any_work(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", *args, "--steps", "2", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error:") and message in err[-1], err
    assert not out.exists()


def test_result_agent_by_seed_and_point():
    kw = dict(steps=2, seeds=[3], eval_every=0, log_every=2, overrides=SMALL, progress=False)
    result = offreg.train("odice", DATASET, sweep={"eta": [0.5, 1.0]}, **kw)
    assert float(result.agent(3, eta=1.0).coefs["eta"]) == 1.0
    assert float(result.agent(eta=0.5).coefs["eta"]) == 0.5
    with pytest.raises(ConfigError, match="no run"):
        result.agent(4)
