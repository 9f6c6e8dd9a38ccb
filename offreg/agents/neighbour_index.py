"""PRDC's neighbour index: what the exact search of :mod:`offreg.agents.neighbours` needs, built once
per dataset on the host.

A balanced KD-tree over the dataset's rows ``[S, A]`` (normalized states, actions): every node is
split at the median of one coordinate, so the ``2^D`` leaves hold ``ceil(N / 2^D)`` or one row fewer,
and every node keeps the bounding box of its rows *in states and in actions separately*. The rows
are stored leaf by leaf (leaf ``i`` in slots ``[i * cap, (i + 1) * cap)``, a spare slot marked empty).
The boxes bound the key distance ``||[beta S, A] - [beta s, a]||`` from below for *every* ``beta``
(``beta^2 gap_S^2 + gap_A^2``), so one index serves every ``beta``: a ``--sweep beta=...`` shares it.
Which coordinate a node splits (the one of largest variance in ``[REFERENCE_BETA * S, A]``) only decides
how well the tree prunes, never what the search returns. See :mod:`offreg.agents.neighbours` for the search.

Building takes seconds (a few numpy passes per tree level, on every core), and :func:`build_or_load` keeps
every index it builds on disk (``<OFFREG_DATA_DIR>/neighbour_index/prdc-<key>.npz``,
``$OFFREG_INDEX_CACHE`` to move it or ``off`` to turn it off) and loads it in every later run, resume
and leaderboard job. The key is a BLAKE2b fingerprint of the format version, the leaf size and the
exact bytes of the states (already normalized: the normalization is part of them) and actions. A file
is trusted only if it reads back (``allow_pickle=False``, zip CRCs), carries the same key, has the
expected shapes and dtypes, and holds exactly the given states and actions; otherwise it is rebuilt
with a one-line note.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from offreg.atomic import atomic_write
from offreg.data.catalogue import offreg_data_dir
from offreg.errors import ConfigError

MAX_BLOCK = 4096
"""Largest ``block`` of the brute-force scan: the slots are padded by this many empty ones."""

KEY_ROUNDING = 1.2e-7
"""Twice float32's unit roundoff: the per-coordinate rounding of ``fl(beta x)``, relative to ``|x|``
(the boxes are widened by it here, the queries in :mod:`offreg.agents.neighbours`)."""

REFERENCE_BETA = 2.0
"""The ``beta`` (PRDC's default) at which a node's split coordinate is chosen; any ``beta`` is exact."""


class NeighbourIndex(NamedTuple):
    """The device-resident search index (a pytree of arrays; ``beta``-independent).

    Nodes are numbered as a heap: the root is 0, the children of ``p`` are ``2p + 1`` and ``2p + 2``,
    the ``L = 2^D`` leaves are nodes ``L - 1 .. 2L - 2``. A "slot" is a place in the leaf-by-leaf
    storage; leaf ``i`` owns slots ``i * cap .. (i + 1) * cap - 1`` with ``cap = rows.shape[0] // L``.

    Attributes:
      states: float32 ``[L * cap + MAX_BLOCK, ds]`` the (normalized) dataset states by slot; empty slots zero.
      actions: float32 ``[L * cap + MAX_BLOCK, da]`` the dataset actions by slot.
      rows: int32 ``[L * cap]`` the dataset row in each slot, ``N`` where the slot is empty.
      positions: int32 ``[N]`` the slot of each dataset row (the inverse of ``rows``).
      lo: float32 ``[2L - 1, ds + da]`` per node, the smallest ``[S, A]`` of its rows, coordinate-wise,
        lowered by ``KEY_ROUNDING`` times the coordinate's magnitude (the keys' float32 rounding).
      hi: float32 ``[2L - 1, ds + da]`` per node, the largest, raised likewise.
      split_dim: int32 ``[L - 1]`` the coordinate each internal node splits.
      split_val: float32 ``[L - 1]`` the largest value of that coordinate in its left child.
    """

    states: jax.Array
    actions: jax.Array
    rows: jax.Array
    positions: jax.Array
    lo: jax.Array
    hi: jax.Array
    split_dim: jax.Array
    split_val: jax.Array


def index_nbytes(index: NeighbourIndex) -> dict[str, int]:
    """Device memory of each array of ``index`` in bytes, plus ``total``."""
    out = {name: int(np.prod(a.shape)) * a.dtype.itemsize for name, a in index._asdict().items()}
    out["total"] = sum(out.values())
    return out


def tree_shape(n: int, leaf_size: int) -> tuple[int, int]:
    """``(depth D, cap)`` of the tree over ``n`` rows: the fewest levels whose leaves hold ``<= leaf_size``."""
    depth = max(0, int(np.ceil(np.log2(n / leaf_size)))) if n > leaf_size else 0
    return depth, -(-n // 2**depth)


def build_index(states, actions, leaf_size: int = 8, progress: bool | None = None) -> NeighbourIndex:
    """Build the index on the host (numpy; seconds per million rows).

    Args:
      states: ``[N, ds]`` float32 normalized dataset states (the rows the batches are drawn from).
      actions: ``[N, da]`` dataset actions.
      leaf_size: most rows per leaf (``>= 2``). Smaller leaves prune more tightly and make a deeper
        tree; speed only, never results.
      progress: a progress bar on stderr (``None``: only when stderr is a terminal).

    Returns:
      A :class:`NeighbourIndex` on the default device.

    Raises:
      ConfigError: ``leaf_size < 2`` or the arrays do not match.
    """
    return _to_device(_build_arrays(*_checked(states, actions, leaf_size), progress))


def _checked(states, actions, leaf_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(states, actions)`` as C-contiguous float32 arrays and ``leaf_size``, validated."""
    s = np.ascontiguousarray(states, np.float32)
    a = np.ascontiguousarray(actions, np.float32)
    if s.ndim != 2 or a.ndim != 2 or s.shape[0] != a.shape[0] or s.shape[0] == 0:
        raise ConfigError(
            f"neighbour index: states {s.shape} and actions {a.shape} must be [N, ds] and [N, da] with the same N > 0"
        )
    if leaf_size < 2:
        raise ConfigError(f"neighbour index: leaf_size must be >= 2, got {leaf_size}")
    return s, a, leaf_size


