"""Small D4RL-format Adroit files (door, pen, hammer, relocate), collected here without a download.

:func:`adroit_file` rolls out uniform random actions in offreg's Adroit environment
(:mod:`offreg.envs.adroit`: Gymnasium-Robotics with D4RL's reward and termination) and writes the
layout of D4RL's ``hand_dapg_v1`` files (``scripts/generation/hand_dapg_*.py``): ``observations``,
``actions``, ``rewards``, ``terminals``, ``timeouts`` and, per row, the environment's state before the
step under ``infos/`` (``qpos``, ``qvel`` and the task's own: door ``door_body_pos``; pen
``desired_orien``; hammer ``board_pos``, ``target_pos``; relocate ``hand_qpos``, ``obj_pos``,
``target_pos``, ``palm_pos``), plus ``next_observations`` (as offreg's other files) and offreg's
metadata. A step reaching D4RL's time limit is a timeout, a fallen pen a terminal.

The files exercise the whole path (load, train, evaluate with D4RL's reference scores); a random
policy's return is near D4RL's ``REF_MIN_SCORE``, which was measured with one. A ``policy`` callable
replaces the random actions (e.g. a scripted controller for a learning check,
``experiments/domains/learning_check.py``).

Determinism: episode ``k`` is reset with ``offreg.seeds.derived_seed(seed, k)`` and the actions of
step ``i`` (counted over the file) use ``fold_in(PRNGKey(seed), i)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from offreg.atomic import atomic_write
from offreg.data.catalogue import ADROIT_REF_SCORES
from offreg.data.d4rl import write_d4rl
from offreg.data.generate.collect import level_metadata
from offreg.data.generate.policy import policy_actions
from offreg.envs import make_env
from offreg.envs.adroit import ADROIT
from offreg.envs.rollout import Lockstep
from offreg.errors import ConfigError, unknown_name
from offreg.provenance import package_versions
from offreg.seeds import derived_seed

Policy = Callable[[np.ndarray], np.ndarray]
"""``policy(observations [1, obs_dim]) -> actions [1, act_dim]``, called once per step in order."""


def adroit_rows(task: str, episodes: int, seed: int = 0, policy: Policy | None = None) -> dict[str, np.ndarray]:
    """Roll out ``episodes`` episodes in ``task``; return D4RL's per-row arrays.

    The actions are uniform random, or ``policy``'s clipped to the action bounds.

    Returns:
      ``observations [N, obs]``, ``actions [N, act]``, ``rewards [N]``, ``next_observations [N, obs]``
      (float32), ``terminals [N]``, ``timeouts [N]`` (bool), and ``infos/<key> [N, ...]`` float32, the
      environment's ``get_env_state()`` before each step.
    """
    env = make_env(task)
    horizon = int(env.spec.max_episode_steps)
    low, high = np.asarray(env.action_space.low, np.float32), np.asarray(env.action_space.high, np.float32)
    loop = Lockstep([env], lambda k: derived_seed(seed, k), horizon, autoreset=True, obs_dtype=np.float32)
    key = jax.random.PRNGKey(seed)
    rows: dict[str, list[Any]] = {}
    done, i = 0, 0
    try:
        while done < episodes:
            state = env.unwrapped.get_env_state()
            obs = loop.obs.copy()
            if policy is None:
                actions, _ = policy_actions(None, obs, jax.random.fold_in(key, i), low, high)
            else:
                actions = np.clip(np.asarray(policy(obs), np.float32).reshape(1, -1), low, high)
            res = loop.step(actions)
            timeout = bool(res.timeouts[0] or res.truncated[0])
            record = {
                "observations": obs[0], "actions": actions[0], "rewards": res.rewards[0],
                "next_observations": res.next_observations[0], "terminals": bool(res.terminated[0]) and not timeout,
                "timeouts": timeout, **{f"infos/{k}": v for k, v in state.items()},
            }
            for k, v in record.items():
                rows.setdefault(k, []).append(v)
            done += int(record["terminals"] or timeout)
            i += 1
    finally:
        loop.close()
    flags = ("terminals", "timeouts")
    return {k: np.asarray(v, bool if k in flags else np.float32) for k, v in rows.items()}


def adroit_file(
    path: str | os.PathLike, task: str = "door", episodes: int = 5, seed: int = 0, policy: Policy | None = None
) -> Path:
    """Write a D4RL-format HDF5 file of ``episodes`` episodes of ``task`` to ``path`` (atomically).

    The actions are uniform random, or ``policy``'s (see :func:`adroit_rows`); the metadata's
    ``algorithm`` is ``random`` or ``str(policy)``.

    Name it like D4RL's file (``door-human-v1.hdf5``) and :func:`offreg.load_dataset` gives it that
    dataset's environment, reference scores and time limit; or pass ``env=task`` for any other name.

    Raises:
      UnknownNameError: ``task`` is not door, pen, hammer or relocate.
      ConfigError: ``episodes`` is not a positive integer.
      EnvironmentError_: Gymnasium-Robotics is not installed.
    """
    if task not in ADROIT_REF_SCORES:
        raise unknown_name("Adroit task", task, ADROIT_REF_SCORES)
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ConfigError(f"episodes must be a positive integer, got {episodes!r}")
    data = adroit_rows(task, episodes, seed, policy)
    lo, hi = ADROIT_REF_SCORES[task]
    level = "random" if policy is None else "policy"
    meta = level_metadata(
        task, ADROIT[task].gym_id, level, data, f"offreg.data.generate.adroit.adroit_file(task={task!r}, "
        f"episodes={episodes}, seed={seed}{'' if policy is None else ', policy=...'})", seed,
        **({} if policy is None else {"algorithm": str(policy)}),
        reward="D4RL", gymnasium_robotics_version=package_versions(("gymnasium-robotics",))["gymnasium-robotics"],
    )
    meta["behavior_normalized_score"] = 100.0 * (meta["behavior_return_mean"] - lo) / (hi - lo)
    dest = Path(path)
    atomic_write(dest, lambda tmp: write_d4rl(tmp, data, meta), suffix=".tmp.hdf5")
    return dest
