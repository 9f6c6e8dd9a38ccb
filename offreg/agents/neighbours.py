"""Exact nearest-neighbour search in PRDC's key space, inside the jitted update.

PRDC (Ran et al., ICML 2023) pulls ``pi(s)`` toward the action of the dataset row nearest to the
key ``q = [beta * s, pi(s)]`` among all rows ``x_m = [beta * S_m, A_m]`` (Euclidean distance, exact
search). The official code queries a ``scipy.spatial.KDTree`` on the host at every actor step; here
the search stays on the device, as a branch-and-bound over a KD-tree that is vectorized across the
queries:

1. **Index, once per dataset** (:func:`offreg.agents.neighbour_index.build_index`, on the host): a
   balanced KD-tree over ``[S, A]`` whose nodes keep their rows' bounding box in states and in
   actions. For any box and any ``beta``, ``beta^2 gap_S^2 + gap_A^2`` (``gap`` the distance from
   the query to the box, per part) is a lower bound on the key distance of every row in the box, so
   one index serves every ``beta`` (``beta`` stays a traced, sweepable array).
2. **An upper bound** per query: descend the split coordinates to the leaf of ``[s, a]`` and scan the
   rows under its ancestor ``_UPPER_LEVELS`` levels up (contiguous slots). For PRDC the query state is
   a dataset row, whose neighbourhood this is, so the bound is close: at most the distance to the
   row's own action.
3. **Level-synchronous branch and bound, vectorized across the batch** (:func:`_traverse`): from the
   root, every step replaces each live (query, node) pair by the node's descendants ``_HOP`` levels
   down whose lower bound does not exceed the query's upper bound, and compacts the survivors into
   fixed-size arrays (static shapes), on the smallest of :data:`_SIZES` that holds them. At the leaves
   their rows are scanned; each query keeps its lexicographic minimum of (distance, row). A node is
   dropped only if every row in it is farther than a row already found: the answer is exact.
4. **Exact fallbacks.** Queries whose pairs did not fit ``capacity`` are searched again with
   ``_WIDE`` times the room, and any still open ``chunk`` at a time by a scan of every row
   (:func:`brute_force_nearest`, also the tests' reference). The cost follows the leaves within a
   query's distance (the data's density near it), not the number of rows. docs/prdc_a2pr.md has more.

**Exactness and ties.** Distances are float32 sums of squared direct differences of the float32
keys (the keys scipy receives in the official code, where scipy then works in float64), so the
distance of the returned row equals scipy's to float32 rounding (relative ~1e-6). Ties are broken
deterministically: the lowest dataset index among the rows at the minimal float32 distance. The
lower bounds are lowered by a margin that covers float32 rounding of the keys (``|fl(beta x) -
beta x| <= u beta |x|`` per coordinate) and of the sums, and a node is dropped only when its bound
*exceeds* the best distance, so every row that could equal or beat the answer is scanned. Float64
queries (with ``jax_enable_x64``) give float64 distances, for which the float32 margins are
conservative.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from offreg.agents.neighbour_index import KEY_ROUNDING, MAX_BLOCK, NeighbourIndex
from offreg.seeds import SEED_AXIS

_SIZES = tuple(2**k for k in range(8, 17))  # a step works on the smallest that holds its pairs
_WIDE = 4  # the second search, for the queries that did not fit, holds this many times the first's pairs
_HOP = 2  # tree levels per step of the branch and bound
_UPPER_LEVELS = 3  # the first upper bound scans the 2^3 leaves around the query's own
_LB_MARGIN = 4e-5  # relative, covers the float32 sums of the bound and of the distance (D <= 150)


def _shape(index: NeighbourIndex) -> tuple[int, int, int]:
    """``(depth D, leaves L, cap)`` of the index's tree, from its array shapes (static)."""
    leaves = (index.lo.shape[0] + 1) // 2
    return leaves.bit_length() - 1, leaves, index.rows.shape[0] // leaves


def _sum_squares(x):
    """``sum(x * x, axis=-1)`` as a reduction XLA's CPU backend fuses with the gathers feeding it: with jax
    0.10 a plain add- or min-reduction of 4096 or more elements goes to a library kernel that first writes
    out every gathered input; a step of ``max(a + b, 0)``, equal for non-negative terms, does not."""
    return jax.lax.reduce(x * x, jnp.zeros((), x.dtype), lambda a, b: jnp.maximum(a + b, 0.0), (x.ndim - 1,))


