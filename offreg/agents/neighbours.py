"""Exact nearest-neighbour search in PRDC's key space, inside the jitted update.

PRDC (Ran et al., ICML 2023) pulls ``pi(s)`` toward the action of the dataset row nearest to the
key ``q = [beta * s, pi(s)]`` among all rows ``x_m = [beta * S_m, A_m]`` (Euclidean distance, exact
search). The official code queries a ``scipy.spatial.KDTree`` on the host at every actor step; here
the search stays on the device:

1. **Index, once per dataset** (:func:`offreg.agents.neighbour_index.build_index`, on the host).
   For every row ``j`` its ``K`` nearest rows in *state* space, ``C_j``, and a certified radius
   ``r_j``: every row outside ``C_j`` has state distance ``>= r_j`` from ``S_j``. Scaling by
   ``beta > 0`` does not change neighbours in state space, so one index serves every ``beta``
   (``beta`` stays a traced, sweepable array).
2. **Candidate search** (:func:`nearest`). A query whose state is a dataset row ``j`` (always the
   case for PRDC: the batch is drawn from the dataset; the row is found by an exact bitwise hash of
   the state) searches ``C_j`` exactly. The best joint distance ``d*`` found is certified exact when
   ``d* < beta * r_j``: every other row has joint distance ``>= beta * ||S_m - S_j|| >= beta * r_j``.
3. **Exact fallback.** The uncertified queries (and queries whose state is not a dataset row) are
   compacted and answered, ``chunk`` at a time, in a ``lax.while_loop`` that runs only as many
   chunks as needed, by a blocked scan with a running arg-min over a *slab*: rows are sorted by
   their projection on the states' first principal axis ``u``, and since
   ``||x_m - q|| >= beta |u.(S_m - s)|``, only rows with ``|u.S_m - u.s| <= d*/beta`` (``d*`` the
   candidates' best, an upper bound) can be nearer; they form one contiguous range of the sorted
   order, found by binary search. The index stores the rows in that order, so each slab is a
   contiguous slice. When many queries are open, one batched matmul scan of the whole dataset
   (its best row re-checked exactly, certified by a bound on every other row) answers most of
   them first. (:func:`brute_force_nearest`
   scans everything; tests use it.)

**Exactness and ties.** Distances are float32 sums of squared direct differences of the float32
keys (the keys scipy receives in the official code, where scipy then works in float64), so the
distance of the returned row equals scipy's to float32 rounding (relative ~1e-6). Ties are broken
deterministically: the lowest dataset index among the rows at the minimal float32 distance. The
certificate carries a safety margin that covers float32 rounding of the keys and the distances,
so the candidate path returns exactly what the brute-force scan would. Float64 queries (with
``jax_enable_x64``) give float64 distances, for which the float32 margins are conservative.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from offreg.agents.neighbour_index import MAX_BLOCK, NeighbourIndex, hash_rows
from offreg.seeds import SEED_AXIS


def locate(index: NeighbourIndex, query_states: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The position of the dataset row whose state equals each query state bit for bit.

    Returns:
      ``(position int32 [B], found bool [B])``; ``position`` is meaningless where ``found`` is False.
    """
    h = hash_rows(query_states)
    n = index.hash_sorted.shape[0]
    at = jnp.clip(jnp.searchsorted(index.hash_sorted, h, side="left"), 0, n - 1)
    pos = index.hash_pos[at]
    found = (index.hash_sorted[at] == h) & jnp.all(index.states[pos] == query_states, axis=-1)
    return pos, found


def _sq_dist(beta, states, actions, q_state_keys, q_actions):
    """Squared key distance ``||beta*S - q_s||^2 + ||A - q_a||^2`` by direct differences, float32."""
    ds = beta * states - q_state_keys
    da = actions - q_actions
    return jnp.sum(ds * ds, axis=-1) + jnp.sum(da * da, axis=-1)


def _lexmin(d, rows, n):
    """Per query (axis 0): the minimal distance and the lowest row attaining it."""
    d_min = jnp.min(d, axis=1)
    return d_min, jnp.min(jnp.where(d == d_min[:, None], rows, n), axis=1).astype(jnp.int32)


