"""R2PVI's datasets: registers the generated datasets ``offreg/linear-mdp-v0`` and
``offreg/american-put-v0`` of the environments ``linear-mdp`` and ``american-put`` (:mod:`offreg.envs`).

**File layout** (D4RL format). Each trajectory of horizon ``H`` is written as ``H + 1`` rows: the
``H`` decisions ``(s_h, a_h, r_h)`` followed by the state reached after the last action,
``s_{H+1}``, as a row with ``timeouts = 1`` (action 0, reward 0); ``terminals`` are all 0 (the
horizon is a time limit, and the observation carries the step ``h``, so a learner knows that
``V_{H+1} = 0``). Under D4RL ``qlearning_dataset`` semantics (drop timeout rows, next observation =
next row) this gives exactly the ``H`` transitions of every trajectory with the right next states,
and D4RL's episode split gives one episode of ``H + 1`` rows per trajectory; the file also stores
``next_observations`` with the same values.

- ``observations``: the environment's observation, which carries the 0-based step (see
  :mod:`offreg.envs.linear_mdp` and :mod:`offreg.envs.american_put`).
- ``actions``: float32 ``[N, 1]``, the **action index** (linear MDP: 0..15 in the
  ``itertools.product([-1, 1], repeat=4)`` order; option: 0 hold, 1 exercise).
- ``metadata/*``: the environment parameters and the generation procedure.

Generation is pure JAX with a fixed key, so every call writes the same file.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from offreg.data.d4rl import write_d4rl
from offreg.data.generated import GeneratedSpec, register_generated
from offreg.envs import american_put, linear_mdp


def trajectories_to_d4rl(observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> dict[str, np.ndarray]:
    """Flatten trajectories into the D4RL row layout described in the module docstring.

    Args:
      observations: ``[N, H+1, obs_dim]`` (``s_1 .. s_{H+1}``).
      actions: int ``[N, H]`` action indices.
      rewards: ``[N, H]``.

    Returns:
      ``observations, actions, rewards, terminals, timeouts, next_observations`` with
      ``N * (H + 1)`` rows.
    """
    n, h1, obs_dim = observations.shape
    horizon = h1 - 1
    acts = np.concatenate([actions, np.zeros((n, 1), actions.dtype)], 1).astype(np.float32)[..., None]
    rews = np.concatenate([rewards, np.zeros((n, 1))], 1).astype(np.float32)
    terminals = np.zeros((n, h1), bool)
    timeouts = np.zeros((n, h1), bool)
    timeouts[:, horizon] = True
    next_obs = np.concatenate([observations[:, 1:], observations[:, -1:]], 1)
    return {
        "observations": observations.reshape(n * h1, obs_dim).astype(np.float32),
        "actions": acts.reshape(n * h1, 1),
        "rewards": rews.reshape(-1),
        "terminals": terminals.reshape(-1),
        "timeouts": timeouts.reshape(-1),
        "next_observations": next_obs.reshape(n * h1, obs_dim).astype(np.float32),
    }


# --- linear MDP ----------------------------------------------------------------------------------
LINEAR_MDP_V0 = {"delta": 0.3, "xi_norm": 0.2, "num_trajectories": 100, "seed": 0}


def linear_mdp_arrays(key: jax.Array, num_trajectories: int, delta: float, xi_norm: float) -> dict[str, np.ndarray]:
    """Collect ``num_trajectories`` uniform-random trajectories and lay them out as D4RL rows."""
    data = jax.tree_util.tree_map(np.asarray, linear_mdp.collect(key, num_trajectories, delta, xi_norm))
    steps = np.broadcast_to(np.arange(linear_mdp.HORIZON + 1), data["states"].shape)
    obs = np.asarray(linear_mdp.observation(data["states"], steps))
    return trajectories_to_d4rl(obs, data["actions"], data["rewards"])


def build_linear_mdp(path: Path, delta: float = 0.3, xi_norm: float = 0.2, num_trajectories: int = 100,
                     seed: int = 0) -> None:
    """Write ``offreg/linear-mdp-v0``: uniform-random behaviour in the nominal linear MDP."""
    linear_mdp.check_params(delta, xi_norm)
    arrays = linear_mdp_arrays(jax.random.PRNGKey(seed), num_trajectories, delta, xi_norm)
    meta = {
        "env_id": "linear-mdp", "delta": delta, "xi_norm": xi_norm, "horizon": linear_mdp.HORIZON,
        "num_trajectories": num_trajectories, "seed": seed, "behaviour_policy": "uniform random over 16 actions",
        "action_encoding": "index into itertools.product([-1, 1], repeat=4)",
        "observation_encoding": "[onehot(state, 5), 0-based step]",
        "source": "R2PVI (Tang, Liu & Xu, ICML 2025) Sec. 5.1; Offline_Dataset_Collection",
    }
    write_d4rl(path, arrays, meta)


# --- American put option -------------------------------------------------------------------------
AMERICAN_PUT_V0 = {"num_trajectories": 100, "init_seed": 0, "p": american_put.P0, "seed": 0, "feature_dim": 30}


def american_put_arrays(key: jax.Array, num_trajectories: int, s1: float, p: float = american_put.P0) -> dict:
    """Collect always-hold price paths and lay them out as D4RL rows."""
    prices = np.asarray(american_put.collect(key, num_trajectories, s1, p))
    steps = np.broadcast_to(np.arange(prices.shape[1]), prices.shape)
    obs = np.stack([prices, steps], -1).astype(np.float32)
    horizon = prices.shape[1] - 1
    zeros = np.zeros((num_trajectories, horizon))
    return trajectories_to_d4rl(obs, zeros.astype(np.int64), zeros)


def build_american_put(path: Path, num_trajectories: int = 100, init_seed: int = 0, p: float = american_put.P0,
                       seed: int = 0, feature_dim: int = 30) -> None:
    """Write ``offreg/american-put-v0``: always-hold paths from the fixed initial price of ``init_seed``."""
    s1 = american_put.initial_price(init_seed)
    arrays = american_put_arrays(jax.random.PRNGKey(seed), num_trajectories, s1, p)
    meta = {
        "env_id": "american-put", "strike": american_put.STRIKE, "horizon": american_put.HORIZON, "p": p,
        "initial_price": s1, "init_seed": init_seed, "num_trajectories": num_trajectories, "seed": seed,
        "feature_dim": feature_dim, "behaviour_policy": "always hold",
        "action_encoding": "0 hold, 1 exercise", "observation_encoding": "[price, 0-based step]",
        "source": "R2PVI (Tang, Liu & Xu, ICML 2025) Sec. 5.2; American_put_opt/data_collection.py",
    }
    write_d4rl(path, arrays, meta)


# --- registration --------------------------------------------------------------------------------
register_generated(GeneratedSpec(
    name="linear-mdp-v0", env_id="linear-mdp",
    description="R2PVI simulated linear MDP (delta=0.3, xi_norm=0.2): 100 uniform-random trajectories, H=3",
    build=lambda path: build_linear_mdp(path, **LINEAR_MDP_V0),
    max_episode_steps=linear_mdp.HORIZON,
))
register_generated(GeneratedSpec(
    name="american-put-v0", env_id="american-put",
    description="R2PVI American put option (K=100, p=0.5): 100 always-hold price paths, H=20",
    build=lambda path: build_american_put(path, **AMERICAN_PUT_V0),
    max_episode_steps=american_put.HORIZON,
))
