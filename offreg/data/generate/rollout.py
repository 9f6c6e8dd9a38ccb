"""Collection rollouts: environments stepped in lockstep, recorded in D4RL's per-row layout.

Episode ``k`` of a run (counted over all parallel environments, in the order episodes start) is reset
with :func:`derived_seed` ``(seed, k)``; actions of vector step ``i`` use the key
``fold_in(PRNGKey(seed), i)``. A fixed policy and seed therefore give the same arrays on every run on
the same machine (the bundled datasets rely on it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from offreg.data.generate.policy import policy_actions
from offreg.envs import make_env
from offreg.envs.rollout import Lockstep
from offreg.seeds import derived_seed


class EnvPool:
    """``num_envs`` environments stepped in lockstep (:class:`offreg.envs.rollout.Lockstep`, resetting
    finished ones), recording D4RL's per-step fields.

    Episodes get ids in the order they start (ids ``0..num_envs-1`` first); the ``k``-th episode is
    reset with ``derived_seed(seed, k)``, so the pool is deterministic given the actions.
    """

    def __init__(self, env_name: str, num_envs: int, seed: int):
        envs = [make_env(env_name) for _ in range(num_envs)]
        env = envs[0]
        self.env_name = env_name
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        self.act_low = np.asarray(env.action_space.low, np.float32)
        self.act_high = np.asarray(env.action_space.high, np.float32)
        spec = getattr(env, "spec", None)
        self.max_episode_steps = int(getattr(spec, "max_episode_steps", None) or 1000)
        self.gym_id = getattr(spec, "id", env_name)
        self.has_qpos = hasattr(env.unwrapped, "data") and hasattr(env.unwrapped.data, "qpos")
        self.seed = seed
        self.loop = Lockstep(envs, lambda k: derived_seed(seed, k), self.max_episode_steps, autoreset=True,
                             obs_dtype=np.float32)

    @property
    def obs(self) -> np.ndarray:
        """``[num_envs, obs_dim]`` float32, the observations to act on."""
        return self.loop.obs.reshape(len(self.loop.envs), -1)

    def _qpos_qvel(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        data = self.loop.envs[i].unwrapped.data
        return np.array(data.qpos, np.float32), np.array(data.qvel, np.float32)

    def step(self, actions: np.ndarray, log_probs: np.ndarray) -> list[dict[str, Any]]:
        """Step every environment once; finished environments are reset (with their next seed).

        Args:
          actions: ``[num_envs, act_dim]`` in the action space (stepped as float64).
          log_probs: ``[num_envs]`` log-probability of each action under the behaviour policy.

        Returns:
          One record per environment: ``episode`` id, ``observations``, ``actions``, ``rewards``,
          ``terminals``, ``timeouts``, ``next_observations``, ``action_log_probs`` and, for MuJoCo
          environments, ``qpos``/``qvel`` before the step. A step reaching ``max_episode_steps`` is a
          timeout and never a terminal (D4RL's ``collect_data.py``).
        """
        n = len(self.loop.envs)
        before = self.obs.copy()
        qs = [self._qpos_qvel(i) for i in range(n)] if self.has_qpos else None
        res = self.loop.step(np.asarray(actions, np.float64))
        records = []
        for i in range(n):
            rec: dict[str, Any] = {"episode": int(res.episodes[i]), "observations": before[i]}
            if qs is not None:
                rec["qpos"], rec["qvel"] = qs[i]
            timeout = bool(res.timeouts[i])
            rec.update(
                actions=np.asarray(actions[i], np.float32),
                rewards=np.float32(res.rewards[i]),
                terminals=bool(res.terminated[i]) and not timeout,
                timeouts=timeout,
                next_observations=res.next_observations[i].reshape(-1),
                action_log_probs=np.float32(log_probs[i]),
            )
            records.append(rec)
        return records

    def close(self) -> None:
        self.loop.close()


def rollout(
    env_name: str,
    actor_params: Any | None,
    num_steps: int,
    seed: int,
    num_envs: int = 10,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Collect ``num_steps`` rows in D4RL's layout from the sampling policy (uniform if params is None).

    Episodes run in ``num_envs`` environments; the output is episodes ``0, 1, 2, ...`` (in order of
    their start) concatenated and cut at ``num_steps`` rows, so the last episode may be incomplete
    (no terminal/timeout flag on its last row, as in D4RL's ``collect_data.py``). Actions of vector
    step ``i`` use the key ``fold_in(PRNGKey(seed), i)``.

    Returns:
      ``observations [N, obs]``, ``actions [N, act]``, ``rewards [N]``, ``terminals [N]`` bool,
      ``timeouts [N]`` bool, ``next_observations [N, obs]``, ``action_log_probs [N]``, and
      ``qpos``/``qvel`` for MuJoCo tasks; float32.
    """
    pool = EnvPool(env_name, num_envs, seed)
    key = jax.random.PRNGKey(seed)
    episodes: dict[int, list[dict]] = {}
    done: set[int] = set()
    total, prefix, i = 0, 0, 0
    while True:
        actions, logps = policy_actions(actor_params, pool.obs, jax.random.fold_in(key, i), pool.act_low, pool.act_high)
        for rec in pool.step(actions, logps):
            ep = rec.pop("episode")
            episodes.setdefault(ep, []).append(rec)
            if rec["terminals"] or rec["timeouts"]:
                done.add(ep)
        i += 1
        while prefix in done:  # grow the prefix of finished episodes
            total += len(episodes[prefix])
            prefix += 1
        if progress is not None:
            progress(total)
        if total >= num_steps:
            break
    pool.close()
    rows = [r for ep in range(prefix) for r in episodes[ep]][:num_steps]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def episode_returns(data: dict[str, np.ndarray]) -> np.ndarray:
    """Undiscounted returns of the complete episodes (ended by a terminal or a timeout) of a file."""
    ends = np.flatnonzero(np.logical_or(data["terminals"], data["timeouts"]))
    starts = np.concatenate([[0], ends[:-1] + 1])
    csum = np.concatenate([[0.0], np.cumsum(data["rewards"].astype(np.float64))])
    return csum[ends + 1] - csum[starts]


def trim_to_last_episode(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop the trailing incomplete episode (``stitch_dataset.py``'s cut before concatenating)."""
    ends = np.flatnonzero(np.logical_or(data["terminals"], data["timeouts"]))
    n = int(ends[-1]) + 1 if len(ends) else 0
    return {k: v[:n] for k, v in data.items()}


def replay_until(replay: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    """The first ``step`` rows of the replay buffer; the last row of a cut-off episode becomes a timeout
    (so no loader bootstraps across it into the next, unrelated row)."""
    out = {k: v[:step].copy() for k, v in replay.items()}
    if step and not (out["terminals"][-1] or out["timeouts"][-1]):
        out["timeouts"][-1] = True
    return out


def evaluate_policy(env_name: str, actor_params: Any, episodes: int, seed: int) -> np.ndarray:
    """Returns of ``episodes`` episodes of the sampling policy (one per environment, run in lockstep)."""
    pool = EnvPool(env_name, episodes, seed)
    key = jax.random.PRNGKey(seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, bool)
    i = 0
    while running.any():
        a, lp = policy_actions(actor_params, pool.obs, jax.random.fold_in(key, i), pool.act_low, pool.act_high)
        for j, rec in enumerate(pool.step(a, lp)):
            if running[j]:
                returns[j] += float(rec["rewards"])
                if rec["terminals"] or rec["timeouts"]:
                    running[j] = False
        i += 1
    pool.close()
    return returns
