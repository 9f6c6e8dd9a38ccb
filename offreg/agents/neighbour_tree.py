"""The KD-tree behind PRDC's neighbour index, built on the host (numpy): the tree's shape, its median
splits, the leaf-by-leaf storage of the rows and the nodes' boxes (:mod:`offreg.agents.neighbour_index`
has the index, its cache and its layout on the device).
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np

MAX_BLOCK = 4096
"""Largest ``block`` of the brute-force scan: the slots are padded by this many empty ones."""

KEY_ROUNDING = 1.2e-7
"""Twice float32's unit roundoff: the per-coordinate rounding of ``fl(beta x)``, relative to ``|x|``
(the boxes are widened by it here, the queries in :mod:`offreg.agents.neighbours`)."""

REFERENCE_BETA = 2.0
"""The ``beta`` (PRDC's default) at which a node's split coordinate is chosen; any ``beta`` is exact."""


def tree_shape(n: int, leaf_size: int) -> tuple[int, int]:
    """``(depth D, cap)`` of the tree over ``n`` rows: the fewest levels whose leaves hold ``<= leaf_size``."""
    depth = max(0, int(np.ceil(np.log2(n / leaf_size)))) if n > leaf_size else 0
    return depth, -(-n // 2**depth)


def build_arrays(s: np.ndarray, a: np.ndarray, leaf_size: int, progress: bool | None) -> dict[str, np.ndarray]:
    """The fields of :class:`NeighbourIndex` as host arrays.

    Level by level, every segment of the current order is split at the median of its coordinate of
    largest variance (``REFERENCE_BETA``-scaled states, actions), the lower ``ceil(m / 2)`` rows first, so
    leaves never differ by more than one row and none is empty (``leaf_size >= 2``). Each level's
    segments are shared among the CPU's cores (threads: numpy's sorts and reductions release the
    GIL); see :func:`_split`.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    n, ds = s.shape
    x = np.concatenate([s, a], axis=1)
    weight = np.concatenate([np.full(ds, REFERENCE_BETA, np.float32), np.ones(a.shape[1], np.float32)])
    depth, cap = tree_shape(n, leaf_size)
    order = np.arange(n)
    sizes = np.array([n])
    split_dim, split_val = [], []
    workers = max(1, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool, tqdm(
            total=depth, desc="building PRDC's neighbour index", unit=" levels", file=sys.stderr,
            disable=None if progress is None else not progress, leave=False, dynamic_ncols=True) as bar:
        for _ in range(depth):
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            dims, values = np.empty(len(sizes), np.int64), np.empty(len(sizes), np.float32)
            new_order = np.empty_like(order)
            cuts = np.unique(np.searchsorted(starts, np.linspace(0, n, workers + 1)[1:-1]))
            groups = zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(sizes)]]), strict=True)
            list(pool.map(functools.partial(_split, x, weight, order, sizes, starts, new_order, dims, values), groups))
            order = new_order
            left = (sizes + 1) // 2
            split_dim.append(dims)
            split_val.append(values)
            sizes = np.stack([left, sizes - left], axis=1).reshape(-1)
            bar.update(1)
    return _arrays(x, ds, order, sizes, cap, depth, split_dim, split_val)


def _split(x, weight, order, sizes, starts, new_order, dims, values, group) -> None:
    """Split segments ``lo .. hi - 1`` (``group``) of one level (rows ``order[starts[lo]:...]``) into ``new_order``,
    ``dims`` and ``values`` (each segment's coordinate and the largest value of its lower half).

    A few large segments are partitioned one by one (``argpartition``, linear time); many small ones
    at once, by one ``lexsort`` by (segment, value)."""
    lo, hi = group
    if lo >= hi:
        return
    r0, r1 = starts[lo], starts[hi - 1] + sizes[hi - 1]
    o, sz, st = order[r0:r1], sizes[lo:hi], starts[lo:hi] - r0
    xo = x[o]
    # the coordinate of largest variance (a range-based choice pruned a third fewer pairs at 1M rows)
    mean = np.add.reduceat(xo, st, axis=0, dtype=np.float64) / sz[:, None]
    var = np.add.reduceat(np.square(xo), st, axis=0, dtype=np.float64) / sz[:, None] - np.square(mean)
    d = np.argmax(var * np.square(weight), axis=1)
    left = (sz + 1) // 2
    dims[lo:hi] = d
    if hi - lo <= 64:
        for i in range(hi - lo):
            v = xo[st[i]: st[i] + sz[i], d[i]]
            p = np.argpartition(v, left[i] - 1)
            new_order[r0 + st[i]: r0 + st[i] + sz[i]] = o[st[i] + p]
            values[lo + i] = v[p[left[i] - 1]]
        return
    seg = np.repeat(np.arange(hi - lo), sz)
    v = xo[np.arange(len(o)), d[seg]]
    within = np.lexsort((v, seg))  # by segment, then value: each segment's lower half first
    new_order[r0:r1] = o[within]
    values[lo:hi] = v[within][st + left - 1]