def _min(x, axis: int):
    """``jnp.min(x, axis)`` for NaN-free ``x``, kept in XLA's fused loop (see :func:`_sum_squares`)."""
    return jax.lax.reduce(x, jnp.array(jnp.inf, x.dtype), lambda a, b: jnp.where(a < b, a, b), (axis,))


def _sq_dist(beta, states, actions, q_state_keys, q_actions):
    """Squared key distance ``||beta*S - q_s||^2 + ||A - q_a||^2`` by direct differences, float32."""
    return _sum_squares(beta * states - q_state_keys) + _sum_squares(actions - q_actions)


def _lexmin(d, rows, n):
    """Per query (axis 0): the minimal distance and the lowest row attaining it."""
    d_min = _min(d, 1)
    return d_min, jnp.min(jnp.where(d == d_min[:, None], rows, n), axis=1).astype(jnp.int32)


def brute_force_nearest(
    index: NeighbourIndex, beta: jax.Array, query_states: jax.Array, query_actions: jax.Array, block: int = 4096
) -> tuple[jax.Array, jax.Array]:
    """Exact nearest row by a blocked scan over every slot (running lexicographic arg-min).

    Args:
      index: the index.
      beta: scalar state scale.
      query_states: ``[M, ds]`` unscaled query states ``s``.
      query_actions: ``[M, da]``.
      block: slots per scan step (``<= MAX_BLOCK``).

    Returns:
      ``(row int32 [M], dist_sq float32 [M])``: the lowest dataset row at the minimal distance.
    """
    n = index.positions.shape[0]
    slots = index.rows.shape[0]
    block = min(block, MAX_BLOCK, slots)
    q_keys = beta * query_states
    m = query_states.shape[0]
    dtype = jnp.result_type(q_keys, query_actions, index.states, index.actions)  # of the distances

    def step(carry, start):
        best_d, best_r = carry
        s_blk = jax.lax.dynamic_slice_in_dim(index.states, start, block)
        a_blk = jax.lax.dynamic_slice_in_dim(index.actions, start, block)
        pos = start + jnp.arange(block)
        rows = jnp.where(pos < slots, index.rows[jnp.clip(pos, 0, slots - 1)], n)
        d = _sq_dist(beta, s_blk[None], a_blk[None], q_keys[:, None], query_actions[:, None])  # [M, block]
        d = jnp.where(rows[None] < n, d, jnp.inf)
        d_b, r_b = _lexmin(d, jnp.broadcast_to(rows, d.shape), n)
        better = (d_b < best_d) | ((d_b == best_d) & (r_b < best_r))
        return (jnp.where(better, d_b, best_d), jnp.where(better, r_b, best_r)), None

    init = (jnp.full((m,), jnp.inf, dtype), jnp.full((m,), n, jnp.int32))
    (best_d, best_r), _ = jax.lax.scan(step, init, jnp.arange(0, slots, block))
    return best_r, best_d


class SearchResult(NamedTuple):
    """Result of :func:`nearest`.

    Attributes:
      row: int32 ``[B]`` the nearest dataset row (the lowest one among equally near rows).
      action: float32 ``[B, da]`` its action.
      dist_sq: float32 ``[B]`` its squared key distance.
      certified: bool ``[B]`` answered by the first batched tree search (else by a fallback).
      fallback_chunks: int32 scalar, the chunks of the last-resort scan run.
      leaves_per_query: float32 scalar, leaves scanned per query by the first batched tree search (mean).
    """

    row: jax.Array
    action: jax.Array
    dist_sq: jax.Array
    certified: jax.Array
    fallback_chunks: jax.Array
    leaves_per_query: jax.Array


