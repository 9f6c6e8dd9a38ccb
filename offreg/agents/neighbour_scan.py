"""Scans of the dataset's rows in PRDC's key space: the exact reference every search is checked
against (:func:`brute_force_nearest`) and the row scans :mod:`offreg.agents.neighbours` runs inside
its tree search.

Distances are float32 sums of squared direct differences of the float32 keys ``[beta * s, a]``
(:func:`_sq_dist`); each query keeps the lexicographic minimum of (distance, row), so ties go to the
lowest dataset row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from offreg.agents.neighbour_index import MAX_BLOCK, NeighbourIndex


def sum_squares(x):
    """``sum(x * x, axis=-1)`` as a reduction XLA's CPU backend fuses with the gathers feeding it: with jax
    0.10 a plain add- or min-reduction of 4096 or more elements goes to a library kernel that first writes
    out every gathered input; a step of ``max(a + b, 0)``, equal for non-negative terms, does not."""
    return jax.lax.reduce(x * x, jnp.zeros((), x.dtype), lambda a, b: jnp.maximum(a + b, 0.0), (x.ndim - 1,))


def _min(x, axis: int):
    """``jnp.min(x, axis)`` for NaN-free ``x``, kept in XLA's fused loop (see :func:`sum_squares`)."""
    return jax.lax.reduce(x, jnp.array(jnp.inf, x.dtype), lambda a, b: jnp.where(a < b, a, b), (axis,))


def _sq_dist(beta, states, actions, q_state_keys, q_actions):
    """Squared key distance ``||beta*S - q_s||^2 + ||A - q_a||^2`` by direct differences, float32."""
    return sum_squares(beta * states - q_state_keys) + sum_squares(actions - q_actions)


def lexmin(d, rows, n):
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
        d_b, r_b = lexmin(d, jnp.broadcast_to(rows, d.shape), n)
        better = (d_b < best_d) | ((d_b == best_d) & (r_b < best_r))
        return (jnp.where(better, d_b, best_d), jnp.where(better, r_b, best_r)), None

    init = (jnp.full((m,), jnp.inf, dtype), jnp.full((m,), n, jnp.int32))
    (best_d, best_r), _ = jax.lax.scan(step, init, jnp.arange(0, slots, block))
    return best_r, best_d


def windows(x: jax.Array, starts: jax.Array, size: int) -> jax.Array:
    """``x[start : start + size]`` for each start: one gather of contiguous windows. ``-> [P, size, ...]``."""
    return jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(x, s, size))(starts)


def scan_slots(index: NeighbourIndex, beta, qs, qa, start, size: int):
    """Per query ``[P]``: the minimal distance in slots ``start .. start + size - 1`` and the lowest row at it."""
    n = index.positions.shape[0]
    rows = windows(index.rows, start, size)  # [P, size]
    d = _sq_dist(beta, windows(index.states, start, size), windows(index.actions, start, size),
                 (beta * qs)[:, None], qa[:, None])
    return lexmin(jnp.where(rows < n, d, jnp.inf), rows, n)


def scan_open(index: NeighbourIndex, beta, query_states, query_actions, row, d, done, chunk: int, block: int):
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