def brute_force_nearest(
    index: NeighbourIndex, beta: jax.Array, query_states: jax.Array, query_actions: jax.Array, block: int = 4096
) -> tuple[jax.Array, jax.Array]:
    """Exact nearest row by a blocked scan over the whole dataset (running lexicographic arg-min).

    Args:
      index: the index.
      beta: scalar state scale.
      query_states: ``[M, ds]`` unscaled query states ``s``.
      query_actions: ``[M, da]``.
      block: dataset rows per scan step (``<= MAX_BLOCK``).

    Returns:
      ``(row int32 [M], dist_sq float32 [M])``: the lowest dataset row at the minimal distance.
    """
    n = index.rows.shape[0]
    block = min(block, MAX_BLOCK, n)
    q_keys = beta * query_states
    m = query_states.shape[0]
    dtype = jnp.result_type(q_keys, query_actions, index.states, index.actions)  # of the distances

    def step(carry, start):
        best_d, best_r = carry
        s_blk = jax.lax.dynamic_slice_in_dim(index.states, start, block)
        a_blk = jax.lax.dynamic_slice_in_dim(index.actions, start, block)
        pos = start + jnp.arange(block)
        rows = index.rows[jnp.clip(pos, 0, n - 1)]
        d = _sq_dist(beta, s_blk[None], a_blk[None], q_keys[:, None], query_actions[:, None])  # [M, block]
        d = jnp.where(pos[None] < n, d, jnp.inf)
        d_b, r_b = _lexmin(d, jnp.broadcast_to(rows, d.shape), n)
        better = (d_b < best_d) | ((d_b == best_d) & (r_b < best_r))
        return (jnp.where(better, d_b, best_d), jnp.where(better, r_b, best_r)), None

    init = (jnp.full((m,), jnp.inf, dtype), jnp.full((m,), n, jnp.int32))
    (best_d, best_r), _ = jax.lax.scan(step, init, jnp.arange(0, n, block))
    return best_r, best_d


class SearchResult(NamedTuple):
    """Result of :func:`nearest`.

    Attributes:
      row: int32 ``[B]`` the nearest dataset row (the lowest one among equally near rows).
      action: float32 ``[B, da]`` its action.
      dist_sq: float32 ``[B]`` its squared key distance.
      certified: bool ``[B]`` answered by the certified candidate search (else by the slab scan).
      fallback_chunks: int32 scalar, the number of fallback chunks run.
      fallback_rows: int32 scalar, sorted rows scanned per query by the fallback (per chunk the
        widest slab, summed over chunks).
    """

    row: jax.Array
    action: jax.Array
    dist_sq: jax.Array
    certified: jax.Array
    fallback_chunks: jax.Array
    fallback_rows: jax.Array


