"""The linear structure R2PVI and its baselines learn with: the environment's feature map as the
learner sees it, the dataset grouped by step, and the truncated pessimistic linear Q-function.

:mod:`offreg.agents.r2pvi` fits the weights ``w_h`` by backward induction; this module is what the
fit and the fitted policy share: ``phi(s, a)``, the known exact values, the per-step samples, the
bonus ``Gamma_h`` and ``Q_h(s, a) = min{phi^T w_h - Gamma_h(phi), H - h}``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from offreg.envs import american_put, linear_mdp
from offreg.errors import ConfigError, DatasetError, EnvironmentError_
from offreg.types import Transitions

SUPPORTED_ENVS = ("linear-mdp", "american-put")


# ================================================================================================
# the environment's linear structure, as the learner sees it
# ================================================================================================
@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which environment's feature map the learner uses, with its parameters (hashable, static).

    Attributes:
      env_id: ``linear-mdp`` or ``american-put``.
      params: sorted ``(name, value)`` pairs: linear MDP ``delta, xi_norm``; option
        ``feature_dim, horizon, strike``.
    """

    env_id: str
    params: tuple[tuple[str, float], ...]

    def get(self, name: str) -> float:
        return dict(self.params)[name]


class LinearModel(NamedTuple):
    """The learner's view of an environment.

    Attributes:
      horizon: H.
      num_actions: |A|.
      dim: feature dimension d.
      theta: ``[H, d]`` known reward parameters.
      encode: ``obs [..., obs_dim] -> (step [...], phi [..., A, d], known [..., A], known_value [..., A])``:
        the 0-based step, the features of every action, and which actions have a known exact value.
        In both environments the step is the observation's last entry.
    """

    horizon: int
    num_actions: int
    dim: int
    theta: np.ndarray
    encode: Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array, jax.Array]]


@functools.lru_cache(maxsize=64)
def learner_model(spec: ModelSpec) -> LinearModel:
    """Build the :class:`LinearModel` of ``spec``."""
    if spec.env_id == "linear-mdp":
        delta, xi_norm = spec.get("delta"), spec.get("xi_norm")
        linear_mdp.check_params(delta, xi_norm)
        table = np.asarray(linear_mdp.features(delta, xi_norm))

        def encode_lmdp(obs):
            state, step = linear_mdp.decode_observation(obs)
            phi = jnp.asarray(table, obs.dtype)[state]
            known = jnp.broadcast_to((state == linear_mdp.FAIL)[..., None], phi.shape[:-1])
            return step, phi, known, jnp.zeros(phi.shape[:-1], obs.dtype)

        return LinearModel(linear_mdp.HORIZON, linear_mdp.NUM_ACTIONS, linear_mdp.DIM,
                           np.asarray(linear_mdp.reward_parameters()), encode_lmdp)
    if spec.env_id == "american-put":
        dim, strike = int(spec.get("feature_dim")), spec.get("strike")
        horizon = int(spec.get("horizon"))

        def encode_put(obs):
            price, step = american_put.decode_observation(obs)
            hold = american_put.hat_features(price, dim).astype(obs.dtype)
            phi = jnp.stack([hold, jnp.zeros_like(hold)], -2)
            known = jnp.broadcast_to(jnp.array([False, True]), phi.shape[:-1])
            value = jnp.stack([jnp.zeros_like(price), american_put.payoff(price, strike)], -1).astype(obs.dtype)
            return step, phi, known, value

        return LinearModel(horizon, american_put.NUM_ACTIONS, dim, np.zeros((horizon, dim)), encode_put)
    raise EnvironmentError_(f"no R2PVI feature map for environment {spec.env_id!r}; expected one of {SUPPORTED_ENVS}")


