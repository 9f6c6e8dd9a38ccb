"""O-DICE's value objective and its three gradients (Mao, Xu, Zhang, Zhan, ICLR 2024).

The V-DICE objective with the Pearson chi-square ``f(x) = (x - 1)^2``::

    L(theta) = (1 - lambda) E_D[V(s)] + lambda E_D[f*(r + gamma (1 - d) V(s') - V(s))]

and the update rules of the paper's ablation: ``semi`` (S-DICE, semi-gradient), ``true`` (T-DICE,
full gradient) and ``orthogonal`` (O-DICE: the backward gradient projected orthogonally to the
forward one). :mod:`offreg.agents.odice` is the agent that takes these steps.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp

from offreg.errors import ConfigError
from offreg.types import Metrics, Transitions

UPDATE_RULES = ("orthogonal", "true", "semi")


def f_star(y: jax.Array) -> jax.Array:
    """Convex conjugate of the Pearson chi-square ``f(x) = (x - 1)^2``, as the official code writes it.

    ``w = max(y / 2 + 1, 0)``, ``f*(y) = y w - (w - 1)^2``: ``y + y^2 / 4`` for ``y >= -2`` and ``-1``
    below, with derivative ``max(0, 1 + y / 2)``. Elementwise.
    """
    w = jnp.maximum(y / 2.0 + 1.0, 0.0)
    return y * w - (w - 1.0) ** 2


def bc_weight(delta_f: jax.Array, weight_max: float) -> jax.Array:
    """The weighted-BC weight ``min(max(0, delta_f), weight_max)`` (official code; not ``f*'``).

    Args:
      delta_f: forward residuals ``[n_heads, B]``.
      weight_max: the cap (100).

    Returns:
      ``[B]``: the mean over heads of the per-head weights, so that ``mean_B(w * nll)`` equals the
      code's ``mean_{heads x B}(w_head * nll)``.
    """
    return jnp.mean(jnp.clip(delta_f, 0.0, weight_max), axis=0)


def value_gradient(
    apply_fn: Any,
    params: Any,
    target_params: Any,
    batch: Transitions,
    lambda_: jax.Array,
    eta: jax.Array,
    discount: float,
    update_rule: str,
    projection_eps: float = 1e-10,
) -> tuple[Any, jax.Array, Metrics]:
    """The DICE value gradient of one update rule, and the forward residual for the policy.

    ``apply_fn(params, obs [B, obs]) -> [n_heads, B]``. Target values are the min over the target
    heads, ``[B]``, broadcast against the online ``[n_heads, B]``; every mean runs over
    ``n_heads * B`` entries. With ``m = 1 - d``:

    - forward residual ``delta_f = r + gamma m Vbar(s') - V(s)``, loss ``L_f = lambda mean f*(delta_f)``;
    - backward residual ``delta_b = r + gamma m V(s') - Vbar(s)``, ``L_b = lambda eta mean f*(delta_b)``;
    - ``L_v = (1 - lambda) mean V(s)``.

    ``semi``: ``g = grad(L_v + L_f)``. ``true``: ``grad`` of ``L_v + lambda mean f*(r + gamma m V(s') -
    V(s))`` through both values (no eta). ``orthogonal``: ``g = g_v + (1 - c) g_f + g_b`` with
    ``c = <g_f, g_b> / max(<g_f, g_f>, eps)`` over all parameters flattened together.

    The target is evaluated once on ``[s; s']``; the online V once on ``s`` and once on ``s'``.
    ``g_f`` and ``g_v`` are two VJPs of the one ``s`` pass, ``g_b`` a VJP of the ``s'`` pass, so
    O-DICE costs three backward passes of batch size B where S-DICE costs one.

    Returns:
      ``(g, delta_f [n_heads, B], metrics)``; ``delta_f`` uses the values before this update.

    Long because: the three update rules share one forward pass; the docstring states each one's maths.
    """
    obs, next_obs = batch.observations, batch.next_observations
    r, m = batch.rewards, 1.0 - batch.terminals
    n = obs.shape[0]
    tv = jnp.min(apply_fn(target_params, jnp.concatenate([obs, next_obs], axis=0)), axis=0)  # one target pass
    tv_s, tv_sp = tv[:n], tv[n:]
    v_s, vjp_s = jax.vjp(lambda p: apply_fn(p, obs), params)
    chex.assert_shape(v_s, (None, n))  # [n_heads, B]

    def forward_loss(v):
        return lambda_ * jnp.mean(f_star(r + discount * m * tv_sp - v))

    def v_loss(v):
        return (1.0 - lambda_) * jnp.mean(v)

    delta_f = r + discount * m * tv_sp - v_s
    l_f, ct_f = jax.value_and_grad(forward_loss)(v_s)
    l_v, ct_v = jax.value_and_grad(v_loss)(v_s)
    metrics: Metrics = {"forward_loss": l_f, "v_loss": l_v, "v_mean": jnp.mean(v_s), "delta_f_mean": jnp.mean(delta_f)}

    if update_rule == "semi":
        (g,) = vjp_s(ct_v + ct_f)
        metrics["value_loss"] = l_v + l_f
    elif update_rule == "true":
        v_sp, vjp_sp = jax.vjp(lambda p: apply_fn(p, next_obs), params)

        def true_loss(v, vp):
            return v_loss(v) + lambda_ * jnp.mean(f_star(r + discount * m * vp - v))

        l_t, (ct_s, ct_sp) = jax.value_and_grad(true_loss, argnums=(0, 1))(v_s, v_sp)
        g = _tree_add(vjp_s(ct_s)[0], vjp_sp(ct_sp)[0])
        metrics["value_loss"] = l_t
    elif update_rule == "orthogonal":
        v_sp, vjp_sp = jax.vjp(lambda p: apply_fn(p, next_obs), params)

        def backward_loss(vp):
            return lambda_ * eta * jnp.mean(f_star(r + discount * m * vp - tv_s))

        l_b, ct_b = jax.value_and_grad(backward_loss)(v_sp)
        (g_f,) = vjp_s(ct_f)
        (g_v,) = vjp_s(ct_v)
        (g_b,) = vjp_sp(ct_b)
        g, projection_metrics = _orthogonal(g_v, g_f, g_b, projection_eps)
        metrics.update(backward_loss=l_b, value_loss=l_v + l_f, **projection_metrics)
    else:
        raise ConfigError(f"update_rule must be one of {UPDATE_RULES}, got {update_rule!r}")
    return g, delta_f, metrics


def _orthogonal(g_v: Any, g_f: Any, g_b: Any, projection_eps: float) -> tuple[Any, Metrics]:
    """O-DICE's gradient ``g_v + (1 - c) g_f + g_b``, ``c = <g_f, g_b> / max(<g_f, g_f>, eps)``, and its metrics."""
    ff, fb = tree_vdot(g_f, g_f), tree_vdot(g_f, g_b)
    c = fb / jnp.maximum(ff, projection_eps)
    g = jax.tree_util.tree_map(lambda v, f, b: v + (1.0 - c) * f + b, g_v, g_f, g_b)
    norms = {"forward_grad_norm": jnp.sqrt(ff), "backward_grad_norm": jnp.sqrt(tree_vdot(g_b, g_b))}
    return g, {"parallel_coef": c, **norms}


def tree_vdot(a: Any, b: Any) -> jax.Array:
    """``<a, b>`` over every leaf of two matching pytrees, as if each were flattened to one vector."""
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: jnp.vdot(x, y), a, b))
    return sum(leaves, jnp.float32(0.0))


def _tree_add(a: Any, b: Any) -> Any:
    return jax.tree_util.tree_map(jnp.add, a, b)