def nearest(
    index: NeighbourIndex,
    beta: jax.Array,
    query_states: jax.Array,
    query_actions: jax.Array,
    capacity: int = 16384,
    chunk: int = 16,
    block: int = 2048,
) -> SearchResult:
    """Exact nearest dataset row to each key ``[beta * s, a]``: vectorized KD-tree branch and bound.

    Jit-, scan- and vmap-safe; no host round trip.

    Args:
      index: from :func:`offreg.agents.neighbour_index.build_index`.
      beta: scalar ``> 0`` (may be traced).
      query_states: ``[B, ds]`` unscaled states ``s`` (dataset rows or not).
      query_actions: ``[B, da]``.
      capacity: (query, node) pairs the first search holds per step (static): speed and memory only.
      chunk: queries per chunk of the last-resort scan (static).
      block: slots per step of the last-resort scan (static, ``<= MAX_BLOCK``).

    Returns:
      A :class:`SearchResult`.
    """
    beta = jnp.asarray(beta, jnp.result_type(query_states, query_actions, index.states))
    b = query_states.shape[0]
    n = index.positions.shape[0]
    keys = jnp.concatenate([query_states, query_actions], axis=-1).astype(index.lo.dtype)
    # --- an upper bound: the rows under the query's ancestor _UPPER_LEVELS above its leaf (contiguous) ---
    depth, _, cap = _shape(index)
    up = min(_UPPER_LEVELS, depth)
    leaf = _descend(index, keys)
    d_ub, r_ub = _scan_slots(index, beta, query_states, query_actions, (leaf >> up) * (cap << up), cap << up)
    # --- every query at once; the queries that did not fit, again with room for many more pairs ---
    row, d, done, pairs = _traverse(index, beta, query_states, query_actions, r_ub, d_ub, capacity)
    fits = done

    def wider(row, d, done):  # a query already done gets the bound -1: no pairs
        bound = jnp.where(done, -1.0, d).astype(d.dtype)
        r, dq, ok, _ = _traverse(index, beta, query_states, query_actions, row, bound, _WIDE * capacity)
        return tuple(jnp.where(done, x, y) for x, y in ((row, r), (d, dq), (done, ok)))

    row, d, done = _branch(jnp.any(~done).astype(jnp.int32), [lambda *x: x, wider], row, d, done)
    # --- the rest (rare), chunk at a time, by a scan of every row ---
    # (behind a switch: a while_loop that runs no chunk still cost XLA CPU about as much as running one)
    scan = functools.partial(_scan_open, index, beta, query_states, query_actions, chunk=chunk, block=block)
    none = lambda row, d, done: (row, d, jnp.int32(0))  # noqa: E731
    row, d, num_chunks = _branch(jnp.any(~done).astype(jnp.int32), [none, scan], row, d, done)
    action = index.actions[index.positions[jnp.clip(row, 0, n - 1)]]
    return SearchResult(row, action, d, fits, num_chunks, pairs.astype(jnp.float32) / b)


def _scan_open(index: NeighbourIndex, beta, query_states, query_actions, row, d, done, chunk: int, block: int):
    """The queries not ``done`` answered by :func:`brute_force_nearest`, ``chunk`` at a time, in a
    ``lax.while_loop`` that runs only as many chunks as needed. ``-> (row [B], dist_sq [B], chunks run)``."""
    b = query_states.shape[0]
    chunk = min(chunk, b)
    order = jnp.argsort(done, stable=True).astype(jnp.int32)  # the open queries first
    num_open = jnp.sum(~done).astype(jnp.int32)
    num_chunks = (num_open + chunk - 1) // chunk
    order = jnp.pad(order, (0, (-b) % chunk))

    def body(carry):
        i, out_row, out_d = carry
        q = jax.lax.dynamic_slice(order, (i * chunk,), (chunk,))
        r, dq = brute_force_nearest(index, beta, query_states[q], query_actions[q], block)
        tgt = jnp.where(i * chunk + jnp.arange(chunk) < num_open, q, b)  # out-of-range targets are dropped
        return i + 1, out_row.at[tgt].set(r, mode="drop"), out_d.at[tgt].set(dq, mode="drop")

    return (*jax.lax.while_loop(lambda c: c[0] < num_chunks, body, (jnp.int32(0), row, d))[1:], num_chunks)


