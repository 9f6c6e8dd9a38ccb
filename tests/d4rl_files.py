"""Write small synthetic files in D4RL's exact HDF5 layout (``Farama-Foundation/D4RL``'s generation scripts), for tests.

Not a test module: import it from tests (``from d4rl_files import write_d4rl_file``; pytest puts
``tests/`` on ``sys.path``).

The files reproduce the quirks a loader must handle: ``timeouts`` rows whose stored
``next_observations`` differ from the next row's observation, episodes that end in a terminal,
a trailing unfinished episode (so the last row is neither terminal nor timeout), float64 arrays in
replay datasets, gzip compression, and the ``infos/*`` and ``metadata/*`` groups.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

ENV_SHAPES = {  # obs_dim, act_dim, nq, nv
    "hopper": (11, 3, 6, 6),
    "halfcheetah": (17, 6, 9, 9),
    "walker2d": (17, 6, 9, 9),
    "ant": (111, 8, 15, 14),
    "antmaze": (29, 8, 15, 14),
}


def write_d4rl_file(
    path: str | Path,
    env: str = "hopper",
    n_episodes: int = 6,
    max_episode_steps: int = 40,
    *,
    seed: int = 0,
    terminal_prob: float = 0.5,
    trailing_steps: int = 7,
    replay_float64: bool = False,
    with_timeouts: bool = True,
    metadata: bool = True,
    compression: str | None = "gzip",
) -> dict[str, np.ndarray]:
    """Write a D4RL-format HDF5 file and return the arrays written (as numpy, full precision).

    Episodes: each ends either in a terminal (with probability ``terminal_prob``, at a random step
    shorter than ``max_episode_steps``) or in a timeout at step ``max_episode_steps`` (the row
    flagged in ``timeouts``, never in ``terminals``). Then ``trailing_steps`` rows of an unfinished
    episode follow. For ``env="antmaze"`` episodes end only by timeouts and ``terminals`` mark
    goal-reaching rows inside episodes (as D4RL's relabelled AntMaze files do), rewards equal them.

    Args:
      path: the file to write (``.hdf5``).
      env: ``hopper``, ``halfcheetah``, ``walker2d``, ``ant`` or ``antmaze`` (sets the dims).
      n_episodes: complete episodes before the trailing unfinished one.
      max_episode_steps: the time limit (D4RL's is 1000; small here to keep files small).
      seed: NumPy seed of the synthetic data.
      terminal_prob: probability that an episode ends in a terminal.
      trailing_steps: rows of the final unfinished episode (0 makes the last row an episode end).
      replay_float64: store float arrays as float64, as medium-replay/full-replay files do.
      with_timeouts: write ``timeouts`` (v1/v2); without it, the file looks like a v0 file.
      metadata: write ``metadata/*`` (medium/expert/replay files have it, random/medium-expert not).
      compression: HDF5 filter for the arrays (D4RL used gzip).

    Returns:
      Every array written, keyed by its HDF5 path (``observations``, ``infos/qpos``, ...); with
      ``with_timeouts=False`` the ``timeouts`` entry is still returned (not written), for reference.
    """
    obs_dim, act_dim, nq, nv = ENV_SHAPES[env]
    rng = np.random.default_rng(seed)
    lengths, ends_terminal = [], []
    for _ in range(n_episodes):
        if env != "antmaze" and rng.random() < terminal_prob:
            lengths.append(int(rng.integers(3, max_episode_steps)))
            ends_terminal.append(True)
        else:
            lengths.append(max_episode_steps)
            ends_terminal.append(False)
    n = sum(lengths) + trailing_steps
    obs = np.empty((n, obs_dim))
    next_obs = np.empty((n, obs_dim))
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    row = 0
    for length, is_terminal in [*zip(lengths, ends_terminal, strict=True), (trailing_steps, None)]:
        if length == 0:
            continue
        # a random walk around a start state: each row's next obs is the following row's obs,
        # except at the episode's last row where the true next state is not stored anywhere else
        states = np.cumsum(rng.normal(0, 0.1, (length + 1, obs_dim)), 0) + rng.normal(0, 0.5, obs_dim)
        obs[row : row + length] = states[:-1]
        next_obs[row : row + length] = states[1:]
        end = row + length - 1
        if is_terminal is True:
            terminals[end] = True
        elif is_terminal is False:
            timeouts[end] = True
        row += length
    actions = np.clip(rng.normal(0, 0.6, (n, act_dim)), -1, 1)
    if env == "antmaze":
        terminals = rng.random(n) < 0.05
        terminals &= ~timeouts
        rewards = terminals.astype(np.float64)
        if trailing_steps:
            terminals[-trailing_steps:] = False
            rewards[-trailing_steps:] = 0.0
    else:
        rewards = 1.0 + obs[:, 0] - 1e-3 * np.square(actions).sum(1)
    fdtype = np.float64 if replay_float64 else np.float32
    arrays: dict[str, np.ndarray] = {
        "observations": obs.astype(fdtype),
        "actions": actions.astype(fdtype),
        "rewards": rewards.astype(fdtype),
        "terminals": terminals,
        "next_observations": next_obs.astype(fdtype),
        "infos/action_log_probs": rng.normal(-2, 0.5, n).astype(fdtype),
        "infos/qpos": rng.normal(0, 1, (n, nq)).astype(fdtype),
        "infos/qvel": rng.normal(0, 1, (n, nv)).astype(fdtype),
    }
    arrays["timeouts"] = timeouts
    if env == "antmaze":
        arrays["infos/goal"] = np.tile(rng.uniform(0, 10, 2), (n, 1)).astype(fdtype)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key == "timeouts" and not with_timeouts:
                continue
            f.create_dataset(key, data=value, compression=compression)
        if metadata:
            f["metadata/algorithm"] = np.bytes_(b"SAC")
            f["metadata/iteration"] = np.int32(123)
            f["metadata/policy/nonlinearity"] = np.bytes_(b"relu")
            f["metadata/policy/output_distribution"] = np.bytes_(b"tanh_gaussian")
            f["metadata/policy/fc0/weight"] = rng.normal(0, 0.1, (256, obs_dim)).astype(np.float32)
            f["metadata/policy/fc0/bias"] = np.zeros(256, np.float32)
    return arrays


def expected_qlearning(arrays: dict[str, np.ndarray], terminate_on_end: bool = False) -> dict[str, np.ndarray]:
    """D4RL's ``qlearning_dataset`` loop, written out row by row (the reference for the tests)."""
    n = len(arrays["rewards"])
    out: dict[str, list] = {k: [] for k in ("observations", "actions", "next_observations", "rewards", "terminals")}
    for i in range(n - 1):
        final = bool(arrays["timeouts"][i])
        if final and not terminate_on_end:
            continue
        out["observations"].append(arrays["observations"][i].astype(np.float32))
        out["next_observations"].append(arrays["observations"][i + 1].astype(np.float32))
        out["actions"].append(arrays["actions"][i].astype(np.float32))
        out["rewards"].append(arrays["rewards"][i].astype(np.float32))
        out["terminals"].append(bool(arrays["terminals"][i]))
    return {k: np.array(v) for k, v in out.items()}


def expected_episodes(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """D4RL's ``sequence_dataset`` loop with timeouts, row by row: the complete episodes."""
    episodes, current = [], []
    for i in range(len(arrays["rewards"])):
        current.append(i)
        if arrays["terminals"][i] or arrays["timeouts"][i]:
            idx = np.array(current)
            episodes.append(
                {"rows": idx, "rewards": arrays["rewards"][idx], "observations": arrays["observations"][idx]}
            )
            current = []
    return episodes
