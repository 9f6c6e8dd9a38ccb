"""The simulated d-rectangular linear MDP of R2PVI (Tang, Liu & Xu, ICML 2025, Sec. 5.1).

Borrowed from Liu & Xu (AISTATS 2024) and used by the official R2PVI code
(``Simulated_Linear_MDP/env.py``). Five states ``x1..x5`` (indices 0..4): ``x1`` is the initial
state, ``x4`` the absorbing fail state (reward 0) and ``x5`` the absorbing goal (reward 1 per step).
Horizon ``H = 3``, feature dimension ``d = 4``, actions ``A = {-1, +1}^4`` (16 actions, enumerated in
``itertools.product([-1, 1], repeat=4)`` order; an action is its index 0..15).

With ``<xi, a> = xi_norm * sum_j a_j / 4`` the features are::

    phi(x1, a) = (1 - delta - <xi,a>, 0, 0, delta + <xi,a>)
    phi(x2, a) = (0, 1 - delta - <xi,a>, 0, delta + <xi,a>)
    phi(x3, a) = (0, 0, 1 - delta - <xi,a>, delta + <xi,a>)
    phi(x4, a) = (0, 0, 1, 0),   phi(x5, a) = (0, 0, 0, 1)

the reward is ``r_h = phi^T theta_h`` with ``theta_1 = 0``, ``theta_2 = theta_3 = e_4``, and the
nominal kernel is ``P_h(.|s,a) = sum_i phi_i(s,a) mu_i`` with the step-independent factors
``mu_1 = 0.999 x2 + 0.001 x4``, ``mu_2 = 0.999 x3 + 0.001 x4``, ``mu_3 = x4``, ``mu_4 = x5``.
They reproduce the official code's next-state table at every reachable (step, state).

The test environment with perturbation ``q`` changes only step 1: ``mu_{1,1} = x2`` and
``mu_{1,4} = q x4 + (1 - q) x5`` (factor 4 moves mass ``q`` from the goal to the fail state; the
0.001 fail leak of factor 1 is dropped, as in ``LinearMDP_test``).

**Observation.** The policy is non-stationary, so the observation carries the step: a float32
vector ``[onehot(state, 5), h]`` with ``h`` the 0-based step index (0..H; ``h = H`` is the state
after the last action). The episode ends after ``H`` actions with ``truncated = True`` (the
horizon is a time limit, as in the datasets' ``timeouts``).

Registered as the ``linear-mdp`` environment; its dataset is built by :mod:`offreg.data.generate.r2pvi`.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from offreg.envs import register_env
from offreg.errors import ConfigError

NUM_STATES = 5
HORIZON = 3
DIM = 4
FAIL, GOAL, START = 3, 4, 0
ACTIONS = np.array(list(itertools.product([-1, 1], repeat=4)), np.float64)
"""``[16, 4]`` the action vectors in the official enumeration order."""
NUM_ACTIONS = len(ACTIONS)
OBS_DIM = NUM_STATES + 1


def check_params(delta: float, xi_norm: float, q: float | None = None) -> None:
    """Raise ``ConfigError`` unless every feature lies in the simplex (and ``q`` in [0, 1])."""
    if not (0.0 <= delta - xi_norm and delta + xi_norm <= 1.0 and xi_norm >= 0.0):
        raise ConfigError(
            f"linear-mdp needs 0 <= xi_norm <= delta and delta + xi_norm <= 1 so that phi is a "
            f"distribution; got delta={delta}, xi_norm={xi_norm}"
        )
    if q is not None and not 0.0 <= q <= 1.0:
        raise ConfigError(f"linear-mdp perturbation q must be in [0, 1], got {q}")


def _xp(*values: Any):
    """NumPy for Python/NumPy scalars (constants, no device work), jax.numpy for traced values."""
    return jnp if any(isinstance(v, jax.Array) for v in values) else np


def features(delta: float, xi_norm: float):
    """The feature table ``phi[s, a]``, shape ``[5, 16, 4]``; each row lies in the simplex."""
    xp = _xp(delta, xi_norm)
    xa = xi_norm * xp.asarray(ACTIONS.sum(1)) / 4.0
    lo, hi = 1.0 - delta - xa, delta + xa
    z = xp.zeros_like(xa)
    rows = [
        xp.stack([lo, z, z, hi], -1),
        xp.stack([z, lo, z, hi], -1),
        xp.stack([z, z, lo, hi], -1),
        xp.broadcast_to(xp.asarray([0.0, 0.0, 1.0, 0.0]), (NUM_ACTIONS, DIM)),
        xp.broadcast_to(xp.asarray([0.0, 0.0, 0.0, 1.0]), (NUM_ACTIONS, DIM)),
    ]
    return xp.stack(rows)


def reward_parameters() -> np.ndarray:
    """``theta[h]``, shape ``[H, d]``: ``theta_1 = 0``, ``theta_2 = theta_3 = e_4``."""
    return np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])


def factors(q: float | jax.Array | None = None):
    """Factor distributions ``mu[h, i, s']``, shape ``[H, d, 5]``.

    Args:
      q: ``None`` for the nominal (training) environment, else the perturbation of the test
        environment (only step 1 changes).
    """
    mu = np.zeros((HORIZON, DIM, NUM_STATES))
    mu[:, 0, 1], mu[:, 0, FAIL] = 0.999, 0.001
    mu[:, 1, 2], mu[:, 1, FAIL] = 0.999, 0.001
    mu[:, 2, FAIL] = 1.0
    mu[:, 3, GOAL] = 1.0
    if q is None:
        return mu
    base = mu.copy()
    base[0, 0] = 0.0
    base[0, 0, 1] = 1.0  # mu_{1,1} = x2 (no fail leak)
    base[0, 3] = 0.0
    base[0, 3, GOAL] = 1.0
    shift = np.zeros_like(mu)
    shift[0, 3, FAIL], shift[0, 3, GOAL] = 1.0, -1.0  # mu_{1,4} = q x4 + (1 - q) x5
    return base + _xp(q).asarray(q) * shift


def transition_kernel(delta: float, xi_norm: float, q: float | jax.Array | None = None):
    """``P[h, s, a, s'] = sum_i phi_i(s, a) mu_{h,i}(s')``, shape ``[H, 5, 16, 5]``."""
    xp = _xp(delta, xi_norm, q)
    return xp.einsum("sai,hij->hsaj", features(delta, xi_norm), factors(q))


def rewards(delta: float, xi_norm: float):
    """``r[h, s, a] = phi(s, a)^T theta_h``, shape ``[H, 5, 16]``."""
    return _xp(delta, xi_norm).einsum("sai,hi->hsa", features(delta, xi_norm), reward_parameters())


@functools.partial(jax.jit, static_argnums=(1, 2))
def policy_value(policy: jax.Array, delta: float, xi_norm: float, q: float | jax.Array | None = None) -> jax.Array:
    """Exact expected return from ``x1`` of a deterministic policy, by dynamic programming.

    Args:
      policy: int ``[H, 5]`` action index per (step, state).
      q: perturbation of the evaluation environment (``None``: nominal); may be traced.

    Returns:
      scalar ``V^pi_1(x1) = E[sum_h r_h]``.
    """
    P, R = jnp.asarray(transition_kernel(delta, xi_norm, q)), jnp.asarray(rewards(delta, xi_norm))
    s = jnp.arange(NUM_STATES)

    def back(v_next, h):
        a = policy[h]
        v = R[h, s, a] + P[h, s, a] @ v_next
        return v, None

    v1, _ = jax.lax.scan(back, jnp.zeros(NUM_STATES, R.dtype), jnp.arange(HORIZON)[::-1])
    return v1[START]


def observation(state: jax.Array | np.ndarray, step: jax.Array | np.ndarray) -> jax.Array:
    """Encode states ``[...]`` and 0-based steps ``[...]`` as observations ``[..., 6]`` (float32)."""
    state, step = jnp.asarray(state), jnp.asarray(step)
    return jnp.concatenate([jax.nn.one_hot(state, NUM_STATES), step[..., None].astype(jnp.float32)], -1)


def decode_observation(obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse of :func:`observation`: ``(state [...], step [...])`` as int32 arrays."""
    obs = jnp.asarray(obs)
    return jnp.argmax(obs[..., :NUM_STATES], -1).astype(jnp.int32), jnp.round(obs[..., -1]).astype(jnp.int32)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def collect(key: jax.Array, num_trajectories: int, delta: float, xi_norm: float, q: float | None = None) -> dict:
    """The paper's data collection: a uniform-random behaviour policy over the 16 actions.

    (``Offline_Dataset_Collection`` in the official code; ``N = 100`` trajectories.) Pure JAX.

    Args:
      key: PRNG key.
      num_trajectories: K.
      q: perturbation of the collection environment (``None``: nominal, as in the paper).

    Returns:
      ``states`` int32 ``[K, H+1]``, ``actions`` int32 ``[K, H]``, ``rewards`` ``[K, H]``.
    """
    P, R = jnp.asarray(transition_kernel(delta, xi_norm, q)), jnp.asarray(rewards(delta, xi_norm))
    k_act, k_next = jax.random.split(key)
    actions = jax.random.randint(k_act, (num_trajectories, HORIZON), 0, NUM_ACTIONS)
    next_keys = jax.random.split(k_next, HORIZON)

    def step(s, h):
        a = actions[:, h]
        r = R[h, s, a]
        s_next = jax.random.categorical(next_keys[h], jnp.log(P[h, s, a]), axis=-1).astype(jnp.int32)
        return s_next, (s_next, r)

    s0 = jnp.full((num_trajectories,), START, jnp.int32)
    _, (s_next, r) = jax.lax.scan(step, s0, jnp.arange(HORIZON))
    states = jnp.concatenate([s0[:, None], s_next.T.astype(jnp.int32)], 1)
    return {"states": states, "actions": actions.astype(jnp.int32), "rewards": r.T}


class LinearMDPEnv(gym.Env):
    """Gymnasium version of the simulated linear MDP (see the module docstring).

    Args:
      delta: the feature parameter delta (paper: 0.3).
      xi_norm: ``||xi||_1`` (paper: 0.2, Fig. 1(b): 0.3).
      q: ``None`` for the nominal environment, else the test perturbation in [0, 1].
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, delta: float = 0.3, xi_norm: float = 0.2, q: float | None = None):
        check_params(delta, xi_norm, q)
        self.delta, self.xi_norm, self.q = float(delta), float(xi_norm), q
        self._P = np.asarray(transition_kernel(delta, xi_norm, q), np.float64)
        self._R = np.asarray(rewards(delta, xi_norm), np.float64)
        self.observation_space = gym.spaces.Box(0.0, float(HORIZON), (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self._state, self._step = START, 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(OBS_DIM, np.float32)
        obs[self._state], obs[-1] = 1.0, self._step
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state, self._step = START, 0
        return self._obs(), {}

    def step(self, action):
        a = int(np.asarray(action).reshape(()))
        if not 0 <= a < NUM_ACTIONS:
            raise ConfigError(f"linear-mdp action must be an index in [0, {NUM_ACTIONS}), got {action!r}")
        h, s = self._step, self._state
        reward = float(self._R[h, s, a])
        p = self._P[h, s, a]
        self._state = int(self.np_random.choice(NUM_STATES, p=p / p.sum()))
        self._step = h + 1
        return self._obs(), reward, False, self._step >= HORIZON, {}


register_env("linear-mdp", LinearMDPEnv)
