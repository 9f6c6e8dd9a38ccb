"""The one environment loop: environments stepped in lockstep, shared by evaluation and data collection.

:class:`Lockstep` holds N Gymnasium environments and their current observations ``[N, *obs_shape]``.
Each :meth:`Lockstep.step` takes one action per environment and steps every running environment
once, in index order. An episode ends when its environment terminates or truncates it, or after
``max_episode_steps`` steps (a *timeout*). Then, with ``autoreset``, the environment starts its next
episode at once; without, it stops: its last observation stays in the batch (its action is
ignored), so the batch shape, and hence a compiled policy, never changes. Episodes are numbered in
the order they start (``0..N-1`` first) and episode ``k`` is reset with ``seed_of(k)``.

Evaluation (:func:`offreg.evaluation.evaluate`: deterministic policy, one episode per environment)
and collection (:mod:`offreg.data.generate.rollout`: sampled actions, D4RL's per-row records)
both step their environments through this loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np


def observation_dtype(space: gym.Space) -> np.dtype:
    """The dtype observations are kept in: float32 for floating-point spaces, else the space's own."""
    dtype = np.dtype(space.dtype) if space.dtype is not None else np.dtype(np.float32)
    return np.dtype(np.float32) if np.issubdtype(dtype, np.floating) else dtype


class StepResult(NamedTuple):
    """What one :meth:`Lockstep.step` did, per environment (arrays of length N).

    Attributes:
      running: bool, whether the environment was stepped (False once a non-resetting one is done).
      episodes: int64, the episode id of the step.
      rewards: float64 reward (0 where not running).
      terminated: bool, the environment's ``terminated``.
      truncated: bool, the environment's ``truncated``.
      timeouts: bool, the episode reached ``max_episode_steps`` with this step.
      next_observations: ``[N, *obs_shape]`` the observation the step returned (before any reset).
    """

    running: np.ndarray
    episodes: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    timeouts: np.ndarray
    next_observations: np.ndarray


class Lockstep:
    """N environments stepped in lockstep (see the module docstring).

    Args:
      envs: the environments (all with the same spaces).
      seed_of: ``seed_of(k)`` is the reset seed of episode ``k``.
      max_episode_steps: steps after which an episode ends as a timeout.
      autoreset: start a finished environment's next episode at once (collection), or stop it
        (evaluation: one episode per environment).
      obs_dtype: dtype of :attr:`obs` (default: :func:`observation_dtype` of the observation space).

    Attributes:
      obs: ``[N, *obs_shape]`` the current observations (the policy's input).
      episodes: int64 ``[N]`` each environment's current episode id.
      steps: int64 ``[N]`` steps taken in the current episode.
      running: bool ``[N]`` which environments are still stepped.
    """

    def __init__(
        self,
        envs: Sequence[gym.Env],
        seed_of: Callable[[int], int],
        max_episode_steps: int,
        autoreset: bool,
        obs_dtype: Any = None,
    ):
        self.envs = list(envs)
        self.seed_of = seed_of
        self.max_episode_steps = int(max_episode_steps)
        self.autoreset = autoreset
        n = len(self.envs)
        dtype = observation_dtype(self.envs[0].observation_space) if obs_dtype is None else np.dtype(obs_dtype)
        self.next_episode = n
        self.episodes = np.arange(n, dtype=np.int64)
        self.steps = np.zeros(n, np.int64)
        self.running = np.ones(n, bool)
        first = [env.reset(seed=int(seed_of(k)))[0] for k, env in enumerate(self.envs)]
        self.obs = np.stack(first).astype(dtype)

    def _reset(self, i: int) -> None:
        obs, _ = self.envs[i].reset(seed=int(self.seed_of(self.next_episode)))
        self.obs[i] = obs
        self.episodes[i] = self.next_episode
        self.next_episode += 1
        self.steps[i] = 0

    def step(self, actions: Any) -> StepResult:
        """Step each running environment ``i`` with ``actions[i]`` (passed to ``env.step`` as it is).

        Returns:
          A :class:`StepResult`; :attr:`obs` then holds the observations to act on next.
        """
        n = len(self.envs)
        running = self.running.copy()
        episodes = self.episodes.copy()
        rewards = np.zeros(n, np.float64)
        terminated, truncated, timeouts = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        next_obs = self.obs.copy()
        for i in np.flatnonzero(running):
            o, r, terminated[i], truncated[i], _ = self.envs[i].step(actions[i])
            next_obs[i] = o
            rewards[i] = r
            self.steps[i] += 1
            timeouts[i] = self.steps[i] >= self.max_episode_steps
            self.obs[i] = next_obs[i]
            if terminated[i] or truncated[i] or timeouts[i]:
                if self.autoreset:
                    self._reset(i)
                else:
                    self.running[i] = False
        return StepResult(running, episodes, rewards, terminated, truncated, timeouts, next_obs)

    def close(self) -> None:
        for env in self.envs:
            env.close()
