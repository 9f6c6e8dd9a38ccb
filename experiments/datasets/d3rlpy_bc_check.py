"""Independent check of BC on bundled halfcheetah-medium-replay: d3rlpy's BC (PyTorch) on the same data.

offreg's BC scores about 2 there: the cheetah holds one posture with small constant actions and
does not move. This trains d3rlpy's deterministic BC (256-256 ReLU, Adam 3e-4, batch 256, on states
normalized as offreg's BC normalizes them) for 5,000 updates and rolls it out on 3 episodes, printing
the action and forward velocity every 100 steps of the first episode and each episode's return;
first it prints how many of the file's episodes have negative returns and how many of those are
flipped (mean torso angle above pi/2).
Needs d3rlpy (in the development environment). Output of the committed run:
experiments/datasets/results/d3rlpy_bc_check.txt.

Run: python experiments/datasets/d3rlpy_bc_check.py 2>/dev/null | grep -E '^(data|step|d3rlpy)'
(d3rlpy logs to stdout; the filter keeps this script's lines)
"""

from __future__ import annotations

import d3rlpy
import gymnasium as gym
import h5py
import numpy as np
import torch

from offreg.api import load_dataset

torch.set_num_threads(1)
d3rlpy.seed(0)  # d3rlpy seeds torch, numpy and random
data = load_dataset("offreg/halfcheetah-medium-replay-v0")  # regenerates and caches the file if needed
with h5py.File(data.info.extra["file"], "r") as f:
    obs, act, rew, term, tout = (f[k][:] for k in ("observations", "actions", "rewards", "terminals", "timeouts"))
returns = rew.reshape(-1, 1000).sum(1)  # the file's episodes are 1,000-step (timeout) episodes
torso = obs[:, 1].reshape(-1, 1000).mean(1)  # mean torso angle per episode (rad)
bad = returns < 0
print(f"data: {bad.sum()} of {len(returns)} episodes have negative returns; {(torso[bad] > np.pi / 2).sum()} "
      f"of those average a torso angle above pi/2")
mu, sd = obs.mean(0), obs.std(0) + 1e-3
ds = d3rlpy.dataset.MDPDataset((obs - mu) / sd, act, rew, term, timeouts=tout)
bc = d3rlpy.algos.BCConfig(batch_size=256, learning_rate=3e-4).create(device="cpu:0")
bc.fit(
    ds,
    n_steps=5000,
    n_steps_per_epoch=5000,
    show_progress=False,
    save_interval=10**9,
    logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
)
env = gym.make("HalfCheetah-v5")
for seed in range(3):
    o, _ = env.reset(seed=seed)
    ret = 0.0
    for t in range(1000):
        a = bc.predict(((o - mu) / sd)[None].astype(np.float32))[0]
        if seed == 0 and t % 100 == 0:
            print(f"step {t}: action {np.round(a, 2)} forward velocity {o[8]:.2f}")
        o, r, *_ = env.step(a)
        ret += float(r)
    print(f"d3rlpy BC episode {seed}: return {ret:.1f}, normalized {float(data.info.normalized_score(ret)):.1f}")
