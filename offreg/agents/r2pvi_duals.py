"""Per-coordinate dual problems of R2PVI and its baselines, solved exactly and vectorized.

Every function here takes a **weight matrix** ``M`` of shape ``[d, K]`` and next-state values
``y`` of shape ``[K]`` and treats ``E_i[g(V)] ~= (M @ g(y))_i``:

- in R2PVI ``M = Lambda_h^{-1} Phi_h^T`` (ridge regression on the features: one regression per
  transform gives all ``d`` coordinates), so the rows need not be probabilities;
- with ``M = p[None, :]`` for a probability vector ``p`` over states and ``y = V`` the functions
  compute the population duals, which is how the tests check them against a direct numerical
  solution of the primal problems.

``mask`` (``[K]``, 1 = real sample) marks padding; padded columns of ``M`` must be zero.

Duals (``[V]_alpha := min(V, alpha)``, ``D_TV = (1/2)|mu - mu0|_1``, ``D_KL``,
``D_chi2 = E_mu0 (dmu/dmu0 - 1)^2``), for the regularized problem
``inf_mu E_mu V + lambda D(mu || mu0)``:

- TV: ``E_mu0 [V]_{min V + lambda}`` (closed form; ``min V`` over the samples, as the official code);
- KL: ``-lambda log E_mu0 exp(-V / lambda)`` (closed form, computed stably, see :func:`kl_dual`);
- chi2: ``sup_{alpha in [0, H]} E_mu0 [V]_alpha - Var_mu0([V]_alpha) / (4 lambda)`` (exact
  piecewise-quadratic maximisation, :func:`chi2_dual`).

And for the constrained (DRMDP) baselines:

- DRPVI (TV ball of radius rho): ``max_{alpha in [0, H]} E_mu0 [V]_alpha - rho (alpha - min V)``
  (the official code drops ``min V``; ``subtract_min=False`` reproduces it);
- DRVI-L (KL ball of radius rho): ``max_{alpha in (0, H]} -alpha log E_mu0 exp(-V/alpha) - alpha rho``.

All functions are pure and jit/vmap-safe. Use float64 (``jax.enable_x64``) for accuracy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _masked_min(y: Array, mask: Array) -> Array:
    return jnp.min(jnp.where(mask > 0, y, jnp.inf))


def tv_dual(M: Array, y: Array, mask: Array, lam: Array) -> Array:
    """R2PVI-TV: ``z_i = (M [y]_alpha)_i`` with ``alpha = min_tau y_tau + lambda``.

    Args:
      M: ``[d, K]`` weights; y: ``[K]`` values; mask: ``[K]``; lam: regularizer lambda >= 0.

    Returns:
      ``[d]``.
    """
    alpha = _masked_min(y, mask) + lam
    return M @ jnp.minimum(y, alpha)


def kl_dual(M: Array, y: Array, mask: Array, lam: Array, horizon: float | Array) -> Array:
    """R2PVI-KL: ``-lambda log max(M exp(-y / lambda), exp(-H / lambda))``, computed stably.

    With ``m_i`` the smallest value among the samples that coordinate ``i`` weighs (``M_{i,tau} != 0``),
    the identity ``-lambda log max(z_i, e^{-H/lambda}) = min(m_i - lambda log sum_tau M_{i,tau}
    e^{-(y_tau - m_i)/lambda}, H)`` holds exactly and nothing underflows for small lambda: the sum
    contains a term ``M_{i,tau} e^0``. The floor ``e^{-H/lambda}`` of the official code caps the result
    at ``H`` where the ridge estimate is <= 0 (or the coordinate has no data).

    Returns:
      ``[d]``.
    """
    weighed = (M != 0) & (mask[None, :] > 0)
    m = jnp.min(jnp.where(weighed, y[None, :], jnp.inf), axis=1)
    m = jnp.where(jnp.isfinite(m), m, horizon)
    shifted = jnp.where(weighed, y[None, :] - m[:, None], 0.0)
    z = jnp.sum(jnp.where(weighed, M * jnp.exp(-shifted / lam), 0.0), axis=1)
    tiny = jnp.finfo(M.dtype).tiny
    value = jnp.where(z > 0, m - lam * jnp.log(jnp.maximum(z, tiny)), horizon)  # z <= 0: the floor
    return jnp.minimum(value, horizon)


def truncation_sweep(
    M: Array, y: Array, mask: Array, horizon: float | Array
) -> tuple[Array, Array, Array, Array, Array]:
    """Piecewise form of ``alpha -> M [y]_alpha`` and ``alpha -> M [y]_alpha^2`` on ``[0, H]``.

    Sort the breakpoints ``t_1 <= ... <= t_K`` (the values clipped to ``[0, H]``) and add
    ``t_0 = 0`` and ``t_{K+1} = H``. On interval ``k`` (``alpha in [t_k, t_{k+1}]``, k = 0..K) the
    samples sorted before position ``k`` keep their value and the others are truncated to alpha,
    so with cumulative sums over the sorted samples::

        M [y]_alpha   = A_k + B_k alpha
        M [y]_alpha^2 = C_k + B_k alpha^2

    A negative sample keeps its value for every ``alpha >= 0``, so the ``n`` intervals before the
    first sample >= 0 lie below 0: clipped to ``[0, 0]``, they take the coefficients of interval ``n``
    (which starts at 0), not ones that would truncate a negative sample to alpha.

    Args:
      M: ``[d, K]``; y: ``[K]``; mask: ``[K]``; horizon: H.

    Returns:
      ``(lo [K+1], hi [K+1], A [K+1, d], B [K+1, d], C [K+1, d])``: interval ends and coefficients.
    """
    y_used = jnp.where(mask > 0, jnp.minimum(y, horizon), horizon)  # [y]_alpha = y for y < 0 <= alpha
    order = jnp.argsort(y_used)
    ys = y_used[order]
    Ms = M[:, order].T  # [K, d]
    zero = jnp.zeros((1, M.shape[0]), M.dtype)
    A = jnp.concatenate([zero, jnp.cumsum(Ms * ys[:, None], 0)])
    C = jnp.concatenate([zero, jnp.cumsum(Ms * ys[:, None] ** 2, 0)])
    total = Ms.sum(0, keepdims=True)
    B = total - jnp.concatenate([zero, jnp.cumsum(Ms, 0)])
    first = jnp.maximum(jnp.arange(ys.shape[0] + 1), jnp.sum(ys < 0))  # intervals below 0 -> the one at 0
    A, B, C = A[first], B[first], C[first]
    t = jnp.clip(ys, 0.0, horizon)
    lo = jnp.concatenate([jnp.zeros(1, t.dtype), t])
    hi = jnp.concatenate([t, jnp.full((1,), horizon, t.dtype)])
    return lo, hi, A, B, C


def chi2_objective(M: Array, y: Array, alpha: Array, lam: Array) -> Array:
    """``G_i(alpha) = (M [y]_alpha)_i - ((M [y]_alpha^2)_i - (M [y]_alpha)_i^2) / (4 lambda)``.

    Direct evaluation (``alpha`` scalar), used by the tests and the grid-search reference.
    """
    trunc = jnp.minimum(y, alpha)
    z, z2 = M @ trunc, M @ trunc**2
    return z - (z2 - z**2) / (4.0 * lam)


def chi2_dual(M: Array, y: Array, mask: Array, lam: Array, horizon: float | Array,
              return_alpha: bool = False) -> Array | tuple[Array, Array]:
    """R2PVI-chi2: ``sup_{alpha in [0, H]} G_i(alpha)`` for every coordinate, exactly.

    On each interval of :func:`truncation_sweep`, ``G_i`` is the quadratic
    ``A + B a - (C + B a^2 - (A + B a)^2) / (4 lambda)``; its maximum on the interval is at an end
    or at the vertex clipped to the interval (whether it is concave or not, as the ridge weights
    ``B`` need not lie in [0, 1]). The best interval wins. Cost O(K log K + K d); no iterative search.

    Returns:
      ``[d]`` (and the maximising ``alpha [d]`` if ``return_alpha``).
    """
    lo, hi, A, B, C = truncation_sweep(M, y, mask, horizon)
    c4 = 4.0 * lam
    # G(a) = q2 a^2 + q1 a + q0
    q2 = (B**2 - B) / c4
    q1 = B + 2.0 * A * B / c4
    q0 = A - (C - A**2) / c4
    safe_q2 = jnp.where(q2 == 0, 1.0, q2)
    vertex = jnp.where(q2 == 0, lo[:, None], -q1 / (2.0 * safe_q2))
    cands = jnp.stack([
        jnp.broadcast_to(lo[:, None], A.shape),
        jnp.broadcast_to(hi[:, None], A.shape),
        jnp.clip(vertex, lo[:, None], hi[:, None]),
    ])  # [3, K+1, d]
    values = q2 * cands**2 + q1 * cands + q0
    values = values.reshape(-1, A.shape[1])
    best = jnp.argmax(values, 0)
    w = jnp.take_along_axis(values, best[None], 0)[0]
    if return_alpha:
        return w, jnp.take_along_axis(cands.reshape(-1, A.shape[1]), best[None], 0)[0]
    return w


def tv_constrained_dual(M: Array, y: Array, mask: Array, rho: Array, horizon: float | Array,
                        subtract_min: bool = False) -> Array:
    """DRPVI (TV ball of radius ``rho``): ``max_{alpha in [0, H]} (M [y]_alpha)_i - rho_i (alpha - m)``.

    ``m = min_tau y_tau`` if ``subtract_min`` (the exact dual), else 0 (the official code's
    ``-z[i] + rho*alpha``, valid when ``min V = 0``). Piecewise linear in alpha, so the maximum is
    at an interval end of :func:`truncation_sweep`, evaluated exactly.

    Args:
      rho: scalar or ``[d]`` radii.

    Returns:
      ``[d]``.
    """
    lo, hi, A, B, _ = truncation_sweep(M, y, mask, horizon)
    m = _masked_min(y, mask) if subtract_min else 0.0
    rho = jnp.broadcast_to(rho, (M.shape[0],))
    values = jnp.concatenate([A + B * lo[:, None] - rho * lo[:, None], A + B * hi[:, None] - rho * hi[:, None]])
    return values.max(0) + rho * m


def kl_constrained_objective(M: Array, y: Array, alpha: Array, rho: Array, log_floor: float = 1e-6) -> Array:
    """DRVI-L's objective ``-alpha log(max(M (e^{-y/alpha} - 1) + 1, 1e-6)) - alpha rho`` (Ma et al. 2022).

    ``alpha`` is a scalar or ``[d]`` (one per coordinate). The ``-1 ... +1`` form is the official
    code's; with ridge weights it differs from ``M e^{-y/alpha}``. The exponent is capped at 700 so
    that negative values of ``y`` cannot overflow.
    """
    alpha = jnp.asarray(alpha)
    ex = jnp.exp(jnp.minimum(-y[None, :] / jnp.reshape(alpha, (-1, 1)), 700.0)) - 1.0  # [d or 1, K]
    z = jnp.sum(M * ex, axis=1) + 1.0
    return -alpha * jnp.log(jnp.maximum(z, log_floor)) - alpha * rho


def kl_constrained_dual(M: Array, y: Array, mask: Array, rho: Array, horizon: float | Array,
                        grid_size: int = 256, golden_iters: int = 40, alpha_min: float = 1e-6) -> Array:
    """DRVI-L: ``max_{alpha in [alpha_min, H]}`` of :func:`kl_constrained_objective`, per coordinate.

    A log-spaced grid of ``grid_size`` points brackets the maximiser; ``golden_iters`` steps of
    golden-section search refine it inside the bracket (the official code runs Nelder-Mead from
    ``H/2`` on ``[1e-6, H]``). Returns the best value found (never worse than the grid).

    Returns:
      ``[d]``.
    """
    d = M.shape[0]
    y = jnp.where(mask > 0, y, 0.0)
    rho = jnp.broadcast_to(rho, (d,))
    grid = jnp.exp(jnp.linspace(jnp.log(alpha_min), jnp.log(horizon), grid_size))
    vals = jax.vmap(lambda a: kl_constrained_objective(M, y, a, rho))(grid)  # [G, d]
    best = jnp.argmax(vals, 0)
    a = grid[jnp.maximum(best - 1, 0)]
    b = grid[jnp.minimum(best + 1, grid_size - 1)]
    invphi = (jnp.sqrt(5.0) - 1.0) / 2.0
    f = lambda alpha: kl_constrained_objective(M, y, alpha, rho)

    def body(_, state):
        a, b = state
        c = b - invphi * (b - a)
        e = a + invphi * (b - a)
        keep_left = f(c) >= f(e)
        return jnp.where(keep_left, a, c), jnp.where(keep_left, e, b)

    a, b = jax.lax.fori_loop(0, golden_iters, body, (a, b))
    refined = f((a + b) / 2.0)
    return jnp.maximum(refined, vals.max(0))
