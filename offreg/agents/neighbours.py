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
   rows under its ancestor ``_UPPER_LEVELS`` levels up (contiguous slots); with ``hint_actions`` (PRDC
   passes the batch's own actions) the rows around ``[s, hint]`` too. For PRDC the query state is a
   dataset row whose own action is the hint, so the bound is at most the distance to that row, and
   usually the rows near the policy's action or near the data's are closer still.
3. **Level-synchronous branch and bound, vectorized across the batch** (:func:`_traverse`): from the
   root, every step replaces each live (query, node) pair by the node's descendants ``_HOP`` levels
   down whose lower bound does not exceed the query's upper bound, and compacts the survivors into
   fixed-size arrays (static shapes), a block of pairs at a time. At the leaves
   their rows are scanned; each query keeps its lexicographic minimum of (distance, row). A node is
   dropped only if every row in it is farther than a row already found: the answer is exact.
4. **Exact fallbacks.** Queries whose pairs did not fit ``capacity`` are searched again with
   ``_WIDE`` times the room, and any still open ``chunk`` at a time by a scan of every row
   (:func:`offreg.agents.neighbour_scan.brute_force_nearest`, also the tests' reference). The cost
   follows the leaves within a query's distance (the data's density near it), not the number of rows.
   docs/prdc_a2pr.md has more.

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
from jax.custom_batching import custom_vmap

from offreg.agents.neighbour_index import NeighbourIndex
from offreg.agents.neighbour_scan import lexmin, scan_open, scan_slots, sum_squares, windows
from offreg.agents.neighbour_tree import KEY_ROUNDING

# A step (and the leaf scan) works on one block of 256 or 512 pairs, the smallest that holds them, or on
# as many blocks of _BLOCK pairs as hold them, in a loop: its cost follows the live pairs to within a
# block (the deepest steps hold thousands of pairs at 1-2M rows), and the program holds three variants.
_SMALL = (256, 512)
_BLOCK = 1024
_MEMBERS = "nearest_members"  # the vmap axis of a batch of several members (_per_member)
_WIDE = 4  # the second search, for the queries that did not fit, holds this many times the first's pairs
_HOP = 3  # tree levels per step: eight children per pair; fewer steps than with 2 (experiments/bench/scale.py)
_UPPER_LEVELS = 3  # the first upper bound scans the 2^3 leaves around the query's own
_LB_MARGIN = 4e-5  # relative, covers the float32 sums of the bound and of the distance (D <= 150)
_PAIR_BITS = 31  # a (query, node) pair is packed in the non-negative int32 range


def _shape(index: NeighbourIndex) -> tuple[int, int, int]:
    """``(depth D, leaves L, cap)`` of the index's tree, from its array shapes (static)."""
    leaves = (index.lo.shape[1] + 1) // 2
    return leaves.bit_length() - 1, leaves, index.rows.shape[0] // leaves


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
    hint_actions: jax.Array | None = None,
) -> SearchResult:
    """Exact nearest dataset row to each key ``[beta * s, a]``: vectorized KD-tree branch and bound.

    Jit-, scan- and vmap-safe; no host round trip. Under ``vmap`` (the engine's seeds) a batch of one
    member is searched unbatched, more members batched (:func:`_per_member`).

    Args:
      index: from :func:`offreg.agents.neighbour_index.build_index`.
      beta: scalar ``> 0`` (may be traced).
      query_states: ``[B, ds]`` unscaled states ``s`` (dataset rows or not).
      query_actions: ``[B, da]``.
      capacity: (query, node) pairs the first search holds per step (static): speed and memory only.
      chunk: queries per chunk of the last-resort scan (static).
      block: slots per step of the last-resort scan (static, ``<= MAX_BLOCK``).
      hint_actions: optional ``[B, da]`` actions whose neighbourhood ``[s, hint]`` may hold rows near
        the queries (PRDC: the batch's own actions); they only tighten the first upper bound (speed),
        never change the answer.

    Returns:
      A :class:`SearchResult`.
    """
    beta = jnp.asarray(beta, jnp.result_type(query_states, query_actions, index.states))
    search = functools.partial(_nearest, capacity=capacity, chunk=chunk, block=block)
    hint = () if hint_actions is None else (hint_actions,)
    return _per_member(search)(index, beta, query_states, query_actions, *hint)


