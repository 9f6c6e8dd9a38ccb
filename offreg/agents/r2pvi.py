"""R2PVI: robust regularized pessimistic value iteration (Tang, Liu & Xu, ICML 2025, arXiv 2411.18612),
and the baselines of its experiments: PEVI, DRPVI and DRVI-L.

Setting: a d-rectangular linear MDP, ``P_h(.|s,a) = sum_i phi_i(s,a) mu_{h,i}``, ``r_h = phi^T theta_h``.
The robust *regularized* Q-function stays linear, ``Q_h = phi^T (theta_h + w_h)`` with

    w_{h,i} = inf_mu  E_mu V_{h+1} + lambda D_f(mu || mu_{h,i}),

a scalar dual problem per coordinate (:mod:`offreg.agents.r2pvi_duals`; the features, the per-step
data and the truncated Q-function are :mod:`offreg.agents.r2pvi_model`). R2PVI is one backward
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
from typing import Any, ClassVar, Literal, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents import r2pvi_duals as duals
from offreg.agents import r2pvi_model as linear
from offreg.agents.base import NON_NEGATIVE, POSITIVE, AgentConfig, Rule
from offreg.errors import ConfigError
from offreg.types import Metrics, PRNGKey, Transitions

PAPER = "Tang, Liu & Xu. Robust Offline RL with Linearly Structured f-Divergence Regularization. ICML 2025"


# --- configs ----------------------------------------------------------------------------------------
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
    checks = {
        "beta": NON_NEGATIVE, "feature_dim": NON_NEGATIVE, "gamma": Rule("positive (a ridge coefficient)", POSITIVE.ok),
        "normalize_observations": Rule("False: the feature map reads raw observations (state, step)", lambda v: not v),
    }

    beta: float = 1.0
    gamma: float = 0.1
    bonus: Literal["code", "paper", "elliptical"] = "code"
    clip_at_zero: bool = False
    feature_dim: int = 0
    normalize_observations: bool = False


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
        tv = self.divergence == "tv"
        self.require(Rule(f"> 0 for divergence {self.divergence!r} (>= 0 for tv)", lambda v: v > 0 or tv and v == 0),
                     "lam")


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
    checks = {"rho": NON_NEGATIVE}

    rho: float = 0.1
    rho_coordinates: tuple[int, ...] = ()
    rho_steps: tuple[int, ...] = ()
    subtract_min: bool = False


@dataclasses.dataclass(frozen=True)
class DRVILConfig(DRPVIConfig):
    """DRVI-L (Ma et al. 2022): d-rectangular KL ball, ``nu_{h,i} = max_a -a log E exp(-V/a) - a rho``."""


# --- the backward induction -------------------------------------------------------------------------
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
def backward_induction(data: linear.StepData, theta: jax.Array, coefs: Coefficients, *, method: str,
                       bonus: str = "code", clip_at_zero: bool = False, subtract_min: bool = False
                       ) -> tuple[jax.Array, jax.Array]:
    """Fit R2PVI / PEVI / DRPVI / DRVI-L by backward induction over ``h = H..1``. Pure and jitted.

    Args:
      data: :class:`~offreg.agents.r2pvi_model.StepData` with leading axis ``H``.
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
        q_next = linear.truncated_q(data.next_phi[h], w_next, linv_next, coefs.beta, H - h - 1, data.next_known[h],
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


# --- the agent --------------------------------------------------------------------------------------
class LinearValueIterationAgent(flax.struct.PyTreeNode):
    """A fitted linear pessimistic value-iteration policy (R2PVI, PEVI, DRPVI or DRVI-L).

    Attributes:
      w: float32 ``[H, d]``, the per-step weights (``theta_h + w_h`` for the robust methods).
      lambda_inv: float32 ``[H, d, d]``, ``Lambda_h^{-1}`` for the bonus.
      beta: float32 scalar, the pessimism coefficient.
      config: the config (static).
      model: the environment's :class:`~offreg.agents.r2pvi_model.ModelSpec` (static).
    """

    w: jax.Array
    lambda_inv: jax.Array
    beta: jax.Array
    config: LinearVIConfig = flax.struct.field(pytree_node=False)
    model: linear.ModelSpec = flax.struct.field(pytree_node=False)

    gradient_free: ClassVar[bool] = True
    requires_env: ClassVar[tuple[str, ...]] = linear.SUPPORTED_ENVS
    """Environments whose datasets these agents can fit (their feature maps are known)."""

    @classmethod
    def create(cls, config: LinearVIConfig, dataset: Any, key: PRNGKey, context: Any = ()
               ) -> LinearValueIterationAgent:
        """Fit by one backward induction on ``dataset`` (``key`` is unused: the fit is deterministic).

        Raises:
          EnvironmentError_: the dataset is not from ``linear-mdp`` or ``american-put``.
          DatasetError: the dataset's steps or actions are malformed.
        """
        del key
        spec = linear.model_spec_for(dataset.info, config)
        model = linear.learner_model(spec)
        with jax.enable_x64(True):
            data = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64) if x.dtype != bool else x,
                                          linear.group_by_step(dataset.transitions, model, dataset.info.name))
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
        spec = linear.model_spec_for(info, config)
        model = linear.learner_model(spec)
        h, d = model.horizon, model.dim
        return cls(jnp.zeros((h, d), jnp.float32), jnp.zeros((h, d, d), jnp.float32), jnp.float32(config.beta),
                   config, spec)

    def update(self, batch: Transitions, key: PRNGKey, context: Any = ()) -> tuple[LinearValueIterationAgent, Metrics]:
        """No-op: the agent is fitted in ``create`` (``gradient_free``)."""
        return self, {}

    def q_values(self, observations: jax.Array) -> jax.Array:
        """``Q_h(s, a)`` for every action: ``[B, A]``."""
        obs, cfg = jnp.atleast_2d(jnp.asarray(observations, jnp.float32)), self.config
        return linear.q_values(linear.learner_model(self.model), self.w, self.lambda_inv, self.beta, obs, cfg.bonus,
                               cfg.clip_at_zero)

    def act(self, observations: jax.Array) -> jax.Array:
        """Greedy action indices, int32 ``[B]`` (a scalar for one unbatched observation)."""
        obs = jnp.asarray(observations, jnp.float32)
        actions = jnp.argmax(self.q_values(obs), -1).astype(jnp.int32)
        return actions[0] if obs.ndim == 1 else actions

