"""R2PVI: robust regularized pessimistic value iteration (Tang, Liu & Xu, ICML 2025, arXiv 2411.18612),
and the baselines of its experiments: PEVI, DRPVI and DRVI-L.

Setting: a d-rectangular linear MDP, ``P_h(.|s,a) = sum_i phi_i(s,a) mu_{h,i}``, ``r_h = phi^T theta_h``.
The robust *regularized* Q-function stays linear, ``Q_h = phi^T (theta_h + w_h)`` with

    w_{h,i} = inf_mu  E_mu V_{h+1} + lambda D_f(mu || mu_{h,i}),

a scalar dual problem per coordinate (:mod:`offreg.agents.r2pvi_duals`). R2PVI is one backward
induction over ``h = H..1`` (no gradient steps):

1. ``Lambda_h = sum_tau phi_tau phi_tau^T + gamma I`` (ridge regression on the step-h samples);
2. ``y_tau = V_{h+1}(s'_tau) = max_a Q_{h+1}(s'_tau, a)``; ``w_h`` from the divergence's dual
   with ``E_{mu_{h,i}} g(V) ~= (Lambda_h^{-1} Phi_h^T g(y))_i`` (``w_H = 0``, as the official code);
3. ``Q_h(s,a) = min{phi^T (theta_h + w_h) - Gamma_h(s,a), H - h + 1}`` with the pessimism bonus
   ``Gamma_h`` (below); no floor at 0 unless ``clip_at_zero``;
4. act greedily: ``pi_h(s) = argmax_a Q_h(s, a)`` (first action on ties).

Bonus forms (``bonus``): ``code`` = ``beta sqrt(sum_i phi_i^2 [Lambda^{-1}]_ii)`` (official code,
default); ``paper`` = ``beta sum_i phi_i sqrt([Lambda^{-1}]_ii)``; ``elliptical`` =
``beta sqrt(phi^T Lambda^{-1} phi)`` (PEVI).

Baselines: **PEVI** (Jin, Yang & Wang 2021) regresses ``r + V_{h+1}`` on the observed rewards;
**DRPVI** (Liu & Xu 2024) and **DRVI-L** (Ma et al. 2022) replace the regularized dual by the dual
of a TV / KL uncertainty ball of radius ``rho``.

The reward parameters ``theta_h`` are the environment's (known, as in the official code); states
whose value is known exactly (the linear MDP's fail state, the option's exercise payoff) get it.
The fit runs in float64 (``jax.enable_x64`` locally, inside ``create`` only) to match NumPy; the
fitted agent stores float32 arrays.

**Data.** The agents need the feature map of the data's environment, so they train only on
datasets of the ``linear-mdp`` and ``american-put`` environments (``offreg/linear-mdp-v0``,
``offreg/american-put-v0``; see :mod:`offreg.envs.r2pvi_data`), whose observations carry the
0-based step ``h`` and whose actions are action indices. :attr:`LinearValueIterationAgent.requires_env`
lists them; any other dataset raises :class:`~offreg.errors.EnvironmentError_`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents import r2pvi_duals as duals
from offreg.agents.base import AgentConfig
from offreg.envs import american_put, linear_mdp
from offreg.errors import ConfigError, DatasetError, EnvironmentError_
from offreg.types import Metrics, PRNGKey, Transitions

PAPER = "Tang, Liu & Xu. Robust Offline RL with Linearly Structured f-Divergence Regularization. ICML 2025"
SUPPORTED_ENVS = ("linear-mdp", "american-put")


# ================================================================================================
# configs
# ================================================================================================
@dataclasses.dataclass(frozen=True)
class LinearVIConfig(AgentConfig):
    """Shared fields of the linear pessimistic value-iteration agents (R2PVI, PEVI, DRPVI, DRVI-L).

    Attributes:
      beta: pessimism coefficient beta (linear MDP 1.0, option 0.1 in the paper's experiments).
      gamma: ridge coefficient gamma of ``Lambda_h`` (linear MDP 0.1, option 1.0). The official
        ``main.py`` calls it ``gamma`` too but passes it to the classes' ``lam`` argument.
      bonus: ``code`` (``beta sqrt(sum phi_i^2 Lambda^-1_ii)``), ``paper`` (``beta sum phi_i
        sqrt(Lambda^-1_ii)``) or ``elliptical`` (``beta ||phi||_{Lambda^-1}``).
      clip_at_zero: floor the truncated Q at 0 (``min{., H-h+1}^+``); the official code does not.
      feature_dim: number of hat features for ``american-put`` (0: the dataset's metadata, 30).
    """

    sweepable: ClassVar[tuple[str, ...]] = ("beta", "gamma")

    beta: float = 1.0
    gamma: float = 0.1
    bonus: Literal["code", "paper", "elliptical"] = "code"
    clip_at_zero: bool = False
    feature_dim: int = 0
    normalize_observations: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0:
            raise ConfigError(f"{type(self).__name__}.beta must be >= 0, got {self.beta}")
        if self.gamma <= 0:
            raise ConfigError(f"{type(self).__name__}.gamma (ridge) must be > 0, got {self.gamma}")
        if self.feature_dim < 0:
            raise ConfigError(f"{type(self).__name__}.feature_dim must be >= 0, got {self.feature_dim}")
        if self.normalize_observations:
            raise ConfigError(
                f"{type(self).__name__}.normalize_observations must be False: the feature map reads raw "
                "observations (state, step)"
            )


@dataclasses.dataclass(frozen=True)
class R2PVIConfig(LinearVIConfig):
    """R2PVI (Tang, Liu & Xu, ICML 2025): ``w_{h,i} = inf_mu E_mu V_{h+1} + lambda D_f(mu || mu_{h,i})``.

    Attributes:
      divergence: ``tv``, ``kl`` or ``chi2``.
      lam: regularizer lambda > 0 (TV also allows 0); larger lambda = less robust. Paper: 0.1.
    """

    sweepable: ClassVar[tuple[str, ...]] = ("lam", "beta", "gamma")

    divergence: Literal["tv", "kl", "chi2"] = "tv"
    lam: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lam < 0 or (self.lam == 0 and self.divergence != "tv"):
            raise ConfigError(
                f"{type(self).__name__}.lam must be > 0 for divergence {self.divergence!r} (>= 0 for tv), "
                f"got {self.lam}"
            )


@dataclasses.dataclass(frozen=True)
class R2PVIKLConfig(R2PVIConfig):
    """R2PVI with the KL divergence: ``w_{h,i} = -lambda log E_{mu_{h,i}} exp(-V_{h+1} / lambda)``."""

    divergence: Literal["tv", "kl", "chi2"] = "kl"


@dataclasses.dataclass(frozen=True)
class R2PVIChi2Config(R2PVIConfig):
    """R2PVI with chi-square: ``w_{h,i} = sup_alpha E[V]_alpha - Var([V]_alpha) / (4 lambda)``, solved exactly."""

    divergence: Literal["tv", "kl", "chi2"] = "chi2"


@dataclasses.dataclass(frozen=True)
class PEVIConfig(LinearVIConfig):
    """PEVI (Jin, Yang & Wang 2021): ``w_h = Lambda_h^{-1} sum phi (r + V_{h+1})``, ``Gamma = beta ||phi||_{L^-1}``."""

    bonus: Literal["code", "paper", "elliptical"] = "elliptical"


@dataclasses.dataclass(frozen=True)
class DRPVIConfig(LinearVIConfig):
    """DRPVI (Liu & Xu 2024): d-rectangular TV ball, ``nu_{h,i} = max_alpha E[V]_alpha - rho (alpha - min V)``.

    Attributes:
      rho: uncertainty radius rho >= 0.
      rho_coordinates: 0-based feature coordinates that get ``rho`` (empty: all; the others get 0).
        The official linear-MDP runs perturb coordinate 3 (the paper's 4th) only.
      rho_steps: 0-based steps that get ``rho`` (empty: all). Official linear MDP: ``(0,)``.
      subtract_min: use the exact dual ``- rho (alpha - min V)``; the official code drops ``min V``.
    """

    sweepable: ClassVar[tuple[str, ...]] = ("rho", "beta", "gamma")

    rho: float = 0.1
    rho_coordinates: tuple[int, ...] = ()
    rho_steps: tuple[int, ...] = ()
    subtract_min: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rho < 0:
            raise ConfigError(f"{type(self).__name__}.rho must be >= 0, got {self.rho}")


@dataclasses.dataclass(frozen=True)
class DRVILConfig(DRPVIConfig):
    """DRVI-L (Ma et al. 2022): d-rectangular KL ball, ``nu_{h,i} = max_a -a log E exp(-V/a) - a rho``."""


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


def model_spec_for(info: Any, config: LinearVIConfig) -> ModelSpec:
    """The :class:`ModelSpec` of a dataset (``DatasetInfo``), from its env id and generation metadata.

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
# the backward induction
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


class Coefficients(NamedTuple):
    """The swept coefficients of a fit (arrays, so a fit can be vmapped over them).

    Attributes:
      beta: pessimism beta; gamma: ridge gamma; lam: regularizer lambda (R2PVI);
      rho: ``[H, d]`` radii (DRPVI, DRVI-L).
    """

    beta: jax.Array
    gamma: jax.Array
    lam: jax.Array
    rho: jax.Array


@functools.partial(jax.jit, static_argnames=("method", "bonus", "clip_at_zero", "subtract_min"))
def backward_induction(data: StepData, theta: jax.Array, coefs: Coefficients, *, method: str, bonus: str = "code",
                       clip_at_zero: bool = False, subtract_min: bool = False) -> tuple[jax.Array, jax.Array]:
    """Fit R2PVI / PEVI / DRPVI / DRVI-L by backward induction over ``h = H..1``. Pure and jitted.

    Args:
      data: :class:`StepData` with leading axis ``H``.
      theta: ``[H, d]`` known reward parameters (unused by PEVI).
      coefs: :class:`Coefficients`.
      method: ``r2pvi-tv``, ``r2pvi-kl``, ``r2pvi-chi2``, ``pevi``, ``drpvi`` or ``drvi-l``.
      bonus: bonus form (see :func:`bonus_fn`).
      clip_at_zero: floor Q at 0.
      subtract_min: DRPVI's exact dual (see :func:`offreg.agents.r2pvi_duals.tv_constrained_dual`).

    Returns:
      ``w [H, d]`` (``theta_h + w_h`` for the robust methods) and ``Lambda^{-1} [H, d, d]``:
      ``Q_h(s,a) = min{phi^T w[h] - Gamma_h(phi), H - h}`` with 0-based ``h``.
    """
    horizon, _, d = data.phi.shape
    dtype = data.phi.dtype
    eye = jnp.eye(d, dtype=dtype)
    H = jnp.asarray(horizon, dtype)

    def coordinate_update(M, y, mask, h):
        if method == "r2pvi-tv":
            return duals.tv_dual(M, y, mask, coefs.lam)
        if method == "r2pvi-kl":
            return duals.kl_dual(M, y, mask, coefs.lam, H)
        if method == "r2pvi-chi2":
            return duals.chi2_dual(M, y, mask, coefs.lam, H)
        if method == "drpvi":
            return duals.tv_constrained_dual(M, y, mask, coefs.rho[h], H, subtract_min)
        if method == "drvi-l":
            return duals.kl_constrained_dual(M, y, mask, coefs.rho[h], H)
        raise ConfigError(f"unknown method {method!r}")

    def step(carry, h):
        w_next, linv_next = carry
        # --- targets: V_{h+1}(s') = max_a Q_{h+1}(s', a); V_{H+1} = 0 ---
        q_next = truncated_q(data.next_phi[h], w_next, linv_next, coefs.beta, H - h - 1, data.next_known[h],
                             data.next_known_value[h], bonus, clip_at_zero)
        last = h == horizon - 1
        y = jnp.where(last, 0.0, q_next.max(-1) * data.next_live[h])
        # --- ridge regression: Lambda_h and M = Lambda_h^{-1} Phi_h^T ---
        phi, mask = data.phi[h], data.mask[h]
        lam_h = phi.T @ phi + coefs.gamma * eye
        chol = jax.scipy.linalg.cho_factor(lam_h, lower=True)
        linv = jax.scipy.linalg.cho_solve(chol, eye)
        M = jax.scipy.linalg.cho_solve(chol, phi.T)
        # --- per-coordinate update ---
        if method == "pevi":
            w = M @ (data.rewards[h] + y)
        else:
            w = theta[h] + jnp.where(last, 0.0, coordinate_update(M, y, mask, h))
        return (w, linv), (w, linv)

    init = (jnp.zeros(d, dtype), jnp.zeros((d, d), dtype))
    _, (w, linv) = jax.lax.scan(step, init, jnp.arange(horizon)[::-1])
    return w[::-1], linv[::-1]


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


def method_of(config: LinearVIConfig) -> str:
    if isinstance(config, R2PVIConfig):
        return f"r2pvi-{config.divergence}"
    if isinstance(config, DRVILConfig):
        return "drvi-l"
    if isinstance(config, DRPVIConfig):
        return "drpvi"
    if isinstance(config, PEVIConfig):
        return "pevi"
    raise ConfigError(f"no linear value-iteration method for config {type(config).__name__}")


def coefficients_of(config: LinearVIConfig, horizon: int, dim: int, dtype: Any = jnp.float32) -> Coefficients:
    """The :class:`Coefficients` of a config (``rho`` expanded to ``[H, d]`` over its steps/coordinates)."""
    rho = np.zeros((horizon, dim))
    if isinstance(config, DRPVIConfig):
        steps = list(config.rho_steps) or list(range(horizon))
        coords = list(config.rho_coordinates) or list(range(dim))
        for s in steps:
            if not 0 <= s < horizon:
                raise ConfigError(f"rho_steps entry {s} is outside [0, {horizon})")
        for c in coords:
            if not 0 <= c < dim:
                raise ConfigError(f"rho_coordinates entry {c} is outside [0, {dim})")
        rho[np.ix_(steps, coords)] = config.rho
    lam = config.lam if isinstance(config, R2PVIConfig) else 1.0
    return Coefficients(jnp.asarray(config.beta, dtype), jnp.asarray(config.gamma, dtype), jnp.asarray(lam, dtype),
                        jnp.asarray(rho, dtype))


# ================================================================================================
# the agent
# ================================================================================================
class LinearValueIterationAgent(flax.struct.PyTreeNode):
    """A fitted linear pessimistic value-iteration policy (R2PVI, PEVI, DRPVI or DRVI-L).

    Attributes:
      w: float32 ``[H, d]``, the per-step weights (``theta_h + w_h`` for the robust methods).
      lambda_inv: float32 ``[H, d, d]``, ``Lambda_h^{-1}`` for the bonus.
      beta: float32 scalar, the pessimism coefficient.
      config: the config (static).
      model: the environment's :class:`ModelSpec` (static).
    """

    w: jax.Array
    lambda_inv: jax.Array
    beta: jax.Array
    config: LinearVIConfig = flax.struct.field(pytree_node=False)
    model: ModelSpec = flax.struct.field(pytree_node=False)

    gradient_free: ClassVar[bool] = True
    requires_env: ClassVar[tuple[str, ...]] = SUPPORTED_ENVS
    """Environments whose datasets these agents can fit (their feature maps are known)."""

    @classmethod
    def create(
        cls, config: LinearVIConfig, dataset: Any, key: PRNGKey, context: Any = ()
    ) -> LinearValueIterationAgent:
        """Fit by one backward induction on ``dataset`` (``key`` is unused: the fit is deterministic).

        Raises:
          EnvironmentError_: the dataset is not from ``linear-mdp`` or ``american-put``.
          DatasetError: the dataset's steps or actions are malformed.
        """
        del key
        spec = model_spec_for(dataset.info, config)
        model = learner_model(spec)
        with jax.enable_x64(True):
            data = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64) if x.dtype != bool else x,
                                          group_by_step(dataset.transitions, model, dataset.info.name))
            coefs = coefficients_of(config, model.horizon, model.dim, jnp.float64)
            w, linv = backward_induction(data, jnp.asarray(model.theta, jnp.float64), coefs, method=method_of(config),
                                         bonus=config.bonus, clip_at_zero=config.clip_at_zero,
                                         subtract_min=getattr(config, "subtract_min", False))
            w, linv = np.asarray(w, np.float32), np.asarray(linv, np.float32)
        return cls(jnp.asarray(w), jnp.asarray(linv), jnp.float32(config.beta), config, spec)

    @classmethod
    def template(cls, config: LinearVIConfig, info: Any) -> LinearValueIterationAgent:
        """An unfitted agent (zero weights) with the tree structure ``create`` returns for a dataset
        described by ``info``, for restoring a checkpoint without the training data."""
        spec = model_spec_for(info, config)
        model = learner_model(spec)
        h, d = model.horizon, model.dim
        return cls(jnp.zeros((h, d), jnp.float32), jnp.zeros((h, d, d), jnp.float32), jnp.float32(config.beta),
                   config, spec)

    def update(
        self, batch: Transitions, key: PRNGKey, context: Any = ()
    ) -> tuple[LinearValueIterationAgent, Metrics]:
        """No-op: the agent is fitted in ``create`` (``gradient_free``)."""
        return self, {}

    def q_values(self, observations: jax.Array) -> jax.Array:
        """``Q_h(s, a)`` for every action: ``[B, A]``."""
        obs = jnp.atleast_2d(jnp.asarray(observations, jnp.float32))
        return q_values(learner_model(self.model), self.w, self.lambda_inv, self.beta, obs, self.config.bonus,
                        self.config.clip_at_zero)

    def act(self, observations: jax.Array) -> jax.Array:
        """Greedy action indices, int32 ``[B]`` (a scalar for one unbatched observation)."""
        obs = jnp.asarray(observations, jnp.float32)
        actions = jnp.argmax(self.q_values(obs), -1).astype(jnp.int32)
        return actions[0] if obs.ndim == 1 else actions

