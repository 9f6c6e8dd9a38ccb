"""PRDC's neighbour index: what the exact search of :mod:`offreg.agents.neighbours` needs, built once
per dataset on the host.

For every dataset row ``j`` its ``K`` nearest rows in *state* space, ``C_j``, and a certified radius
``r_j``: every row outside ``C_j`` has state distance ``>= r_j`` from ``S_j``. Scaling by
``beta > 0`` does not change neighbours in state space, so one index serves every ``beta``. The rows
are stored in *slab order* (sorted by their projection on the states' first principal axis), with
the bitwise hashes that find a query state's own row. See :mod:`offreg.agents.neighbours` for the
search and the exactness argument.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from offreg.errors import ConfigError

_U = 1.2e-7  # twice float32's unit roundoff, the per-component key-rounding bound used by the certificate
_REL_MARGIN = 1e-5  # relative margin on squared distances (covers float32 summation error for D <= 80)


MAX_BLOCK = 4096
"""Largest ``block`` of the fallback scan: the sorted rows are padded by this many rows."""


class NeighbourIndex(NamedTuple):
    """The device-resident search index (a pytree of arrays; ``beta``-independent).

    Rows are stored in *slab order*: sorted by their projection on the states' first principal
    axis. "Position" below means a place in that order; ``rows`` maps it to the dataset row.

    Attributes:
      states: float32 ``[N + MAX_BLOCK, ds]`` the (normalized) dataset states, in slab order, zero-padded.
      actions: float32 ``[N + MAX_BLOCK, da]`` the dataset actions, in slab order, zero-padded.
      rows: int32 ``[N]`` the dataset row at each position.
      positions: int32 ``[N]`` the position of each dataset row (the inverse of ``rows``).
      candidates: int32 ``[N, K]`` positions of the ``K`` nearest rows in state space (itself included).
      radius_sq: float32 ``[N]`` a certified lower bound on the squared state distance from each
        position to any row outside its candidates, reduced for float32 rounding; ``inf`` if ``K == N``.
      hash_sorted: uint32 ``[N]`` the sorted bitwise hashes of the states.
      hash_pos: int32 ``[N]`` the position of each entry of ``hash_sorted``.
      axis: float32 ``[ds]`` unit first principal axis ``u`` of the states.
      proj: float32 ``[N]`` the (sorted) projections ``u.S`` at each position.
      slab_margin: float32 scalar, absolute widening of the slab covering float32 rounding.
      sq_norm_states: float32 ``[N + MAX_BLOCK]`` ``||S||^2`` at each position (for the matmul scan).
      sq_norm_actions: float32 ``[N + MAX_BLOCK]`` ``||A||^2`` at each position.
    """

    states: jax.Array
    actions: jax.Array
    rows: jax.Array
    positions: jax.Array
    candidates: jax.Array
    radius_sq: jax.Array
    hash_sorted: jax.Array
    hash_pos: jax.Array
    axis: jax.Array
    proj: jax.Array
    slab_margin: jax.Array
    sq_norm_states: jax.Array
    sq_norm_actions: jax.Array


def index_nbytes(index: NeighbourIndex) -> dict[str, int]:
    """Device memory of each array of ``index`` in bytes, plus ``total``."""
    out = {name: int(np.prod(a.shape)) * a.dtype.itemsize for name, a in index._asdict().items()}
    out["total"] = sum(out.values())
    return out


@jax.jit
def hash_rows(x: jax.Array) -> jax.Array:
    """A 32-bit hash of the exact bit pattern of each float32 row. ``[N, d] -> uint32 [N]``."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    h = jnp.full(x.shape[:-1], 0x811C9DC5, jnp.uint32)
    for d in range(x.shape[-1]):
        h = (h ^ bits[..., d]) * jnp.uint32(0x01000193)
        h = h ^ (h >> 15)
        h = h * jnp.uint32(0x2C1B3C6D)
        h = h ^ (h >> 12)
    return h


