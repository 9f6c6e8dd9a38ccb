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

import hashlib
import os
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents.neighbour_tree import MAX_BLOCK, box_chunks, build_arrays, tree_shape
from offreg.atomic import atomic_write
from offreg.data.catalogue import offreg_data_dir
from offreg.errors import ConfigError


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
      lo: float32 ``[C, 2L - 1, W]`` per node, the smallest ``[S, A]`` of its rows, coordinate-wise,
        lowered by ``KEY_ROUNDING`` times the coordinate's magnitude (the keys' float32 rounding), in
        ``C`` chunks of ``W`` coordinates, zero past the last (:func:`box_chunks`).
      hi: float32 ``[C, 2L - 1, W]`` per node, the largest, raised likewise.
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
    return _to_device(build_arrays(*_checked(states, actions, leaf_size), progress))


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


def _to_device(arrays: dict[str, np.ndarray]) -> NeighbourIndex:
    boxes = {name: box_chunks(arrays[name]) for name in ("lo", "hi")}
    return NeighbourIndex(**{name: jnp.asarray(boxes.get(name, arrays[name])) for name in NeighbourIndex._fields})


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
        return _to_device(build_arrays(s, a, leaf_size, progress))
    key = fingerprint(s, a, leaf_size)
    path = folder / f"prdc-{key}.npz"
    if path.exists():
        try:
            return _to_device(_read_cache(path, key, s, a, leaf_size))
        except Exception as e:  # noqa: BLE001 - any unreadable or mismatched file is rebuilt, never trusted
            reason = " ".join(str(e).split()) or type(e).__name__
            print(f"note: PRDC's neighbour index cache {path} is unusable ({reason}); rebuilding it", file=sys.stderr)
    arrays = build_arrays(s, a, leaf_size, progress)

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