def _descend(index: NeighbourIndex, keys: jax.Array) -> jax.Array:
    """The leaf each ``[s, a]`` key falls in, following the split coordinates. ``[M, d] -> int32 [M]``."""
    depth, leaves, _ = _shape(index)

    def down(_, node):
        dim = index.split_dim[node]
        right = jnp.take_along_axis(keys, dim[:, None], axis=1)[:, 0] > index.split_val[node]
        return 2 * node + 1 + right.astype(jnp.int32)

    root = jnp.zeros(keys.shape[0], jnp.int32)
    return (jax.lax.fori_loop(0, depth, down, root) if depth else root) - (leaves - 1)


def _windows(x: jax.Array, starts: jax.Array, size: int) -> jax.Array:
    """``x[start : start + size]`` for each start: one gather of contiguous windows. ``-> [P, size, ...]``."""
    return jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(x, s, size))(starts)


def _scan_slots(index: NeighbourIndex, beta, qs, qa, start, size: int):
    """Per query ``[P]``: the minimal distance in slots ``start .. start + size - 1`` and the lowest row at it."""
    n = index.positions.shape[0]
    rows = _windows(index.rows, start, size)  # [P, size]
    d = _sq_dist(beta, _windows(index.states, start, size), _windows(index.actions, start, size),
                 (beta * qs)[:, None], qa[:, None])
    return _lexmin(jnp.where(rows < n, d, jnp.inf), rows, n)


def _lower_bound(index: NeighbourIndex, scale, low, high, first, count: int):
    """A lower bound, below float32 rounding, on the squared key distance from each query to every row
    of each of the nodes ``first .. first + count - 1`` (per query). ``-> [P, count]``.

    ``low``/``high`` ``[P, d]`` are the query's keys ``[s, a]`` moved down/up by their rounding margin
    (the boxes carry the rows' own, see :mod:`offreg.agents.neighbour_index`); ``scale`` is ``beta``
    on the state coordinates and 1 on the action ones.
    """
    lo, hi = _windows(index.lo, first, count), _windows(index.hi, first, count)  # [P, count, d]
    gap = jnp.maximum(jnp.maximum(lo - high[:, None], low[:, None] - hi), 0.0) * scale
    return _sum_squares(gap) * (1.0 - _LB_MARGIN)