def nearest(
    index: NeighbourIndex,
    beta: jax.Array,
    query_states: jax.Array,
    query_actions: jax.Array,
    chunk: int = 8,
    block: int = 256,
) -> SearchResult:
    """Exact nearest dataset row to each key ``[beta * s, a]``: certified candidates + slab fallback.

    Jit-, scan- and vmap-safe; no host round trip.

    Args:
      index: from :func:`build_index`.
      beta: scalar ``> 0`` (may be traced).
      query_states: ``[B, ds]`` unscaled states ``s``; rows of the dataset are searched via their
        candidates, any other state falls back to the scan.
      query_actions: ``[B, da]``.
      chunk: queries per fallback scan (static).
      block: sorted rows per step of that scan (static, ``<= MAX_BLOCK``).

    Returns:
      A :class:`SearchResult`.
    """
    beta = jnp.asarray(beta, jnp.result_type(query_states, query_actions, index.states))
    b = query_states.shape[0]
    n = index.rows.shape[0]
    block = min(block, MAX_BLOCK)
    pos, found = locate(index, query_states)
    # --- certified candidate search ---
    cand = index.candidates[pos]  # [B, K] positions
    d = _sq_dist(beta, index.states[cand], index.actions[cand], (beta * query_states)[:, None], query_actions[:, None])
    d_min, best = _lexmin(d, index.rows[cand], n)
    certified = found & (d_min < beta * beta * index.radius_sq[pos])
    # --- many open queries: one batched matmul scan of everything for the whole batch first ---
    chunk = min(chunk, b)
    many = jnp.sum(~certified) > max(b // 4, 2 * chunk)  # cheaper than chunked scans from about here on CPU
    best, d_min, mm_done = _once(many, lambda: _matmul_search(index, beta, query_states, query_actions, best, d_min),
                                 (best, d_min, jnp.zeros((b,), bool)))
    resolved = certified | mm_done
    # --- exact fallback for the rest, chunk queries at a time, over their slabs ---
    row_out, d_out, num_chunks, scanned = _fallback(index, beta, query_states, query_actions, resolved, best, d_min,
                                                    chunk, block)
    return SearchResult(row_out, index.actions[index.positions[row_out]], d_out, certified, num_chunks, scanned)


def _fallback(index, beta, query_states, query_actions, resolved, best, d_min, chunk, block):
    """:func:`nearest`'s exact answers for the unresolved queries, ``chunk`` at a time, in a ``while_loop``.

    Returns:
      ``(row [B], dist_sq [B], chunks run, rows scanned per query)``; resolved queries keep ``(best, d_min)``.
    """
    b = query_states.shape[0]
    n = index.rows.shape[0]
    order = jnp.argsort(resolved, stable=True).astype(jnp.int32)  # unresolved first
    num_open = jnp.sum(~resolved).astype(jnp.int32)
    num_chunks = (num_open + chunk - 1) // chunk
    order = jnp.pad(order, (0, (-b) % chunk))

    def body(carry):
        i, out_row, out_d, scanned = carry
        q = jax.lax.dynamic_slice(order, (i * chunk,), (chunk,))
        valid = i * chunk + jnp.arange(chunk) < num_open
        qs, qa = query_states[q], query_actions[q]
        r, dq = out_row[q], out_d[q]
        # a wide slab: an exact matmul scan of everything first (certified where the bounds separate)
        p = qs @ index.axis
        w = jnp.sqrt(dq) / beta
        width = jnp.max(jnp.where(valid, jnp.searchsorted(index.proj, p + w) - jnp.searchsorted(index.proj, p - w), 0))
        r, dq, done = _once(width > n // 8, lambda: _matmul_search(index, beta, qs, qa, r, dq),
                            (r, dq, jnp.zeros(qs.shape[0], bool)))
        r, dq, rows_scanned = _slab_search(index, beta, qs, qa, r, dq, block, active=~done)
        tgt = jnp.where(valid, q, b)  # out-of-range targets are dropped
        return (
            i + 1,
            out_row.at[tgt].set(r, mode="drop"),
            out_d.at[tgt].set(dq, mode="drop"),
            scanned + rows_scanned,
        )

    _, row_out, d_out, scanned = jax.lax.while_loop(
        lambda c: c[0] < num_chunks, body, (jnp.int32(0), best, d_min, jnp.int32(0))
    )
    return row_out, d_out, num_chunks, scanned


def _once(pred, fn, default):
    """``fn()`` where ``pred`` else ``default``, running ``fn`` only when some member needs it.

    A ``lax.cond`` on ``pred``. Under the engine's seed ``vmap`` (axis :data:`offreg.seeds.SEED_AXIS`)
    the predicate is first OR-reduced over the seeds, so the branch stays a real branch (a batched
    predicate would turn it into a select that always computes ``fn``) and runs, batched, only when
    some seed needs it; each member then keeps its own answer. Under an unnamed ``vmap`` it degrades
    to a select (correct, slower). (A ``while_loop`` that runs 0 or 1 times has the same semantics,
    but on XLA CPU it cost about as much as running its body even when the body did not run.)
    """
    try:
        any_pred = jax.lax.pmax(pred.astype(jnp.int32), SEED_AXIS) > 0
    except NameError:  # not under the engine's seed vmap
        any_pred = pred
    out = jax.lax.cond(any_pred, fn, lambda: default)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), out, default)


