"""The offline dataset of the ``toy-navigation`` environment (:mod:`offreg.envs.toy_navigation`).

A corridor-following behaviour (right along the bottom edge, then up the right edge) with noise and
random actions; recording stops when a step leaves the L-shaped corridor, so the upper-left of the
square, where the shortest path runs, is outside the data support (O-DICE's toy example).
"""

from __future__ import annotations

import numpy as np

from offreg.data.core import Dataset, DatasetInfo, from_arrays
from offreg.envs.toy_navigation import CORRIDOR_WIDTH, MAX_EPISODE_STEPS, START, STEP_SIZE, at_goal, in_support


def _behaviour_action(pos: np.ndarray, rng: np.random.Generator, noise: float, random_prob: float) -> np.ndarray:
    """Corridor-following behaviour: right along the bottom, then up; sometimes a random action."""
    if rng.uniform() < random_prob:
        return rng.uniform(-1.0, 1.0, 2)
    heading = np.array([1.0, 0.0]) if pos[0] < 1.0 - CORRIDOR_WIDTH / 2 else np.array([0.0, 1.0])
    return np.clip(heading + noise * rng.normal(size=2), -1.0, 1.0)


def toy_dataset(
    num_episodes: int = 200, seed: int = 0, noise: float = 0.3, random_prob: float = 0.3
) -> Dataset:
    """The offline dataset: behaviour episodes that never leave the corridor.

    Recording stops at the corridor's edge: a step that leaves the corridor is kept (reward -1,
    not terminal) and ends the episode, so every state ``s`` lies in the corridor while a few next
    states ``s'`` lie just outside it - the states whose values only DICE's backward gradient
    reaches. Episodes also end at the goal (terminal, reward 0) or at ``MAX_EPISODE_STEPS`` (time
    limit: the last transition is dropped, as D4RL's ``qlearning_dataset`` does).

    Args:
      num_episodes: behaviour episodes.
      seed: seed of the data generator (a local ``numpy`` Generator).
      noise: std of the Gaussian noise on the heading.
      random_prob: probability of a uniformly random (sub-optimal) action.
    """
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "next", "term")}
    starts, returns, lengths = [], [], []
    for _ in range(num_episodes):
        pos = START + rng.uniform(-0.05, 0.05, 2)
        starts.append(len(cols["obs"]))
        ret = 0.0
        for t in range(MAX_EPISODE_STEPS):
            a = _behaviour_action(pos, rng, noise, random_prob)
            nxt = np.clip(pos + STEP_SIZE * a, 0.0, 1.0)
            done = bool(at_goal(nxt))
            left = not in_support(nxt)
            r = 0.0 if done else -1.0
            ret += r
            if done or left or t < MAX_EPISODE_STEPS - 1:
                for k, v in zip(cols, (pos, a, r, nxt, float(done)), strict=True):
                    cols[k].append(v)
            pos = nxt
            if done or left:
                break
        returns.append(ret)
        lengths.append(t + 1)
    n = len(cols["obs"])
    info = DatasetInfo(
        "toy-navigation", "offreg", "toy-navigation", 2, 2, n, max_episode_steps=MAX_EPISODE_STEPS,
        extra={"generator": "offreg.data.generate.toy_navigation.toy_dataset("
                            f"num_episodes={num_episodes}, seed={seed}, noise={noise}, random_prob={random_prob})"},
    )
    return from_arrays(
        np.asarray(cols["obs"]), np.asarray(cols["act"]), np.asarray(cols["rew"]), np.asarray(cols["next"]),
        np.asarray(cols["term"]), info, starts, returns, lengths,
    )
