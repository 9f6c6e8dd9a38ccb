"""The American put option of R2PVI's experiments (Tamar, Mannor & Xu, ICML 2014).

As in the official R2PVI code (``American_put_opt/env.py``): the state is the price ``s_h > 0``;
action 0 holds, action 1 exercises. Holding moves the price to ``1.02 s`` with probability ``p``
(nominal ``p0 = 0.5``; the test environments use ``p in {0.2, ..., 1.0}``) and to ``0.98 s``
otherwise, with reward 0; exercising pays ``(K - s)^+`` with strike ``K = 100`` and ends the
episode (the official code moves to an absorbing zero-reward dummy state instead, which gives the
same returns). Horizon ``H = 20``, no discounting; the episode is truncated after ``H`` holds.

The initial price ``s_1 ~ U[K-5, K+5]`` is drawn **once** per environment, from
``numpy.random.RandomState(init_seed)``, exactly as the official code does with
``np.random.seed(seed)``: ``init_seed=1`` (the test environments) gives ``s_1 = 99.170``, ``0``
gives ``100.488``.

**Features** (the learner's, Sec. 5.2 of the paper): ``d`` hat functions
``phi_i(s) = max(0, 1 - |s - c_i| / Delta)`` with anchors ``c_i = 80 + (i-1) Delta`` and
``Delta = (160 - 60) / d``, for the hold action only; the exercise value ``(K - s)^+`` is known.

**Observation.** float32 ``[price, h]`` with ``h`` the 0-based step index (0..H).

Registered as the ``american-put`` environment; its dataset is built by :mod:`offreg.data.generate.r2pvi`.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from offreg.envs import register_env
from offreg.errors import ConfigError

HORIZON = 20
STRIKE = 100.0
UP, DOWN = 1.02, 0.98
P0 = 0.5
OBS_DIM = 2
NUM_ACTIONS = 2
HOLD, EXERCISE = 0, 1


def initial_price(init_seed: int, strike: float = STRIKE) -> float:
    """The fixed initial price of an environment built with ``init_seed`` (official convention)."""
    return float(np.random.RandomState(init_seed).uniform(strike - 5.0, strike + 5.0))


def hat_features(price: jax.Array, dim: int) -> jax.Array:
    """``phi(s)``, shape ``price.shape + (dim,)``: the official code's hat functions."""
    width = (160.0 - 60.0) / dim
    anchors = 80.0 + width * jnp.arange(dim)
    return jnp.maximum(0.0, 1.0 - jnp.abs(jnp.asarray(price)[..., None] - anchors) / width)


def payoff(price: jax.Array, strike: float = STRIKE) -> jax.Array:
    """The exercise reward ``(K - s)^+``."""
    return jnp.maximum(strike - jnp.asarray(price), 0.0)


def decode_observation(obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(price [...], step [...] int32)`` from observations ``[..., 2]``."""
    obs = jnp.asarray(obs)
    return obs[..., 0], jnp.round(obs[..., 1]).astype(jnp.int32)


@functools.partial(jax.jit, static_argnums=(1, 4))
def collect(key: jax.Array, num_trajectories: int, s1: float, p: float = P0, horizon: int = HORIZON) -> jax.Array:
    """The official data collection: the behaviour policy always holds. Pure JAX.

    Args:
      key: PRNG key.
      num_trajectories: N (paper: 100; runtime study 1000..10000).
      s1: the environment's fixed initial price.
      p: price-up probability of the collection environment (nominal 0.5).

    Returns:
      prices ``[N, H+1]`` (``s_1 .. s_{H+1}``); actions are all ``HOLD`` and rewards all 0.
    """
    up = jax.random.bernoulli(key, p, (num_trajectories, horizon))
    moves = jnp.where(up, UP, DOWN)
    return s1 * jnp.concatenate([jnp.ones((num_trajectories, 1)), jnp.cumprod(moves, 1)], 1)


@functools.partial(jax.jit, static_argnums=(3,))
def policy_value(exercise: jax.Array, s1: float, p: float, strike: float = STRIKE) -> jax.Array:
    """Exact expected return of a deterministic policy on the recombining price lattice.

    After ``h`` moves with ``u`` ups the price is ``s1 * 1.02^u * 0.98^(h-u)``, so the policy is a
    table over (step, number of ups) and its value follows by backward induction, without
    Monte-Carlo noise.

    Args:
      exercise: bool ``[H, H]``; ``exercise[h, u]`` for ``u <= h`` (the rest is ignored).
      s1: initial price.
      p: price-up probability of the evaluation environment.

    Returns:
      the expected undiscounted return.
    """
    horizon = exercise.shape[0]
    u = jnp.arange(horizon + 1)

    def back(v_next, h):
        price = lattice_prices(s1, horizon)[h]
        cont = p * jnp.roll(v_next, -1) + (1.0 - p) * v_next
        v = jnp.where(exercise[h] & (u[:horizon] <= h), payoff(price, strike), cont[:horizon])
        return jnp.concatenate([v, jnp.zeros(1, v.dtype)]), None

    v, _ = jax.lax.scan(back, jnp.zeros(horizon + 1), jnp.arange(horizon)[::-1])
    return v[0]


def lattice_prices(s1: float, horizon: int = HORIZON) -> jax.Array:
    """``prices[h, u] = s1 * 1.02^u * 0.98^(h-u)``, shape ``[H, H]`` (entries with ``u > h`` unused)."""
    h = jnp.arange(horizon)[:, None]
    u = jnp.arange(horizon)[None, :]
    return s1 * UP ** u * DOWN ** jnp.maximum(h - u, 0)


class AmericanPutEnv(gym.Env):
    """Gymnasium version of the American put option (see the module docstring).

    Args:
      p: price-up probability (nominal 0.5).
      init_seed: seed of the fixed initial price (official test environments: 1).
      initial_price_: overrides the initial price when given.
      strike: K.
      horizon: H.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        p: float = P0,
        init_seed: int = 1,
        initial_price_: float | None = None,
        strike: float = STRIKE,
        horizon: int = HORIZON,
    ):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"american-put price-up probability p must be in [0, 1], got {p}")
        if horizon < 1:
            raise ConfigError(f"american-put horizon must be >= 1, got {horizon}")
        self.p, self.strike, self.horizon = float(p), float(strike), int(horizon)
        self.s1 = float(initial_price_) if initial_price_ is not None else initial_price(init_seed, strike)
        self.observation_space = gym.spaces.Box(0.0, np.inf, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self._price, self._step = self.s1, 0

    def _obs(self) -> np.ndarray:
        return np.array([self._price, self._step], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._price, self._step = self.s1, 0
        return self._obs(), {}

    def step(self, action):
        a = int(np.asarray(action).reshape(()))
        if a not in (HOLD, EXERCISE):
            raise ConfigError(f"american-put action must be 0 (hold) or 1 (exercise), got {action!r}")
        self._step += 1
        if a == EXERCISE:
            return self._obs(), max(self.strike - self._price, 0.0), True, False, {}
        self._price *= UP if self.np_random.random() < self.p else DOWN
        return self._obs(), 0.0, False, self._step >= self.horizon, {}


register_env("american-put", AmericanPutEnv)