def _build_arrays(s: np.ndarray, a: np.ndarray, leaf_size: int, progress: bool | None) -> dict[str, np.ndarray]:
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
    """Slots, boxes and splits from the leaf order of :func:`_build_arrays` (``x``: the rows ``[S, A]``,
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


def _to_device(arrays: dict[str, np.ndarray]) -> NeighbourIndex:
    return NeighbourIndex(**{name: jnp.asarray(arrays[name]) for name in NeighbourIndex._fields})


# --- the on-disk cache -----------------------------------------------------------------------------
FORMAT_VERSION = 3
"""Bumped whenever the arrays or their meaning change: older files then no longer match."""


def cache_dir() -> Path | None:
    """Where :func:`build_or_load` keeps indexes: ``$OFFREG_INDEX_CACHE`` if set (``off`` disables
    the cache), else ``offreg_data_dir() / "neighbour_index"``, beside the dataset cache."""
    env = os.environ.get("OFFREG_INDEX_CACHE", "")
    if env.strip().lower() in ("off", "0", "none"):
        return None
    return Path(env).expanduser() if env else offreg_data_dir() / "neighbour_index"


def fingerprint(states: np.ndarray, actions: np.ndarray, leaf_size: int) -> str:
    """The cache key: BLAKE2b over the format version, the leaf size, and the shapes and bytes of the arrays."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"prdc-neighbour-index v{FORMAT_VERSION} leaf_size={leaf_size} {states.shape} {actions.shape}".encode())
    h.update(memoryview(states).cast("B"))
    h.update(memoryview(actions).cast("B"))
    return h.hexdigest()


