"""Random-policy returns in offreg's Adroit environments vs D4RL's ``REF_MIN_SCORE`` (a random policy's return).

Usage: ``python experiments/adroit/random_returns.py [EPISODES]`` (default 20; about a minute on two cores).
For each task, EPISODES episodes of uniform random actions (:func:`offreg.data.generate.adroit.adroit_rows`,
seed 0): the mean return with D4RL's reward and its standard error, D4RL's ``REF_MIN_SCORE``, and the mean
return the same episodes get with Gymnasium-Robotics' own dense reward (``info["gymnasium_robotics_reward"]``,
replayed from the recorded actions and seeds).
"""

from __future__ import annotations

import sys

import numpy as np

from offreg.data.catalogue import ADROIT_REF_SCORES
from offreg.data.generate.adroit import adroit_rows
from offreg.data.generate.rollout import episode_returns
from offreg.envs import make_env
from offreg.seeds import derived_seed


def replay_gymnasium_reward(task: str, data: dict[str, np.ndarray]) -> np.ndarray:
    """Replay the recorded actions from the recorded reset seeds; sum Gymnasium-Robotics' reward per episode."""
    env = make_env(task)
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    out, start = [], 0
    for k, end in enumerate(ends):
        env.reset(seed=derived_seed(0, k))
        total = 0.0
        for i in range(start, end + 1):
            total += env.step(data["actions"][i])[4]["gymnasium_robotics_reward"]
        out.append(total)
        start = end + 1
    env.close()
    return np.array(out)


def main(episodes: int) -> None:
    print(f"{'task':9} {'D4RL reward':>22} {'REF_MIN_SCORE':>14} {'Gymnasium-Robotics reward':>26}")
    for task, (ref_min, _) in ADROIT_REF_SCORES.items():
        data = adroit_rows(task, episodes, seed=0)
        r = episode_returns(data)
        g = replay_gymnasium_reward(task, data)
        print(f"{task:9} {r.mean():>12.2f} +- {r.std() / np.sqrt(len(r)):<6.2f} {ref_min:>14.2f} {g.mean():>26.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