def _arrays(x, ds, order, sizes, cap, depth, split_dim, split_val) -> dict[str, np.ndarray]:
    """Slots, boxes and splits from the leaf order of :func:`build_arrays` (``x``: the rows ``[S, A]``,
    ``ds`` state coordinates)."""
    n = x.shape[0]
    leaves = 2**depth
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    slot = (np.repeat(np.arange(leaves) * cap, sizes) + np.arange(n) - np.repeat(starts, sizes)).astype(np.int64)
    rows = np.full(leaves * cap, n, np.int32)
    rows[slot] = order
    x = x[order]
    states = np.zeros((leaves * cap + MAX_BLOCK, ds), np.float32)  # empty slots and the padding: zeros
    actions = np.zeros((leaves * cap + MAX_BLOCK, x.shape[1] - ds), np.float32)
    states[slot], actions[slot] = x[:, :ds], x[:, ds:]
    lo = np.empty((2 * leaves - 1, x.shape[1]), np.float32)
    hi = np.empty_like(lo)
    lo[leaves - 1:], hi[leaves - 1:] = np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)
    # Widened by the rounding of the keys, |fl(beta x) - beta x| <= u beta |x|, so that a box bounds
    # the float32 keys of its rows (and never excludes a row that float32 distances would find).
    margin = KEY_ROUNDING * np.maximum(np.abs(lo[leaves - 1:]), np.abs(hi[leaves - 1:])).astype(np.float64)
    lo[leaves - 1:] = np.nextafter((lo[leaves - 1:] - margin).astype(np.float32), np.float32(-np.inf))
    hi[leaves - 1:] = np.nextafter((hi[leaves - 1:] + margin).astype(np.float32), np.float32(np.inf))
    for level in range(depth - 1, -1, -1):  # parents from children, bottom up
        p = np.arange(2**level - 1, 2 ** (level + 1) - 1)
        lo[p] = np.minimum(lo[2 * p + 1], lo[2 * p + 2])
        hi[p] = np.maximum(hi[2 * p + 1], hi[2 * p + 2])
    positions = np.empty(n, np.int32)
    positions[order] = slot
    return {
        "states": states, "actions": actions, "rows": rows, "positions": positions,
        "lo": lo, "hi": hi,
        "split_dim": np.concatenate([np.zeros(0, np.int32), *split_dim]).astype(np.int32),
        "split_val": np.concatenate([np.zeros(0, np.float32), *split_val]).astype(np.float32),
    }


BOX_CHUNK = 16
"""Most coordinates of a box array on the device: XLA's CPU backend gathers and reduces rows of up to
17 float32s 1.5-2 times faster per coordinate than wider ones (``experiments/bench/box_width.py``),
so wider boxes are split."""


def box_chunks(box: np.ndarray) -> np.ndarray:
    """``[nodes, d] -> [C, nodes, W]``: ``C = ceil(d / BOX_CHUNK)`` chunks of ``W = ceil(d / C)``
    coordinates each, the last padded with zeros (a zero coordinate in the box and the query adds 0)."""
    nodes, d = box.shape
    c = -(-d // BOX_CHUNK)
    w = -(-d // c)
    padded = np.zeros((nodes, c * w), box.dtype)
    padded[:, :d] = box
    return np.ascontiguousarray(padded.reshape(nodes, c, w).transpose(1, 0, 2))