def _nearest(index, beta, query_states, query_actions, hint_actions=None, *, capacity, chunk, block, members=None):
    """:func:`nearest` for one set of queries (``members``: see :func:`_branch`)."""
    b = query_states.shape[0]
    n = index.positions.shape[0]
    # --- an upper bound: the rows under the query's ancestor _UPPER_LEVELS above its leaf (contiguous) ---
    r_ub, d_ub = _first_bound(index, beta, query_states, query_actions, hint_actions)
    # --- every query at once; the queries that did not fit, again with room for many more pairs ---
    row, d, done, pairs = _traverse(index, beta, query_states, query_actions, r_ub, d_ub, capacity, members)
    fits = done

    def wider(row, d, done):  # a query already done gets the bound -1: no pairs
        bound = jnp.where(done, -1.0, d).astype(d.dtype)
        r, dq, ok, _ = _traverse(index, beta, query_states, query_actions, row, bound, _WIDE * capacity, members)
        return tuple(jnp.where(done, x, y) for x, y in ((row, r), (d, dq), (done, ok)))

    row, d, done = _branch(jnp.any(~done).astype(jnp.int32), [lambda *x: x, wider], members, row, d, done)
    # --- the rest (rare), chunk at a time, by a scan of every row ---
    # (behind a switch: a while_loop that runs no chunk still cost XLA CPU about as much as running one)
    scan = functools.partial(scan_open, index, beta, query_states, query_actions, chunk=chunk, block=block)
    none = lambda row, d, done: (row, d, jnp.int32(0))  # noqa: E731
    row, d, num_chunks = _branch(jnp.any(~done).astype(jnp.int32), [none, scan], members, row, d, done)
    action = index.actions[index.positions[jnp.clip(row, 0, n - 1)]]
    return SearchResult(row, action, d, fits, num_chunks, pairs.astype(jnp.float32) / b)


def _first_bound(index: NeighbourIndex, beta, qs, qa, hint_actions):
    """``(row [B], dist_sq [B])``: the nearest of the rows under the ancestor ``_UPPER_LEVELS`` above the
    leaf of each ``[s, a]`` and, with ``hint_actions``, of each ``[s, hint]`` (lowest row on ties)."""
    depth, _, cap = _shape(index)
    up = min(_UPPER_LEVELS, depth)
    guides = [qa] if hint_actions is None else [qa, hint_actions.astype(qa.dtype)]
    k, b = len(guides), qs.shape[0]
    # every window in one descent and one scan (their steps cost the same for k times the keys)
    node = _descend(index, jnp.concatenate([jnp.concatenate([qs, g], axis=-1) for g in guides]).astype(index.lo.dtype),
                    depth - up)
    d, r = scan_slots(index, beta, jnp.tile(qs, (k, 1)), jnp.tile(qa, (k, 1)), node * (cap << up), cap << up)
    d_ub, r_ub = lexmin(d.reshape(k, b).T, r.reshape(k, b).T, index.positions.shape[0])
    return r_ub, d_ub


def _descend(index: NeighbourIndex, keys: jax.Array, levels: int) -> jax.Array:
    """The node ``levels`` levels below the root each ``[s, a]`` key falls in, following the split
    coordinates, numbered within its level. ``[M, d] -> int32 [M]``."""

    def down(_, node):
        dim = index.split_dim[node]
        right = jnp.take_along_axis(keys, dim[:, None], axis=1)[:, 0] > index.split_val[node]
        return 2 * node + 1 + right.astype(jnp.int32)

    root = jnp.zeros(keys.shape[0], jnp.int32)
    return (jax.lax.fori_loop(0, levels, down, root) if levels else root) - (2**levels - 1)


def _lower_bound(index: NeighbourIndex, scale, low, high, first, count: int):
    """A lower bound, below float32 rounding, on the squared key distance from each query to every row
    of each of the nodes ``first .. first + count - 1`` (per query). ``-> [P, count]``.

    ``low``/``high`` ``[P, C * W]`` are the query's keys ``[s, a]`` moved down/up by their rounding
    margin (the boxes carry the rows' own, see :mod:`offreg.agents.neighbour_index`), zero-padded like
    the boxes' chunks; ``scale`` is ``beta`` on the state coordinates and 1 on the others.
    """
    total = 0.0
    for c in range(index.lo.shape[0]):  # one gather and sum per chunk of the boxes
        part = slice(c * index.lo.shape[2], (c + 1) * index.lo.shape[2])
        lo, hi = windows(index.lo[c], first, count), windows(index.hi[c], first, count)  # [P, count, W]
        gap = jnp.maximum(jnp.maximum(lo - high[:, None, part], low[:, None, part] - hi), 0.0) * scale[part]
        total = total + sum_squares(gap)
    return total * (1.0 - _LB_MARGIN)


