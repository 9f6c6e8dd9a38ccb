"""Shared pieces of the R2PVI experiments: vectorized collect -> fit -> exact evaluation pipelines,
result files and plots.

Protocol (see docs/r2pvi.md): every replication draws its own offline dataset with its own JAX key
(``PRNGKey(rep)``), fits by :func:`offreg.agents.r2pvi.backward_induction` in float64, and the
greedy policy is evaluated **exactly** in the perturbed test environment (dynamic programming over
the known model: the 5-state kernel of the linear MDP, the recombining price lattice of the
option). The paper averages 100 Monte-Carlo test episodes per replication instead; the exact value
is their expectation, so the spread reported here is the spread over datasets only.
Replications, coefficients and test perturbations are vmapped; everything runs in one process.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents import r2pvi as R
from offreg.agents import r2pvi_model as M
from offreg.atomic import atomic_write, atomic_write_text
from offreg.envs import american_put, linear_mdp
from offreg.provenance import versions

RESULTS = Path(__file__).resolve().parent / "results"


# --- linear MDP ----------------------------------------------------------------------------------
def lmdp_step_data(model: M.LinearModel, data: dict) -> M.StepData:
    """:class:`StepData` of trajectories from :func:`offreg.envs.linear_mdp.collect`."""
    states, actions, rewards = data["states"], data["actions"], data["rewards"]
    k = actions.shape[0]
    steps = jnp.broadcast_to(jnp.arange(linear_mdp.HORIZON + 1), states.shape)
    obs = linear_mdp.observation(states, steps).astype(jnp.float64)
    ones = jnp.ones((linear_mdp.HORIZON, k))
    return M.step_data(model, obs[:, :-1].swapaxes(0, 1), actions.T, rewards.T.astype(jnp.float64),
                       obs[:, 1:].swapaxes(0, 1), ones, ones)


def lmdp_policy(model: M.LinearModel, w, li, beta, bonus: str) -> jax.Array:
    """Greedy policy table ``[H, 5]`` of a fit."""
    s, h = jnp.meshgrid(jnp.arange(linear_mdp.NUM_STATES), jnp.arange(linear_mdp.HORIZON), indexing="ij")
    obs = linear_mdp.observation(s.reshape(-1), h.reshape(-1))
    return M.greedy_actions(model, w, li, beta, obs, bonus, False).reshape(linear_mdp.NUM_STATES, -1).T


def lmdp_returns(method: str, coefs: R.Coefficients, reps: int, qs: Sequence[float], delta: float = 0.3,
                 xi_norm: float = 0.2, n: int = 100, bonus: str = "code") -> np.ndarray:
    """Exact returns ``[reps, len(qs)]`` of the method fitted on ``reps`` datasets of ``n`` trajectories."""
    keys = jnp.stack([jax.random.PRNGKey(r) for r in range(reps)])
    fn = _lmdp_pipeline(method, bonus, n, delta, xi_norm)
    return np.asarray(fn(keys, coefs, jnp.asarray(qs, jnp.float64)))


@functools.cache
def _lmdp_pipeline(method: str, bonus: str, n: int, delta: float, xi_norm: float):
    """jit(vmap over keys) of collect -> fit -> exact returns; compiled once per static setting."""
    model = M.learner_model(M.ModelSpec("linear-mdp", (("delta", delta), ("xi_norm", xi_norm))))

    def one(key, coefs, qs):
        sd = lmdp_step_data(model, linear_mdp.collect(key, n, delta, xi_norm))
        w, li = R.backward_induction(sd, jnp.asarray(model.theta), coefs, method=method, bonus=bonus)
        pol = lmdp_policy(model, w, li, coefs.beta, bonus)
        return jax.vmap(lambda q: linear_mdp.policy_value(pol, delta, xi_norm, q))(qs)

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def coefs(beta: float, gamma: float, lam: float = 1.0, rho=0.0, horizon: int = 3, dim: int = 4) -> R.Coefficients:
    """float64 :class:`Coefficients` (``rho`` a scalar for all steps/coordinates, or an ``[H, d]`` array)."""
    f = lambda x: jnp.asarray(x, jnp.float64)
    return R.Coefficients(f(beta), f(gamma), f(lam), jnp.broadcast_to(f(rho), (horizon, dim)))


# --- American put option -------------------------------------------------------------------------
def option_step_data(model: M.LinearModel, prices: jax.Array) -> M.StepData:
    """:class:`StepData` of always-hold price paths ``[N, H+1]``."""
    n, h1 = prices.shape
    steps = jnp.broadcast_to(jnp.arange(h1), prices.shape).astype(prices.dtype)
    obs = jnp.stack([prices, steps], -1)
    zeros = jnp.zeros((h1 - 1, n), prices.dtype)
    ones = jnp.ones((h1 - 1, n))
    return M.step_data(model, obs[:, :-1].swapaxes(0, 1), zeros.astype(jnp.int32), zeros,
                       obs[:, 1:].swapaxes(0, 1), ones, ones)


def option_model(dim: int = 30) -> M.LinearModel:
    return M.learner_model(M.ModelSpec("american-put", (("feature_dim", float(dim)), ("horizon", 20.0),
                                                         ("strike", american_put.STRIKE))))


def option_returns(method: str, coefs: R.Coefficients, reps: int, ps: Sequence[float], dim: int = 30,
                   n: int = 100, bonus: str = "code", test_seed: int = 1) -> np.ndarray:
    """Exact returns ``[reps, len(ps)]``: replication ``r`` trains on paths from ``s_1`` of seed ``r``
    (the official training environments) and is tested from ``s_1`` of seed ``test_seed``."""
    keys = jnp.stack([jax.random.PRNGKey(r) for r in range(reps)])
    s1s = jnp.asarray([american_put.initial_price(r) for r in range(reps)], jnp.float64)
    fn = _option_pipeline(method, bonus, n, dim, test_seed)
    return np.asarray(fn(keys, s1s, coefs, jnp.asarray(ps, jnp.float64)))


@functools.cache
def _option_pipeline(method: str, bonus: str, n: int, dim: int, test_seed: int):
    model = option_model(dim)
    s_test = american_put.initial_price(test_seed)
    lattice = american_put.lattice_prices(s_test)
    hgrid = jnp.broadcast_to(jnp.arange(american_put.HORIZON)[:, None], lattice.shape)
    obs = jnp.stack([lattice, hgrid], -1).reshape(-1, 2)

    def one(key, s1, coefs, ps):
        sd = option_step_data(model, american_put.collect(key, n, s1))
        w, li = R.backward_induction(sd, jnp.asarray(model.theta), coefs, method=method, bonus=bonus)
        exercise = M.greedy_actions(model, w, li, coefs.beta, obs, bonus, False).reshape(lattice.shape) == 1
        return jax.vmap(lambda p: american_put.policy_value(exercise, s_test, p))(ps)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))


# --- results -------------------------------------------------------------------------------------
def command() -> str:
    return " ".join(["python", os.path.relpath(sys.argv[0], Path(__file__).resolve().parents[2])] + sys.argv[1:])


def environment() -> dict[str, Any]:
    return {**versions(("jax", "numpy")), "machine": platform.machine(), "cpu_count": os.cpu_count()}


def write_json(name: str, payload: dict[str, Any], out: Path = RESULTS) -> Path:
    """Write ``<out>/<name>.json`` atomically, with the command and the software versions."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command(), "environment": environment(), **payload}
    path = out / f"{name}.json"
    atomic_write_text(path, json.dumps(payload, indent=2, default=_jsonable))
    return path


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray | jax.Array):
        return np.asarray(x).tolist()
    if isinstance(x, np.floating | np.integer):
        return x.item()
    raise TypeError(type(x))


def save_figure(fig, name: str, out: Path = RESULTS) -> Path:
    return atomic_write(out / f"{name}.png", lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight"), suffix=".png")


def plot_curves(ax, x, curves: dict[str, np.ndarray], band: bool = True) -> None:
    """Mean over replications (axis 0) with a +-1 std band."""
    for label, values in curves.items():
        values = np.asarray(values)
        mean, std = values.mean(0), values.std(0)
        line, = ax.plot(x, mean, marker="o", ms=3, label=label)
        if band:
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)


def summary(curves: dict[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    return {k: {"mean": np.asarray(v).mean(0).tolist(), "std": np.asarray(v).std(0).tolist(),
                "per_replication": np.asarray(v).tolist()} for k, v in curves.items()}


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