def model_spec_for(info: Any, config: Any) -> ModelSpec:
    """The :class:`ModelSpec` of a dataset (``DatasetInfo``), from its env id and generation metadata.

    ``config`` is a linear value-iteration config; its ``feature_dim`` (0: the metadata's) sizes the option's features.

    Raises:
      EnvironmentError_: the dataset is not from an environment with a known linear structure.
    """
    env_id = getattr(info, "env_id", None)
    if env_id not in SUPPORTED_ENVS:
        raise EnvironmentError_(
            f"R2PVI/PEVI/DRPVI need a dataset from the {' or '.join(SUPPORTED_ENVS)} environment (their feature "
            f"map is part of the model), got dataset {getattr(info, 'name', '?')!r} with env_id {env_id!r}; "
            "use offreg/linear-mdp-v0 or offreg/american-put-v0"
        )
    meta = _metadata(getattr(info, "extra", {}) or {})
    if env_id == "linear-mdp":
        params = {"delta": float(meta.get("delta", 0.3)), "xi_norm": float(meta.get("xi_norm", 0.2))}
    else:
        dim = config.feature_dim or int(meta.get("feature_dim", 30))
        params = {"feature_dim": float(dim), "strike": float(meta.get("strike", american_put.STRIKE)),
                  "horizon": float(meta.get("horizon", american_put.HORIZON))}
    return ModelSpec(env_id, tuple(sorted(params.items())))


def _metadata(extra: dict) -> dict:
    """Flatten ``metadata/*`` entries of a dataset's ``extra`` (nested or prefixed) into one dict."""
    out: dict = {}
    for k, v in extra.items():
        if isinstance(v, dict):
            out.update(_metadata(v))
        else:
            out[k.split("/")[-1]] = v.item() if hasattr(v, "item") else v
    return out


# ================================================================================================
# data per step
# ================================================================================================
class StepData(NamedTuple):
    """The samples of each step, padded to a common count K (``mask`` marks real rows).

    Attributes:
      phi: ``[H, K, d]`` features of ``(s_h, a_h)``.
      rewards: ``[H, K]`` observed rewards (PEVI only).
      mask: ``[H, K]`` 1 for a real sample.
      next_phi: ``[H, K, A, d]`` features of every action at ``s_{h+1}``.
      next_known: ``[H, K, A]`` bool, actions whose value at ``s_{h+1}`` is known exactly.
      next_known_value: ``[H, K, A]`` those values.
      next_live: ``[H, K]`` 0 where the transition is terminal before the horizon.
    """

    phi: jax.Array
    rewards: jax.Array
    mask: jax.Array
    next_phi: jax.Array
    next_known: jax.Array
    next_known_value: jax.Array
    next_live: jax.Array


def step_data(model: LinearModel, obs: jax.Array, actions: jax.Array, rewards: jax.Array, next_obs: jax.Array,
              live: jax.Array, mask: jax.Array) -> StepData:
    """Encode step-grouped samples ``[H, K, ...]`` (observations, int action indices) as :class:`StepData`. Pure."""
    _, phi_all, _, _ = model.encode(obs)
    phi = jnp.take_along_axis(phi_all, actions[..., None, None].astype(jnp.int32), axis=-2)[..., 0, :]
    _, next_phi, next_known, next_value = model.encode(next_obs)
    m = mask.astype(phi.dtype)
    return StepData(phi * m[..., None], rewards * m, m, next_phi, next_known, next_value, live.astype(phi.dtype))


def group_by_step(transitions: Transitions, model: LinearModel, name: str = "dataset") -> StepData:
    """Group a flat dataset by the step its observations carry and encode it (host side, in ``create``).

    Raises:
      DatasetError: steps outside ``[0, H)``, action indices outside ``[0, |A|)``, or next
        observations that are not one step later.
    """
    obs = np.asarray(transitions.observations, np.float64)
    next_obs = np.asarray(transitions.next_observations, np.float64)
    acts = np.asarray(transitions.actions, np.float64)
    if acts.ndim != 2 or acts.shape[1] != 1:
        raise DatasetError(f"{name}: actions must be action indices of shape (N, 1), got {acts.shape}")
    a = np.rint(acts[:, 0]).astype(np.int64)
    if np.any(np.abs(acts[:, 0] - a) > 1e-6) or a.min() < 0 or a.max() >= model.num_actions:
        raise DatasetError(f"{name}: actions must be integer indices in [0, {model.num_actions}); regenerate the data")
    step, next_step = np.rint(obs[:, -1]).astype(np.int64), np.rint(next_obs[:, -1]).astype(np.int64)
    if step.min() < 0 or step.max() >= model.horizon:
        raise DatasetError(
            f"{name}: observation steps must lie in [0, {model.horizon}), got [{step.min()}, {step.max()}]"
        )
    terminals = np.asarray(transitions.terminals) > 0.5
    bad = (next_step != step + 1) & ~terminals
    if bad.any():
        raise DatasetError(f"{name}: {int(bad.sum())} transitions have a next observation that is not one step later")
    counts = np.bincount(step, minlength=model.horizon)
    k = int(counts.max())
    idx = np.zeros((model.horizon, k), np.int64)
    mask = np.zeros((model.horizon, k), bool)
    for h in range(model.horizon):
        rows = np.flatnonzero(step == h)
        idx[h, : len(rows)], mask[h, : len(rows)] = rows, True
    live = ~terminals | (step == model.horizon - 1)  # the horizon's end is terminal anyway
    rewards = np.asarray(transitions.rewards, np.float64)
    return _jitted_step_data(model)(obs[idx], a[idx], rewards[idx], next_obs[idx], live[idx], mask)