def _matmul_search(index, beta, qs, qa, best_row, best_d, block=MAX_BLOCK):
    """Exact nearest rows of ``[M]`` queries by a full matmul scan, where certified.

    Each block gives approximate squared distances ``a_i = beta^2 |S_i|^2 + |A_i|^2 - 2 (beta^2 S_i.s +
    A_i.a) + |q|^2`` (one matmul) and certified lower bounds ``l_i = a_i - E_i`` with ``E_i = 2e-6 (D + 3)
    (|x_i|^2 + |q|^2 + 1)``, several times the expansion's worst-case float32 error. The scan keeps,
    per query, the position of the smallest ``a_i`` and the smallest ``l_j`` over every *other* row,
    using only max/min reductions (XLA CPU runs them vectorized; ``top_k`` and ``argmin`` are many
    times slower there). The best row is re-evaluated by direct differences; the answer is exact
    (``done``) when that distance (or the given bound, if better) is below every other row's bound.

    Returns:
      ``(row [M], dist_sq [M], done bool [M])``; where not done, ``(row, dist_sq)`` is still a valid
      upper bound (the best of the scanned row and of the given bound).
    """
    n = index.rows.shape[0]
    m = qs.shape[0]
    b2 = beta * beta
    q_sq = b2 * jnp.sum(qs * qs, -1) + jnp.sum(qa * qa, -1)  # [M]
    qs2 = b2 * qs
    c = 2e-6 * (qs.shape[1] + qa.shape[1] + 3)
    local = jnp.arange(block, dtype=jnp.float32)  # positions as float32: exact below 2^24 rows

    def step(carry, start):
        a_best, p_best, l_best, l_other = carry  # best approx, its position and bound, min bound of the rest
        s_blk = jax.lax.dynamic_slice_in_dim(index.states, start, block)
        a_blk = jax.lax.dynamic_slice_in_dim(index.actions, start, block)
        nrm = b2 * jax.lax.dynamic_slice_in_dim(index.sq_norm_states, start, block)
        nrm = nrm + jax.lax.dynamic_slice_in_dim(index.sq_norm_actions, start, block)
        valid = (start + jnp.arange(block) < n)[None]
        approx = jnp.where(valid, nrm[None] - 2.0 * (qs2 @ s_blk.T + qa @ a_blk.T) + q_sq[:, None], jnp.inf)
        lower = approx - c * (nrm[None] + q_sq[:, None] + 1.0)
        a_b = jnp.min(approx, axis=1)
        at = jnp.min(jnp.where(approx == a_b[:, None], local[None], jnp.inf), axis=1)  # first position at the min
        is_at = local[None] == at[:, None]
        l_b = jnp.min(jnp.where(is_at, lower, jnp.inf), axis=1)
        l_rest = jnp.min(jnp.where(is_at, jnp.inf, lower), axis=1)
        new = a_b < a_best  # ties keep the earlier row; the later one counts among the rest
        return (
            jnp.where(new, a_b, a_best),
            jnp.where(new, start.astype(jnp.float32) + at, p_best),
            jnp.where(new, l_b, l_best),
            jnp.minimum(jnp.minimum(l_other, l_rest), jnp.where(new, l_best, l_b)),
        ), None

    inf = jnp.full((m,), jnp.inf, jnp.result_type(q_sq, index.states))
    init = (inf, jnp.zeros((m,), jnp.float32), inf, inf)
    (_, pos, _, l_other), _ = jax.lax.scan(step, init, jnp.arange(0, n, block))
    pos = jnp.clip(pos.astype(jnp.int32), 0, n - 1)
    d_c = _sq_dist(beta, index.states[pos], index.actions[pos], beta * qs, qa)
    r_c = index.rows[pos]
    better = (d_c < best_d) | ((d_c == best_d) & (r_c < best_row))
    d_best, r_best = jnp.where(better, d_c, best_d), jnp.where(better, r_c, best_row)
    # a given bound from another row is itself among "the rest", so it can only certify through r_c
    done = (d_best < l_other) & (r_best == r_c)
    return r_best, d_best, done


def _slab_search(index, beta, qs, qa, best_row, best_d, block, active=None):
    """Exact nearest rows for ``[M]`` queries given an upper bound ``(best_row, best_d)`` each.

    Scans, for the ``active`` queries (all if None), ``block`` sorted rows at a time (contiguous slices), the slab
    ``|u.S_m - u.s| <= sqrt(best_d)/beta`` (widened for rounding) outside which no row can be at
    distance ``<= best_d``; keeps the lexicographic minimum of ``(distance, row)``.

    Returns:
      ``(row [M], dist_sq [M], rows scanned per query (max over the M queries))``.
    """
    n = index.rows.shape[0]
    p = qs @ index.axis
    w = jnp.sqrt(best_d) / beta * (1.0 + 1e-4) + index.slab_margin
    lo = jnp.searchsorted(index.proj, p - w, side="left").astype(jnp.int32)
    hi = jnp.searchsorted(index.proj, p + w, side="right").astype(jnp.int32)
    if active is not None:
        hi = jnp.where(active, hi, lo)
    steps = jnp.max((hi - lo + block - 1) // block)
    q_keys = beta * qs
    take = jax.vmap(lambda x, start: jax.lax.dynamic_slice_in_dim(x, start, block), in_axes=(None, 0))

    def body(carry):
        t, bd, br = carry
        start = lo + t * block  # [M]
        pos = start[:, None] + jnp.arange(block)[None]  # [M, block]
        d = _sq_dist(beta, take(index.states, start), take(index.actions, start), q_keys[:, None], qa[:, None])
        d = jnp.where(pos < hi[:, None], d, jnp.inf)
        d_b, r_b = _lexmin(d, index.rows[jnp.clip(pos, 0, n - 1)], n)
        better = (d_b < bd) | ((d_b == bd) & (r_b < br))
        return t + 1, jnp.where(better, d_b, bd), jnp.where(better, r_b, br)

    _, bd, br = jax.lax.while_loop(lambda c: c[0] < steps, body, (jnp.int32(0), best_d, best_row))
    return br.astype(jnp.int32), bd, steps * block
