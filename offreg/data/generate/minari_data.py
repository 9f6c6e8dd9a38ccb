"""Small Minari-format datasets written offline, with Minari's own ``DataCollector``.

For tests and pipeline checks without a download: a Gymnasium (or Gymnasium-Robotics) environment is
stepped with a random or scripted policy through ``minari.DataCollector``, so the files are
genuinely Minari's (``metadata.json`` with the recorded ``env_spec``, ``main_data.hdf5``), written
under ``$MINARI_DATASETS_PATH`` like ``minari download`` would. Needs ``offreg[minari]`` (and
``offreg[robotics]`` for AntMaze/Adroit).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from offreg.data.catalogue import minari_root
from offreg.data.minari_format import minari_dataset_dir
from offreg.envs.recorded import import_robotics
from offreg.errors import DatasetError


def write_minari_dataset(
    dataset_id: str,
    env_id: str,
    *,
    episodes: int,
    policy: Callable[[Any], np.ndarray] | None = None,
    seed: int = 0,
    max_episode_steps: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    eval_env: gym.envs.registration.EnvSpec | str | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
) -> list[dict[str, Any]]:
    """Collect ``episodes`` episodes of ``env_id`` and write them as the Minari dataset ``dataset_id``.

    Episode ``k`` is reset with seed ``seed + k``; the random policy samples the action space seeded
    with ``seed``.

    Args:
      dataset_id: the Minari id (``test/hopper/random-v0``); it must not exist yet.
      env_id: the Gymnasium id (``Hopper-v5``, ``AntMaze_UMaze-v5``, ``AdroitHandDoor-v1``).
      episodes: number of episodes.
      policy: ``policy(observation) -> action`` on the environment's own (possibly Dict)
        observations; None samples uniform random actions.
      seed: base reset seed.
      max_episode_steps: time limit (default: the id's registered one).
      env_kwargs: more ``gymnasium.make`` arguments (recorded in the EnvSpec).
      eval_env: Minari's ``eval_env`` (recorded as ``eval_env_spec``), or None.
      ref_min_score, ref_max_score: reference returns written into the metadata, or None.

    Returns:
      Every step taken, ``{"obs", "action", "reward", "next_obs", "terminated", "truncated",
      "episode"}`` per step, recorded here independently of Minari's files.

    Raises:
      DatasetError: the dataset exists already, or writing it failed (nothing is left behind).

    Long because: the docstring documents each of its ten arguments; the work is in :func:`_collect`.
    """
    try:
        import minari
    except ImportError:
        raise DatasetError('writing a Minari dataset needs minari: pip install "offreg[minari]"') from None

    where = minari_dataset_dir(dataset_id).parent
    if where.exists():
        raise DatasetError(f"Minari dataset {dataset_id!r} already exists at {where}; delete it or choose another id")
    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    if env_id not in gym.registry:
        import_robotics(env_id)
    env = minari.DataCollector(gym.make(env_id, **kwargs), record_infos=False)
    try:
        steps = _collect(env, episodes, policy, seed)
        env.create_dataset(
            dataset_id=dataset_id, eval_env=eval_env, algorithm_name="random" if policy is None else "scripted",
            code_permalink="https://github.com/offreg/offreg", author="offreg", author_email="offreg@example.org",
            description=f"{episodes} episodes of {env_id} written by offreg.data.generate.minari_data",
            ref_min_score=ref_min_score, ref_max_score=ref_max_score,
        )
    except Exception as e:
        shutil.rmtree(where, ignore_errors=True)
        raise DatasetError(f"writing Minari dataset {dataset_id!r} under {minari_root()} failed: {e}") from e
    finally:
        env.close()
    return steps


def _collect(env: gym.Env, episodes: int, policy: Callable[[Any], np.ndarray] | None, seed: int) -> list[dict]:
    """Step ``env`` for ``episodes`` episodes (episode ``k`` reset with ``seed + k``), recording every step."""
    env.action_space.seed(seed)
    steps: list[dict[str, Any]] = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        while True:
            action = env.action_space.sample() if policy is None else policy(obs)
            nxt, reward, terminated, truncated, _ = env.step(action)
            steps.append({"obs": obs, "action": action, "reward": float(reward), "next_obs": nxt,
                          "terminated": bool(terminated), "truncated": bool(truncated), "episode": k})
            obs = nxt
            if terminated or truncated:
                break
    return steps