def _traverse(index: NeighbourIndex, beta, qs, qa, r_ub, d_ub, capacity: int, members: str | None):
    """Level-synchronous branch and bound for ``[M]`` queries with upper bounds ``(r_ub, d_ub)``.

    The live (query, node) pairs are the first ``count`` entries of an int32 array of ``capacity``
    entries, each pair packed as ``query << bits | node`` (``bits`` holds every node number; more
    queries than fit are searched a group at a time). The search starts from every node at the level
    ``depth % _HOP``; each step (:func:`_step`) replaces every live pair by the node's descendants
    ``_HOP`` levels down whose bound does not exceed the query's ``d_ub`` (a deeper box's bound is
    tighter and as valid), in order, a block of the live pairs at a time (:func:`_blocks`). The steps
    are one loop.

    Returns:
      ``(row [M], dist_sq [M], fits bool [M], leaf pairs scanned)``: where ``fits``, the exact answer;
      elsewhere (some of the query's pairs exceeded ``capacity``) a valid upper bound.
    """
    depth, leaves, cap = _shape(index)
    m, n, bits = qs.shape[0], index.positions.shape[0], depth + 1
    group = (2**_PAIR_BITS - 1) >> bits
    if m > group:  # the packed pairs of this many queries would overflow int32
        parts = [_traverse(index, beta, *(x[i: i + group] for x in (qs, qa, r_ub, d_ub)), capacity, members)
                 for i in range(0, m, group)]
        return (*(jnp.concatenate(x) for x in list(zip(*parts, strict=True))[:3]), sum(p[3] for p in parts))
    # Queries in order of their bound, nearest first: when the capacity cuts, it cuts the widest searches.
    order = jnp.argsort(d_ub).astype(jnp.int32)
    qs, qa, r_ub, d_ub = qs[order], qa[order], r_ub[order], d_ub[order]
    keys = jnp.concatenate([qs, qa], axis=-1).astype(index.lo.dtype)
    keys = jnp.pad(keys, ((0, 0), (0, index.lo.shape[0] * index.lo.shape[2] - keys.shape[1])))  # as the boxes
    margin = KEY_ROUNDING * jnp.abs(keys)  # |fl(beta x) - beta x| <= u beta |x| for the query's coordinates
    scale = jnp.where(jnp.arange(keys.shape[1]) < qs.shape[1], beta, 1.0).astype(keys.dtype)
    query = (keys - margin, keys + margin, scale, d_ub, bits)
    # The search starts from every node of the level that leaves a multiple of _HOP levels below it.
    width = 2 ** (depth % _HOP)
    capacity = max(capacity, m * width)
    first = (jnp.arange(m, dtype=jnp.int32)[:, None] << bits) | jnp.arange(width - 1, 2 * width - 1, dtype=jnp.int32)
    room = -(-capacity // _BLOCK) * _BLOCK  # the pairs' array: whole blocks
    pairs = (jnp.pad(first.reshape(-1), (0, room - m * width)), jnp.int32(m * width), jnp.int32(m))

    def level(_, pairs):  # the next _HOP levels' pairs, into a new buffer
        buf, count, first_cut = pairs
        out, total, first_cut = _blocks(count, step, buf, (jnp.zeros_like(buf), jnp.int32(0), first_cut), members)
        return out, jnp.minimum(total, capacity), first_cut

    step = functools.partial(_step, index, query, _HOP, capacity)
    if depth >= _HOP:
        pairs = jax.lax.fori_loop(0, depth // _HOP, level, pairs)
    buf, count, first_cut = pairs

    def leaf_scan(live, packed, best):  # the leaves' rows; a query keeps its lexicographic minimum
        best_r, best_d = best
        qid, node = packed >> bits, packed & ((1 << bits) - 1)
        d, r = scan_slots(index, beta, qs[qid], qa[qid], (node - (leaves - 1)) * cap, cap)
        d = jnp.where(live, d, jnp.inf)
        new_d = best_d.at[qid].min(d)
        return jnp.where(new_d < best_d, n, best_r).at[qid].min(jnp.where(d == new_d[qid], r, n)), new_d

    best_r, best_d = _blocks(count, leaf_scan, buf, (jnp.full(m, n, jnp.int32), d_ub), members)
    best_r = jnp.minimum(best_r, jnp.where(d_ub == best_d, r_ub, n))
    back = jnp.zeros_like(order).at[order].set(jnp.arange(m, dtype=order.dtype))  # the inverse permutation
    return best_r[back], best_d[back], (jnp.arange(m) < first_cut)[back], count


def _step(index: NeighbourIndex, query, hop: int, capacity: int, live, packed, pairs):
    """One block of a step of :func:`_traverse`: its ``live`` pairs ``packed`` replaced by their descendants
    ``hop`` levels down whose bound does not exceed the query's ``d_ub``, appended to ``pairs = (out,
    count, first_cut)``, up to ``capacity`` pairs.

    The survivors are scattered to their running count (a prefix sum over the pairs, then over each
    pair's children), so the pairs stay sorted by query; when some are cut off (over the capacity)
    they are the last ones, and ``first_cut`` (the first query that lost a pair) marks every query
    from there on as not fitting."""
    low, high, scale, d_ub, bits = query
    out, count, first_cut = pairs
    qid, node = packed >> bits, packed & ((1 << bits) - 1)
    first = (node + 1) * 2**hop - 1  # the node's descendants hop levels down: first .. first + 2^hop - 1
    lb = _lower_bound(index, scale, low[qid], high[qid], first, 2**hop)
    keep = live[:, None] & (lb <= d_ub[qid][:, None])
    within = [keep[:, 0].astype(jnp.int32)]
    for c in range(1, 2**hop):
        within.append(within[-1] + keep[:, c])
    ends = count + jnp.cumsum(within[-1])  # survivors up to each pair, inclusive
    dest = jnp.where(keep, (ends - within[-1])[:, None] + jnp.stack(within, 1) - 1, capacity)  # past it: cut
    first_cut = jnp.minimum(first_cut, jnp.where(ends[-1] > capacity, qid[jnp.argmax(ends > capacity)], first_cut))
    child = (qid << bits)[:, None] | (first[:, None] + jnp.arange(2**hop, dtype=jnp.int32))
    return out.at[dest.reshape(-1)].set(child.reshape(-1), mode="drop"), ends[-1], first_cut


def _blocks(count, fn, buf, carry, members: str | None):
    """``carry = fn(live, packed, carry)`` over the first ``count`` pairs of ``buf``, a block at a time
    (``live``: which of the block's pairs are among them): one block of the smallest of :data:`_SMALL`
    that holds them, else blocks of :data:`_BLOCK` in a ``while_loop``."""

    def once(size, carry):
        return fn(jnp.arange(size) < count, buf[:size], carry)

    def loop(carry):
        def body(c):
            start = c[0] * _BLOCK
            live = start + jnp.arange(_BLOCK) < count
            return c[0] + 1, fn(live, jax.lax.dynamic_slice_in_dim(buf, start, _BLOCK), c[1])

        return jax.lax.while_loop(lambda c: c[0] * _BLOCK < count, body, (jnp.int32(0), carry))[1]

    branch = jnp.searchsorted(jnp.array([*_SMALL, buf.shape[0]]), count, side="left")  # buf: whole blocks
    return _branch(branch, [functools.partial(once, s) for s in _SMALL] + [loop], members, carry)


def _per_member(fn):
    """``fn`` (:func:`_nearest`) whose ``vmap`` over a batch of one runs it on the member itself instead of
    batching it, and over more members batches it with its switches max-reduced (:func:`_branch`).

    Batched over one member, the search would still pay for batching: every dynamic slice and scatter
    becomes a gather or a scatter with a batch coordinate, a ``while_loop`` selects each carry, and
    the switches need the reduction. One seed (the common run) then trains faster; for several seeds
    the batched search shares its fixed costs among them (on the CPU, ``lax.map`` over five seeds
    trained slower, docs/prdc_a2pr.md). Every member's answer is the same either way."""
    member = custom_vmap(fn)

    @member.def_vmap
    def _rule(axis_size, in_batched, *args):
        leaves, tree = jax.tree.flatten(args)
        batched = jax.tree.leaves(in_batched)
        if axis_size == 1:
            out = fn(*jax.tree.unflatten(tree, [x[0] if b else x for x, b in zip(leaves, batched, strict=True)]))
            out = jax.tree.map(lambda y: y[None], out)
        else:
            axes = tuple(jax.tree.unflatten(tree, [0 if b else None for b in batched]))
            out = jax.vmap(functools.partial(fn, members=_MEMBERS), in_axes=axes, axis_name=_MEMBERS)(*args)
        return out, jax.tree.map(lambda _: True, out)

    return member


def _branch(branch, fns, members: str | None, *args):
    """``fns[branch](*args)`` (a ``lax.switch``) where a higher branch is always a correct answer too.

    Batched over ``members`` (the name of :func:`_per_member`'s ``vmap`` axis) the branch is first
    max-reduced over them, so the switch stays a real branch instead of a select that runs every
    branch; each member then gets the higher branch's (also exact) answer."""
    if members is not None:
        branch = jax.lax.pmax(branch, members)
    return jax.lax.switch(branch, fns, *args)