def _traverse(index: NeighbourIndex, beta, qs, qa, r_ub, d_ub, capacity: int):
    """Level-synchronous branch and bound for ``[M]`` queries with upper bounds ``(r_ub, d_ub)``.

    The live (query, node) pairs are the first ``count`` entries of arrays of ``capacity`` entries.
    The search starts from every node at the level ``depth % _HOP``; each step (:func:`_step`)
    replaces every live pair by the node's descendants ``_HOP`` levels down whose bound does not
    exceed the query's ``d_ub`` (a deeper box's bound is tighter and as valid), in order, on the
    smallest of :data:`_SIZES` that holds the live pairs (``lax.switch``). The steps are one loop.

    Returns:
      ``(row [M], dist_sq [M], fits bool [M], leaf pairs scanned)``: where ``fits``, the exact answer;
      elsewhere (some of the query's pairs exceeded ``capacity``) a valid upper bound.
    """
    depth, leaves, cap = _shape(index)
    m, n = qs.shape[0], index.positions.shape[0]
    # Queries in order of their bound, nearest first: when the capacity cuts, it cuts the widest searches.
    order = jnp.argsort(d_ub).astype(jnp.int32)
    qs, qa, r_ub, d_ub = qs[order], qa[order], r_ub[order], d_ub[order]
    keys = jnp.concatenate([qs, qa], axis=-1).astype(index.lo.dtype)
    margin = KEY_ROUNDING * jnp.abs(keys)  # |fl(beta x) - beta x| <= u beta |x| for the query's coordinates
    scale = jnp.where(jnp.arange(keys.shape[1]) < qs.shape[1], beta, 1.0).astype(keys.dtype)
    query = (keys - margin, keys + margin, scale, d_ub)
    # The search starts from every node of the level that leaves a multiple of _HOP levels below it.
    start = depth % _HOP
    width = 2**start
    capacity = max(capacity, m * width)
    sizes = [s for s in _SIZES if s < capacity] + [capacity]
    pad = (0, capacity - m * width)
    pairs = (jnp.pad(jnp.repeat(jnp.arange(m, dtype=jnp.int32), width), pad),
             jnp.pad(jnp.tile(jnp.arange(width - 1, 2 * width - 1, dtype=jnp.int32), m), pad),
             jnp.int32(m * width), jnp.int32(m))
    steps = [functools.partial(_step, index, query, _HOP, s) for s in sizes]
    if depth >= _HOP:
        pairs = jax.lax.fori_loop(0, depth // _HOP, lambda _, p: _sized(p[2], sizes, steps, p), pairs)
    qid, node, count, first_cut = pairs

    def leaf_scan(size):
        live = jnp.arange(size) < count
        d, r = _scan_slots(index, beta, qs[qid[:size]], qa[qid[:size]], (node[:size] - (leaves - 1)) * cap, cap)
        d = jnp.where(live, d, jnp.inf)
        best_d = jnp.minimum(d_ub, jnp.full(m, jnp.inf, d.dtype).at[qid[:size]].min(d))
        best_r = jnp.full(m, n, jnp.int32).at[qid[:size]].min(jnp.where(d == best_d[qid[:size]], r, n))
        return best_r, best_d

    best_r, best_d = _sized(count, sizes, [functools.partial(leaf_scan, s) for s in sizes])
    best_r = jnp.minimum(best_r, jnp.where(d_ub == best_d, r_ub, n))
    back = jnp.zeros_like(order).at[order].set(jnp.arange(m, dtype=order.dtype))  # the inverse permutation
    return best_r[back], best_d[back], (jnp.arange(m) < first_cut)[back], count


def _step(index: NeighbourIndex, query, hop: int, size: int, pairs):
    """One step of :func:`_traverse` on the first ``size`` of its pairs ``(qid, node, count, first_cut)``.

    The survivors are scattered to their running count, so the pairs stay sorted by query; when some
    are cut off (over the capacity) they are the last ones, and ``first_cut`` (the first query that
    lost a pair) marks every query from there on as not fitting."""
    low, high, scale, d_ub = query
    qid_buf, node_buf, count, first_cut = pairs
    capacity = qid_buf.shape[0]
    qid, node = qid_buf[:size], node_buf[:size]
    first = (node + 1) * 2**hop - 1  # the node's descendants hop levels down: first .. first + 2^hop - 1
    lb = _lower_bound(index, scale, low[qid], high[qid], first, 2**hop)
    keep = ((jnp.arange(size) < count)[:, None] & (lb <= d_ub[qid][:, None])).reshape(-1)
    running = jnp.cumsum(keep.astype(jnp.int32))
    dest = jnp.where(keep, running - 1, capacity)  # in order; past the capacity (and dropped) -> cut
    qid_all = jnp.repeat(qid, 2**hop)
    cut = jnp.minimum(jnp.searchsorted(running, capacity + 1, side="left"), keep.shape[0] - 1)
    first_cut = jnp.minimum(first_cut, jnp.where(running[-1] > capacity, qid_all[cut], first_cut))
    child = (first[:, None] + jnp.arange(2**hop, dtype=jnp.int32)).reshape(-1)
    return (qid_buf.at[dest].set(qid_all, mode="drop"), node_buf.at[dest].set(child, mode="drop"),
            jnp.minimum(running[-1], capacity), first_cut)


def _sized(count, sizes, fns, *args):
    """``fns[i](*args)`` for the smallest ``sizes[i] >= count`` (see :func:`_branch`; a larger size answers
    whatever a smaller one does)."""
    return _branch(jnp.minimum(jnp.searchsorted(jnp.array(sizes), count, side="left"), len(sizes) - 1), fns, *args)


def _branch(branch, fns, *args):
    """``fns[branch](*args)`` (a ``lax.switch``) where a higher branch is always a correct answer too.

    Under the engine's seed ``vmap`` (axis :data:`offreg.seeds.SEED_AXIS`) the branch is first
    max-reduced over the seeds, so the switch stays a real branch instead of a select that runs every
    branch; each seed then gets the higher branch's (also exact) answer. Under an unnamed ``vmap`` it
    degrades to that select (correct, slower). (A ``while_loop`` run 0 or 1 times cost on XLA CPU about
    as much as its body even when the body did not run.)"""
    try:
        branch = jax.lax.pmax(branch, SEED_AXIS)
    except NameError:  # not under the engine's seed vmap
        pass
    return jax.lax.switch(branch, fns, *args)
