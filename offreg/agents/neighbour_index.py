"""PRDC's neighbour index: what the exact search of :mod:`offreg.agents.neighbours` needs, built once
per dataset on the host.

For every dataset row ``j`` its ``K`` nearest rows in *state* space, ``C_j``, and a certified radius
``r_j``: every row outside ``C_j`` has state distance ``>= r_j`` from ``S_j``. Scaling by
``beta > 0`` does not change neighbours in state space, so one index serves every ``beta``. The rows
are stored in *slab order* (sorted by their projection on the states' first principal axis), with
the bitwise hashes that find a query state's own row. See :mod:`offreg.agents.neighbours` for the
search and the exactness argument.

Building takes minutes at a million rows, so :func:`build_or_load` keeps every index it builds on
disk (``<OFFREG_DATA_DIR>/neighbour_index/prdc-<key>.npz``, ``$OFFREG_INDEX_CACHE`` to move it or
``off`` to turn it off) and loads it in every later run, resume and leaderboard job. The key is a
BLAKE2b fingerprint of the format version, ``k`` and the exact bytes of the states (already
normalized: the normalization is part of them) and actions. A file is trusted only if it reads
back (``allow_pickle=False``, zip CRCs), carries the same key, has the expected shapes and dtypes,
and holds exactly the given states and actions; otherwise it is rebuilt with a one-line note.
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

from offreg.atomic import atomic_write
from offreg.data.catalogue import offreg_data_dir
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


def build_index(states, actions, k: int = 32, chunk: int = 65536, progress: bool | None = None) -> NeighbourIndex:
    """Build the index on the host with an exact KD-tree self-query (scipy, all CPU threads).

    Args:
      states: ``[N, ds]`` float32 normalized dataset states (the rows the batches are drawn from).
      actions: ``[N, da]`` dataset actions.
      k: candidates per row. Larger ``k`` certifies more queries (fewer fallbacks) at
        ``4 * N * k`` bytes of device memory.
      chunk: rows per KD-tree query call (bounds the host memory of the float64 results).
      progress: a progress bar on stderr (``None``: only when stderr is a terminal).

    Returns:
      A :class:`NeighbourIndex` on the default device.

    Raises:
      ConfigError: ``k < 1`` or the arrays do not match.
    """
    return _to_device(_build_arrays(*_checked(states, actions, k), chunk, progress))


def _checked(states, actions, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(states, actions)`` as C-contiguous float32 arrays and ``k``, validated."""
    s = np.ascontiguousarray(states, np.float32)
    a = np.ascontiguousarray(actions, np.float32)
    if s.ndim != 2 or a.ndim != 2 or s.shape[0] != a.shape[0] or s.shape[0] == 0:
        raise ConfigError(
            f"neighbour index: states {s.shape} and actions {a.shape} must be [N, ds] and [N, da] with the same N > 0"
        )
    if k < 1:
        raise ConfigError(f"neighbour index: k must be >= 1, got {k}")
    return s, a, k


def _build_arrays(s: np.ndarray, a: np.ndarray, k: int, chunk: int, progress: bool | None) -> dict[str, np.ndarray]:
    """The fields of :class:`NeighbourIndex` as host arrays."""
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
    cand, r_sq32 = _candidates(s, norms, k, chunk, progress)
    h = np.asarray(hash_rows(jnp.asarray(s)))
    h_order = np.argsort(h, kind="stable").astype(np.int32)
    pad = ((0, MAX_BLOCK), (0, 0))
    return {
        "states": np.pad(s, pad),
        "actions": np.pad(a, pad),
        "rows": order.astype(np.int32),
        "positions": np.argsort(order).astype(np.int32),
        "candidates": cand,
        "radius_sq": r_sq32.astype(np.float32),
        "hash_sorted": h[h_order],
        "hash_pos": h_order,
        "axis": axis.astype(np.float32),
        "proj": proj.astype(np.float32),
        "slab_margin": np.float32(1e-5 * (1.0 + float(norms.max()))),
        "sq_norm_states": np.pad(norms**2, (0, MAX_BLOCK)).astype(np.float32),
        "sq_norm_actions": np.pad(np.sum(a.astype(np.float64) ** 2, 1), (0, MAX_BLOCK)).astype(np.float32),
    }


def _to_device(arrays: dict[str, np.ndarray]) -> NeighbourIndex:
    return NeighbourIndex(**{name: jnp.asarray(arrays[name]) for name in NeighbourIndex._fields})