_STEP_DATA_FNS: dict[int, Callable] = {}


def _jitted_step_data(model: LinearModel) -> Callable:
    """A jitted :func:`step_data` for ``model`` (cached: models are cached by :func:`learner_model`)."""
    if id(model) not in _STEP_DATA_FNS:
        _STEP_DATA_FNS[id(model)] = jax.jit(functools.partial(step_data, model))
    return _STEP_DATA_FNS[id(model)]


# ================================================================================================
# the truncated pessimistic linear Q-function
# ================================================================================================
def bonus_fn(phi: jax.Array, lambda_inv: jax.Array, beta: jax.Array, kind: str) -> jax.Array:
    """Pessimism bonus ``Gamma(phi)`` for features ``[..., d]`` and ``Lambda^{-1} [d, d]``: ``[...]``.

    ``code``: ``beta sqrt(sum_i phi_i^2 L_ii)``; ``paper``: ``beta sum_i |phi_i| sqrt(L_ii)``;
    ``elliptical``: ``beta sqrt(phi^T L phi)``.
    """
    diag = jnp.maximum(jnp.diagonal(lambda_inv), 0.0)
    if kind == "code":
        return beta * jnp.sqrt(jnp.maximum(jnp.sum(phi**2 * diag, -1), 0.0))
    if kind == "paper":
        return beta * jnp.sum(jnp.abs(phi) * jnp.sqrt(diag), -1)
    if kind == "elliptical":
        return beta * jnp.sqrt(jnp.maximum(jnp.einsum("...i,ij,...j->...", phi, lambda_inv, phi), 0.0))
    raise ConfigError(f"unknown bonus {kind!r}; expected 'code', 'paper' or 'elliptical'")


def truncated_q(phi: jax.Array, w: jax.Array, lambda_inv: jax.Array, beta: jax.Array, cap: jax.Array,
                known: jax.Array, known_value: jax.Array, bonus: str, clip_at_zero: bool) -> jax.Array:
    """``Q_h(s, a) = min{phi^T w - Gamma(phi), cap}`` (``^+`` if ``clip_at_zero``); known values override."""
    q = jnp.minimum(phi @ w - bonus_fn(phi, lambda_inv, beta, bonus), cap)
    if clip_at_zero:
        q = jnp.maximum(q, 0.0)
    return jnp.where(known, known_value, q)


def q_values(model: LinearModel, w: jax.Array, lambda_inv: jax.Array, beta: jax.Array, obs: jax.Array,
             bonus: str, clip_at_zero: bool) -> jax.Array:
    """``Q_h(s, a)`` for every action at observations ``[B, obs_dim]``: ``[B, A]`` (step read from obs)."""
    step, phi, known, known_value = model.encode(obs)
    h = jnp.clip(step, 0, model.horizon - 1)
    wh, lh = w[h], lambda_inv[h]  # [B, d], [B, d, d]
    lin = jnp.einsum("bad,bd->ba", phi, wh) - jax.vmap(lambda p, li: bonus_fn(p, li, beta, bonus))(phi, lh)
    q = jnp.minimum(lin, (model.horizon - h)[:, None].astype(lin.dtype))
    if clip_at_zero:
        q = jnp.maximum(q, 0.0)
    return jnp.where(known, known_value, q)


def greedy_actions(model: LinearModel, w: jax.Array, lambda_inv: jax.Array, beta: jax.Array, obs: jax.Array,
                   bonus: str, clip_at_zero: bool) -> jax.Array:
    """``pi_h(s) = argmax_a Q_h(s, a)`` (first maximiser, as ``np.argmax``): int32 ``[B]``."""
    return jnp.argmax(q_values(model, w, lambda_inv, beta, obs, bonus, clip_at_zero), -1).astype(jnp.int32)
