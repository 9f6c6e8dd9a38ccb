"""Small AntMaze datasets in D4RL's HDF5 layout, from offreg's port of D4RL's AntMaze (for tests and demos).

The layout is that of D4RL's ``scripts/generation/generate_ant_maze_datasets.py`` after
``relabel_antmaze_rewards.py``: ``observations`` (N, 29), ``actions`` (N, 8), ``rewards``,
``terminals``, ``timeouts``, ``infos/goal``, ``infos/qpos``, ``infos/qvel`` (float32; flags bool),
gzip-compressed, and no ``next_observations``. As there:

- episodes are ``episode_steps``-step chunks ended by a ``timeout``; reaching the goal does not end them
  (the collection environment has ``terminate_at_goal=False``);
- ``rewards[t]`` and ``terminals[t]`` are 1 when the state *after* ``actions[t]`` is within 0.5 of the
  goal (the relabelling's ``||obs[t+1, :2] - goal|| <= 0.5``);
- ``infos/qpos[t]``, ``infos/qvel[t]`` are the simulator state after the step (the script records
  ``env.physics.data`` after ``env.step``), while ``observations[t]`` is the state before it.

The policy is uniform random actions in ``[-1, 1]`` (the pipeline needs data, not skill); D4RL used a
goal-reaching expert steered through waypoints, with Gaussian action noise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from offreg.atomic import atomic_write
from offreg.data.d4rl import write_d4rl
from offreg.envs.antmaze import AntMazeEnv
from offreg.errors import ConfigError
from offreg.provenance import dataset_versions


def antmaze_arrays(
    maze: str = "umaze", steps: int = 3000, episode_steps: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Roll out uniform random actions in :class:`~offreg.envs.antmaze.AntMazeEnv` and return D4RL's arrays.

    Args:
      maze: ``umaze``, ``medium`` or ``large``.
      steps: rows N.
      episode_steps: steps per episode (the last one is a timeout); D4RL: 1000.
      seed: episode ``k`` is reset with seed ``seed + k``; actions come from ``numpy``'s generator of ``seed``.

    Returns:
      ``{"observations": [N, 29], "actions": [N, 8], "rewards": [N], "terminals": [N], "timeouts": [N],
      "infos/goal": [N, 2], "infos/qpos": [N, 15], "infos/qvel": [N, 14]}``.
    """
    for name, value in (("steps", steps), ("episode_steps", episode_steps)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    env = AntMazeEnv(maze, v2_resets=True, terminate_at_goal=False)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in (
        "observations", "actions", "rewards", "terminals", "timeouts", "infos/goal", "infos/qpos", "infos/qvel")}
    t, episode = 0, 0
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = rng.uniform(-1.0, 1.0, 8)
        next_obs, reward, _, _, info = env.step(action)
        t += 1
        for key, value in (("observations", obs), ("actions", action), ("rewards", reward),
                           ("terminals", info["success"]), ("timeouts", t == episode_steps),
                           ("infos/goal", info["goal"]), ("infos/qpos", env.data.qpos.copy()),
                           ("infos/qvel", env.data.qvel.copy())):
            rows[key].append(np.asarray(value))
        obs = next_obs
        if t == episode_steps:
            t, episode = 0, episode + 1
            obs, _ = env.reset(seed=seed + episode)
    return {k: np.stack(v).astype(bool if k in ("terminals", "timeouts") else np.float32) for k, v in rows.items()}


def write_antmaze_hdf5(
    path: str | os.PathLike, maze: str = "umaze", steps: int = 3000, episode_steps: int = 1000, seed: int = 0
) -> Path:
    """Write :func:`antmaze_arrays` as a D4RL AntMaze HDF5 file at ``path`` (atomically) and return it.

    Name the file like D4RL's download (``antmaze-umaze-v2``:
    ``Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5``) and
    :func:`offreg.load_dataset` picks the maze from the name; otherwise load it with
    ``env="antmaze-<maze>"``. ``metadata/`` records the maze, the policy and the versions.
    """
    arrays = antmaze_arrays(maze, steps, episode_steps, seed)
    metadata = {"maze": maze, "policy": "uniform random actions", "seed": seed, **dataset_versions()}

    return atomic_write(path, lambda tmp: write_d4rl(tmp, arrays, metadata))
