"""The behaviour policy of offreg's generated data: a SAC tanh-Gaussian snapshot, or uniform actions.

Rollouts *sample* from the policy (D4RL's ``collect_data.py`` does), so every action comes with its
log-probability, recorded as ``infos/action_log_probs``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offreg.networks import TanhGaussianActor


def tanh_gaussian_sample(mean: jax.Array, log_std: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sample ``a = tanh(u)``, ``u ~ N(mean, exp(log_std)^2)``, and its log-density.

    ``log pi(a) = log N(u) - sum_i log(1 - tanh(u_i)^2)``, the Jacobian written stably as
    ``2 (log 2 - u - softplus(-2u))``. Shapes ``[..., d]`` -> ``([..., d], [...])``.
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    log_n = -0.5 * jnp.sum(eps**2, -1) - jnp.sum(log_std, -1) - 0.5 * mean.shape[-1] * jnp.log(2.0 * jnp.pi)
    log_det = jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), -1)
    return jnp.tanh(u), log_n - log_det


@functools.partial(jax.jit, static_argnums=(3,))
def _policy_actions(actor_params, observations, key, hidden_dims):
    act_dim = actor_params["params"]["mean"]["Dense_0"]["bias"].shape[0]
    mean, log_std = TanhGaussianActor(hidden_dims, act_dim).apply(actor_params, observations)
    return tanh_gaussian_sample(mean, log_std, key)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _uniform_actions(key, num: int, act_dim: int):
    actions = jax.random.uniform(key, (num, act_dim), jnp.float32, -1.0, 1.0)
    return actions, jnp.full((num,), -act_dim * np.log(2.0), jnp.float32)


def policy_actions(
    actor_params: Any | None, observations: np.ndarray, key: jax.Array, act_low: np.ndarray, act_high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sample behaviour actions for ``[M, obs_dim]`` observations: the tanh-Gaussian snapshot, or
    uniform actions when ``actor_params`` is None. Returns ``(actions [M, act], log_probs [M])``
    rescaled from ``[-1, 1]`` to the action bounds (the identity for D4RL's tasks)."""
    if actor_params is None:
        a, logp = _uniform_actions(key, observations.shape[0], act_low.shape[0])
    else:
        hidden = tuple(int(v["Dense_0"]["bias"].shape[0]) for k, v in sorted(actor_params["params"].items())
                       if k.startswith("Linear_"))
        a, logp = _policy_actions(actor_params, jnp.asarray(observations), key, hidden)
    a = np.asarray(a)
    scale = (act_high - act_low) / 2.0
    logp = np.asarray(logp) - np.sum(np.log(scale))
    return act_low + (a + 1.0) * scale, logp
