"""A 2-D navigation task whose dataset covers only part of the state space (O-DICE's toy example).

A point moves in the unit square from the bottom-left start toward the goal at the top-right:
``s' = clip(s + step_size * a, 0, 1)`` with ``a in [-1, 1]^2``. Each step costs ``-1``; reaching
the goal (distance <= ``goal_radius``) gives ``0`` and ends the episode. The offline dataset stays in
an L-shaped corridor (along the bottom edge, then up the right edge), with sub-optimal random
actions mixed in; recording stops when a step leaves the corridor. The upper-left of the square -
where the shortest path runs - is outside the data support. This is a design in the spirit of the
paper's Figure 1, not the paper's environment (which is not published).

Registered as the ``toy-navigation`` environment; its dataset is built by
:func:`offreg.data.generate.toy_navigation.toy_dataset`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

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


register_env("toy-navigation", ToyNavigationEnv)