def _candidates(s: np.ndarray, norms: np.ndarray, k: int, chunk: int,
                progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
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
        from tqdm.auto import tqdm

        tree = cKDTree(s)
        with tqdm(total=n, desc="building PRDC's neighbour index", unit=" rows", file=sys.stderr,
                  disable=None if progress is None else not progress, leave=False, dynamic_ncols=True) as bar:
            for lo in range(0, n, chunk):
                hi = min(lo + chunk, n)
                dist, idx = tree.query(s[lo:hi], k=k + 1, workers=-1)
                cand[lo:hi] = idx[:, :k]
                radius[lo:hi] = dist[:, k]  # every row outside the first k is at least this far
                bar.update(hi - lo)
    # Keys are rounded to float32 after scaling by beta: |fl(beta x) - beta x| <= u * beta * |x|,
    # so beta * (r - u (|S_j| + max|S|)) bounds the key-space state distance from below.
    r = np.maximum(radius - _U * (norms + float(norms.max())), 0.0)
    r_sq = np.where(np.isinf(radius), np.inf, (r * r) * (1.0 - _REL_MARGIN))
    r_sq32 = r_sq.astype(np.float32)
    return cand, np.where(r_sq32.astype(np.float64) > r_sq, np.nextafter(r_sq32, np.float32(0)), r_sq32)


# --- the on-disk cache -----------------------------------------------------------------------------
FORMAT_VERSION = 1
"""Bumped whenever the arrays or their meaning change: older files then no longer match."""


def cache_dir() -> Path | None:
    """Where :func:`build_or_load` keeps indexes: ``$OFFREG_INDEX_CACHE`` if set (``off`` disables
    the cache), else ``offreg_data_dir() / "neighbour_index"``, beside the dataset cache."""
    env = os.environ.get("OFFREG_INDEX_CACHE", "")
    if env.strip().lower() in ("off", "0", "none"):
        return None
    return Path(env).expanduser() if env else offreg_data_dir() / "neighbour_index"


def fingerprint(states: np.ndarray, actions: np.ndarray, k: int) -> str:
    """The cache key: BLAKE2b over the format version, ``k``, and the shapes and bytes of the arrays."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"prdc-neighbour-index v{FORMAT_VERSION} k={k} {states.shape} {actions.shape}".encode())
    h.update(memoryview(states).cast("B"))
    h.update(memoryview(actions).cast("B"))
    return h.hexdigest()


def build_or_load(states, actions, k: int = 32, chunk: int = 65536, progress: bool | None = None,
                  directory: str | os.PathLike | None = None) -> NeighbourIndex:
    """:func:`build_index`, loaded from the on-disk cache when an index of these arrays and ``k`` is there.

    A newly built index is written there (atomically). A cached file that cannot be read or does not
    match is never used: it is rebuilt and replaced, with a one-line note on stderr.

    Args:
      states, actions, k, chunk, progress: as :func:`build_index`.
      directory: the cache directory; default :func:`cache_dir` (``None`` there: no cache).
    """
    s, a, k = _checked(states, actions, k)
    folder = Path(directory) if directory is not None else cache_dir()
    if folder is None:
        return _to_device(_build_arrays(s, a, k, chunk, progress))
    key = fingerprint(s, a, k)
    path = folder / f"prdc-{key}.npz"
    if path.exists():
        try:
            return _to_device(_read_cache(path, key, s, a, k))
        except Exception as e:  # noqa: BLE001 - any unreadable or mismatched file is rebuilt, never trusted
            reason = " ".join(str(e).split()) or type(e).__name__
            print(f"note: PRDC's neighbour index cache {path} is unusable ({reason}); rebuilding it", file=sys.stderr)
    arrays = _build_arrays(s, a, k, chunk, progress)

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


def _read_cache(path: Path, key: str, s: np.ndarray, a: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The arrays of a cached index, after checking them against the key and the data; raises if unusable."""
    n, ds = s.shape
    da = a.shape[1]
    k = min(k, n)
    expected = {
        "states": ((n + MAX_BLOCK, ds), np.float32), "actions": ((n + MAX_BLOCK, da), np.float32),
        "rows": ((n,), np.int32), "positions": ((n,), np.int32), "candidates": ((n, k), np.int32),
        "radius_sq": ((n,), np.float32), "hash_sorted": ((n,), np.uint32), "hash_pos": ((n,), np.int32),
        "axis": ((ds,), np.float32), "proj": ((n,), np.float32), "slab_margin": ((), np.float32),
        "sq_norm_states": ((n + MAX_BLOCK,), np.float32), "sq_norm_actions": ((n + MAX_BLOCK,), np.float32),
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
    rows = arrays["rows"]
    if not (np.array_equal(np.sort(rows), np.arange(n)) and np.array_equal(arrays["states"][:n], s[rows])
            and np.array_equal(arrays["actions"][:n], a[rows])):
        raise ValueError("its rows are not the dataset's")
    return arrays