def build_index(states, actions, k: int = 32, chunk: int = 65536) -> NeighbourIndex:
    """Build the index on the host with an exact KD-tree self-query (scipy, all CPU threads).

    Args:
      states: ``[N, ds]`` float32 normalized dataset states (the rows the batches are drawn from).
      actions: ``[N, da]`` dataset actions.
      k: candidates per row. Larger ``k`` certifies more queries (fewer fallbacks) at
        ``4 * N * k`` bytes of device memory.
      chunk: rows per KD-tree query call (bounds the host memory of the float64 results).

    Returns:
      A :class:`NeighbourIndex` on the default device.

    Raises:
      ConfigError: ``k < 1`` or the arrays do not match.
    """
    s = np.asarray(states, np.float32)
    a = np.asarray(actions, np.float32)
    if s.ndim != 2 or a.ndim != 2 or s.shape[0] != a.shape[0] or s.shape[0] == 0:
        raise ConfigError(
            f"neighbour index: states {s.shape} and actions {a.shape} must be [N, ds] and [N, da] with the same N > 0"
        )
    if k < 1:
        raise ConfigError(f"neighbour index: k must be >= 1, got {k}")
    n = s.shape[0]
    k = min(k, n)
    # --- slab order: sort by the projection on the first principal axis ---
    s64 = s.astype(np.float64)
    _, _, vt = np.linalg.svd(s64[:: max(1, n // 100_000)] - s64.mean(0), full_matrices=False)
    axis = vt[0] / np.linalg.norm(vt[0])
    proj = s64 @ axis
    order = np.argsort(proj, kind="stable")
    s, a, s64, proj = s[order], a[order], s64[order], proj[order]
    norms = np.linalg.norm(s64, axis=1)
    cand, r_sq32 = _candidates(s, norms, k, chunk)
    s_dev = jnp.asarray(s)
    h = np.asarray(hash_rows(s_dev))
    h_order = np.argsort(h, kind="stable").astype(np.int32)
    pad = ((0, MAX_BLOCK), (0, 0))
    return NeighbourIndex(
        states=jnp.pad(s_dev, pad),
        actions=jnp.asarray(np.pad(a, pad)),
        rows=jnp.asarray(order.astype(np.int32)),
        positions=jnp.asarray(np.argsort(order).astype(np.int32)),
        candidates=jnp.asarray(cand),
        radius_sq=jnp.asarray(r_sq32.astype(np.float32)),
        hash_sorted=jnp.asarray(h[h_order]),
        hash_pos=jnp.asarray(h_order),
        axis=jnp.asarray(axis.astype(np.float32)),
        proj=jnp.asarray(proj.astype(np.float32)),
        slab_margin=jnp.float32(1e-5 * (1.0 + float(norms.max()))),
        sq_norm_states=jnp.asarray(np.pad(norms**2, (0, MAX_BLOCK)).astype(np.float32)),
        sq_norm_actions=jnp.asarray(np.pad(np.sum(a.astype(np.float64) ** 2, 1), (0, MAX_BLOCK)).astype(np.float32)),
    )


def _candidates(s: np.ndarray, norms: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``K`` nearest positions in state space of each (slab-ordered) row, and the certified radius.

    Returns:
      ``(candidates int32 [N, K], radius_sq float32 [N])``: every row outside a row's candidates is at
      squared key-space state distance ``>= beta^2 radius_sq`` from it, float32 rounding of the keys
      and the distances included; ``inf`` when ``K == N``.
    """
    from scipy.spatial import cKDTree

    n = s.shape[0]
    cand = np.empty((n, k), np.int32)
    radius = np.empty(n, np.float64)
    if k == n:
        cand[:] = np.arange(n, dtype=np.int32)[None, :]
        radius[:] = np.inf
    else:
        tree = cKDTree(s)
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            dist, idx = tree.query(s[lo:hi], k=k + 1, workers=-1)
            cand[lo:hi] = idx[:, :k]
            radius[lo:hi] = dist[:, k]  # every row outside the first k is at least this far
    # Keys are rounded to float32 after scaling by beta: |fl(beta x) - beta x| <= u * beta * |x|,
    # so beta * (r - u (|S_j| + max|S|)) bounds the key-space state distance from below.
    r = np.maximum(radius - _U * (norms + float(norms.max())), 0.0)
    r_sq = np.where(np.isinf(radius), np.inf, (r * r) * (1.0 - _REL_MARGIN))
    r_sq32 = r_sq.astype(np.float32)
    return cand, np.where(r_sq32.astype(np.float64) > r_sq, np.nextafter(r_sq32, np.float32(0)), r_sq32)