def build_or_load(states, actions, leaf_size: int = 8, progress: bool | None = None,
                  directory: str | os.PathLike | None = None) -> NeighbourIndex:
    """:func:`build_index`, loaded from the on-disk cache when an index of these arrays and leaf size is there.

    A newly built index is written there (atomically). A cached file that cannot be read or does not
    match is never used: it is rebuilt and replaced, with a one-line note on stderr.

    Args:
      states, actions, leaf_size, progress: as :func:`build_index`.
      directory: the cache directory; default :func:`cache_dir` (``None`` there: no cache).
    """
    s, a, leaf_size = _checked(states, actions, leaf_size)
    folder = Path(directory) if directory is not None else cache_dir()
    if folder is None:
        return _to_device(_build_arrays(s, a, leaf_size, progress))
    key = fingerprint(s, a, leaf_size)
    path = folder / f"prdc-{key}.npz"
    if path.exists():
        try:
            return _to_device(_read_cache(path, key, s, a, leaf_size))
        except Exception as e:  # noqa: BLE001 - any unreadable or mismatched file is rebuilt, never trusted
            reason = " ".join(str(e).split()) or type(e).__name__
            print(f"note: PRDC's neighbour index cache {path} is unusable ({reason}); rebuilding it", file=sys.stderr)
    arrays = _build_arrays(s, a, leaf_size, progress)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, cache_key=np.array(key), **arrays)
            f.flush()
            os.fsync(f.fileno())

    try:
        atomic_write(path, write)
    except OSError as e:  # a read-only or full disk costs the next run a rebuild, not this run
        print(f"note: could not cache PRDC's neighbour index at {path} ({e}); it will be built again next time",
              file=sys.stderr)
    return _to_device(arrays)


def _read_cache(path: Path, key: str, s: np.ndarray, a: np.ndarray, leaf_size: int) -> dict[str, np.ndarray]:
    """The arrays of a cached index, after checking them against the key and the data; raises if unusable."""
    n, ds = s.shape
    da = a.shape[1]
    depth, cap = tree_shape(n, leaf_size)
    slots, nodes = 2**depth * cap, 2 ** (depth + 1) - 1
    expected = {
        "states": ((slots + MAX_BLOCK, ds), np.float32), "actions": ((slots + MAX_BLOCK, da), np.float32),
        "rows": ((slots,), np.int32), "positions": ((n,), np.int32),
        "lo": ((nodes, ds + da), np.float32), "hi": ((nodes, ds + da), np.float32),
        "split_dim": ((nodes // 2,), np.int32), "split_val": ((nodes // 2,), np.float32),
    }
    with np.load(path, allow_pickle=False) as f:
        if set(f.files) != {"cache_key", *expected}:
            raise ValueError(f"arrays {sorted(f.files)} are not those of format v{FORMAT_VERSION}")
        if str(f["cache_key"]) != key:
            raise ValueError(f"its key {str(f['cache_key'])[:12]}... is not {key[:12]}...")
        arrays = {name: f[name] for name in expected}
    for name, (shape, dtype) in expected.items():
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            raise ValueError(f"{name} is {arrays[name].dtype}{list(arrays[name].shape)}, expected "
                             f"{np.dtype(dtype)}{list(shape)}")
    pos = arrays["positions"]
    if not (np.all((pos >= 0) & (pos < slots)) and np.array_equal(arrays["rows"][pos], np.arange(n))
            and np.count_nonzero(arrays["rows"] < n) == n
            and np.array_equal(arrays["states"][pos], s) and np.array_equal(arrays["actions"][pos], a)):
        raise ValueError("its rows are not the dataset's")
    _check_tree(arrays, depth)
    return arrays


def _check_tree(arrays: dict[str, np.ndarray], depth: int) -> None:
    """Raises unless every node's box holds its children's boxes and every leaf's box its rows (so a
    file with garbled boxes or splits can never make the search skip a row)."""
    lo, hi, leaves = arrays["lo"], arrays["hi"], 2**depth
    inner = np.arange(leaves - 1)
    for child in (2 * inner + 1, 2 * inner + 2):
        if not (np.all(lo[inner] <= lo[child]) and np.all(hi[inner] >= hi[child])):
            raise ValueError("a node's box does not hold its children's")
    cap = arrays["rows"].shape[0] // leaves
    full = arrays["rows"] < arrays["positions"].shape[0]
    x = np.concatenate([arrays["states"], arrays["actions"]], axis=1)[: leaves * cap].reshape(leaves, cap, -1)
    inside = (x >= lo[leaves - 1:, None]) & (x <= hi[leaves - 1:, None])
    if not np.all(inside.all(-1) | ~full.reshape(leaves, cap)):
        raise ValueError("a leaf's box does not hold its rows")
    if not np.all((arrays["split_dim"] >= 0) & (arrays["split_dim"] < x.shape[-1])):
        raise ValueError("a split coordinate is out of range")
