"""Resume after a kill equals the uninterrupted run, bit for bit, for every gradient agent; a real
``kill -9`` of a PRDC run (whose neighbour index is rebuilt, never read from a checkpoint); and
checkpoints of the previous format fail with a versioned message."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import serialization

import offreg
from offreg.checkpoint import list_checkpoints, read_checkpoint
from offreg.cli import main
from offreg.errors import CheckpointError

DATASET = "offreg/hopper-medium-replay-v0"
SMALL = {
    "bc": {"hidden_dims": "[8]"},
    "td3bc": {"actor_hidden_dims": "[8]", "critic_hidden_dims": "[8]"},
    "prdc": {"actor_hidden_dims": "[8]", "critic_hidden_dims": "[8]", "index_leaf_size": 4},
    "a2pr": {"actor_hidden_dims": "[8]", "critic_hidden_dims": "[8]", "value_hidden_dims": "[8]",
             "vae_hidden_dims": "[8]"},
    "odice": {"policy_hidden_dims": "[8]", "value_hidden_dims": "[8]"},
}


class _Killed(Exception):
    pass


# bc and prdc (whose neighbour index is rebuilt on resume) run by default; the others with `-m slow`
@pytest.mark.parametrize("name", [n if n in ("bc", "prdc") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(SMALL)])
def test_resume_after_a_kill_is_bit_identical(name, tmp_path):
    kw = dict(steps=8, seeds=2, eval_every=0, log_every=2, checkpoint_every=4, progress=False,
              overrides={**SMALL[name], "batch_size": 16})
    full = offreg.train(name, DATASET, out_dir=tmp_path / "full", **kw)

    def kill(step, agents, records):
        if step == 6:  # after the step-4 checkpoint, before the step-8 one
            raise _Killed

    with pytest.raises(_Killed):
        offreg.train(name, DATASET, out_dir=tmp_path / "killed", callback=kill, **kw)
    resumed = offreg.train(resume=tmp_path / "killed", progress=False)
    for x, y in zip(jax.tree_util.tree_leaves(resumed.agents), jax.tree_util.tree_leaves(full.agents), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    strip = lambda rs: [{k: v for k, v in r.items() if k != "updates_per_s"} for r in rs]
    assert strip(resumed.records) == strip(full.records)


@pytest.mark.slow  # a real kill -9 and two CLI runs (~25 s); the in-process kills above run by default
def test_kill_minus_9_of_a_prdc_run_resumes_bit_identically(tmp_path):
    args = ["train", "--agent", "prdc", "--dataset", DATASET, "--steps", "400", "--log-every", "20",
            "--checkpoint-every", "20", "--eval-every", "0", "--quiet", "--set", "actor_hidden_dims=[8]",
            "--set", "critic_hidden_dims=[8]", "--set", "index_leaf_size=4", "--set", "batch_size=16"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "offreg.cli", *args, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list_checkpoints(killed / "checkpoints")) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = [s for s, _ in list_checkpoints(killed / "checkpoints")]
    assert steps and max(steps) < 400, steps  # killed mid-run
    assert main(["train", "--resume", str(killed), "--quiet"]) == 0
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    a, b = read_checkpoint(killed), read_checkpoint(tmp_path / "full")
    assert a.step == b.step == 400
    for x, y in zip(jax.tree_util.tree_leaves(a.agent), jax.tree_util.tree_leaves(b.agent), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_format_1_checkpoint_fails_with_a_versioned_message(tmp_path):
    result = offreg.train("td3bc", DATASET, steps=2, log_every=2, eval_every=0, progress=False,
                          overrides={"actor_hidden_dims": "[8]", "critic_hidden_dims": "[8]"}, out_dir=tmp_path / "r")
    (_, path), = list_checkpoints(tmp_path / "r" / "checkpoints")
    payload = serialization.msgpack_restore(path.read_bytes())
    meta = json.loads(payload["meta"])
    meta["format_version"] = 1  # as offreg 0.1 wrote them (agent state held PRDC's index)
    payload["meta"] = json.dumps(meta)
    path.write_bytes(serialization.msgpack_serialize(payload))
    with pytest.raises(CheckpointError, match=r"format version 1 \(offreg 0\.1\).*train again"):
        read_checkpoint(path)
    assert result.step == 2
