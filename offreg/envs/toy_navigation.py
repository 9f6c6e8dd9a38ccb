"""A 2-D navigation task whose dataset covers only part of the state space (O-DICE's toy example).

A point moves in the unit square from the bottom-left start toward the goal at the top-right:
``s' = clip(s + step_size * a, 0, 1)`` with ``a in [-1, 1]^2``. Each step costs ``-1``; reaching
the goal (distance <= ``goal_radius``) gives ``0`` and ends the episode. The offline dataset stays in
an L-shaped corridor (along the bottom edge, then up the right edge), with sub-optimal random
actions mixed in; recording stops when a step leaves the corridor. The upper-left of the square -
where the shortest path runs - is outside the data support. This is a design in the spirit of the
paper's Figure 1, not the paper's environment (which is not published).

Registered as the ``toy-navigation`` environment.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from offreg.data.core import Dataset, DatasetInfo, from_arrays
from offreg.envs import register_env

START = np.array([0.1, 0.1])
GOAL = np.array([0.9, 0.9])
GOAL_RADIUS = 0.1
STEP_SIZE = 0.1
CORRIDOR_WIDTH = 0.2
MAX_EPISODE_STEPS = 50


def in_support(xy: np.ndarray, width: float = CORRIDOR_WIDTH) -> np.ndarray:
    """Whether points ``[..., 2]`` lie in the data's L-shaped corridor (bottom band or right band)."""
    xy = np.asarray(xy)
    return (xy[..., 1] <= width) | (xy[..., 0] >= 1.0 - width)


def at_goal(xy: np.ndarray) -> np.ndarray:
    """Whether points ``[..., 2]`` are within ``GOAL_RADIUS`` of the goal."""
    return np.linalg.norm(np.asarray(xy) - GOAL, axis=-1) <= GOAL_RADIUS


class ToyNavigationEnv(gym.Env):
    """The point-navigation MDP (observations ``(x, y)``, actions ``(dx, dy)`` scaled by ``STEP_SIZE``)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, max_episode_steps: int = MAX_EPISODE_STEPS):
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.max_episode_steps = max_episode_steps
        self._pos = START.copy()
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._pos = START.copy()
        self._t = 0
        return self._pos.astype(np.float32), {}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self._pos = np.clip(self._pos + STEP_SIZE * a, 0.0, 1.0)
        self._t += 1
        done = bool(at_goal(self._pos))
        reward = 0.0 if done else -1.0
        truncated = (not done) and self._t >= self.max_episode_steps
        return self._pos.astype(np.float32), reward, done, truncated, {}


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
        extra={"generator": f"offreg.envs.toy_navigation.toy_dataset(num_episodes={num_episodes}, seed={seed}, "
                            f"noise={noise}, random_prob={random_prob})"},
    )
    return from_arrays(
        np.asarray(cols["obs"]), np.asarray(cols["act"]), np.asarray(cols["rew"]), np.asarray(cols["next"]),
        np.asarray(cols["term"]), info, starts, returns, lengths,
    )


register_env("toy-navigation", ToyNavigationEnv)
