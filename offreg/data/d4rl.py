"""D4RL files without the ``d4rl`` package: read, validate, write, ``qlearning_dataset`` and episodes.

The rules are D4RL's (``Farama-Foundation/D4RL:d4rl/offline_env.py`` and ``d4rl/__init__.py``):

- ``qlearning_dataset``: row ``i`` (``0 <= i < N-1``) becomes the transition
  ``(observations[i], actions[i], rewards[i], observations[i+1], terminals[i])``; the stored
  ``next_observations`` are ignored; rows flagged ``timeouts[i]`` are skipped unless
  ``terminate_on_end``; the last row is always dropped. Without ``timeouts`` a row is final when
  D4RL's step counter reaches ``max_episode_steps - 1`` (its counter quirks included).
- ``sequence_dataset``: an episode ends at every row with ``terminals[i]`` or the final flag; a
  trailing unfinished episode is not an episode.

Only the keys training needs are read (``observations, actions, rewards, terminals, timeouts``) and
float64 data (the replay datasets) is converted to float32 while reading, so a 2M-row file loads
without holding ``infos/*`` or float64 copies in memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from offreg.data.catalogue import check_dataset_file
from offreg.errors import DatasetError

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
OPTIONAL_KEYS = ("timeouts",)
FIELDS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
"""The top-level arrays :func:`write_d4rl` writes (``next_observations`` when given: D4RL's AntMaze
files, for one, have none)."""
INFO_FIELDS = ("action_log_probs", "qpos", "qvel")
"""Per-row arrays :func:`write_d4rl` writes under ``infos/`` when present."""
_FLOAT_KEYS = ("observations", "actions", "rewards")
_FLAG_KEYS = ("terminals", "timeouts")


def _fix(path: Path) -> str:
    return f"delete {path} and download or generate it again"


def read_d4rl_file(path: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
    """Read a D4RL-format ``.hdf5``/``.h5`` or ``.npz`` file into host arrays, validated.

    Reads ``observations`` and ``actions`` as float32 ``[N, d]``, ``rewards`` float32 ``[N]``,
    ``terminals`` and (when present) ``timeouts`` bool ``[N]`` (``(N, 1)`` is squeezed, as D4RL
    does), and the scalar entries of ``metadata/*`` as ``metadata`` (a dict of str/int/float).

    Args:
      path: the file.
      name: how to call the dataset in error messages (default: the path).

    Returns:
      ``{"observations", "actions", "rewards", "terminals", "timeouts" (if present), "metadata"}``.

    Raises:
      DatasetError: the file is missing, a directory, of another type, unreadable (permission
        denied), truncated or corrupt; a required key is
        missing; a dtype or shape is wrong; lengths differ; values are NaN/Inf; or it has no rows.
    """
    path = check_dataset_file(path)
    label = name or str(path)
    if path.suffix.lower() == ".npz":
        raw = _read_npz(path, label)
    else:
        raw = _read_hdf5(path, label)
    validate_d4rl_arrays(raw, label, path)
    return raw


def _read_hdf5(path: Path, label: str) -> dict[str, Any]:
    f = open_hdf5(path, label, _fix(path))
    out: dict[str, Any] = {}
    with read_errors(label, f"cannot read {path}", (OSError, RuntimeError, ValueError, KeyError), _fix(path)), f:
        for key in REQUIRED_KEYS + OPTIONAL_KEYS:
            if key not in f:
                continue
            d = f[key]
            if not isinstance(d, h5py.Dataset):
                raise DatasetError(f"dataset {label!r}: {key!r} is a group, expected an array; {_fix(path)}")
            out[key] = _read_array(d, key, label)
        out["metadata"] = _read_metadata(f)
    return out


def open_hdf5(path: Path, label: str, fix: str) -> h5py.File:
    """``h5py.File(path, "r")``; a file h5py cannot open is a :class:`DatasetError` ending in ``fix``."""
    with read_errors(label, f"{path} is not a readable HDF5 file", (OSError,), fix):
        return h5py.File(path, "r")


@contextlib.contextmanager
def read_errors(label: str, what: str, errors: tuple[type[Exception], ...], fix: str) -> Iterator[None]:
    """Turn ``errors`` raised inside into one :class:`DatasetError`.

    Its message is ``dataset <label>: <what> (truncated or corrupt: <error>); <fix>``, so the errors
    of a damaged file (h5py's ``OSError``, numpy's ``ValueError``, ...) read as one line naming the
    file and what to do; a :class:`DatasetError` raised inside passes unchanged.
    """
    try:
        yield
    except errors as e:
        raise DatasetError(f"dataset {label!r}: {what} (truncated or corrupt: {_short(e)}); {fix}") from None


def _read_array(d: h5py.Dataset, key: str, label: str) -> np.ndarray:
    kind = d.dtype.kind
    if d.shape == () and kind in "biuf":  # a scalar: the shape check reports it
        return np.asarray(d[()])
    if key in _FLOAT_KEYS:
        if kind != "f":
            raise DatasetError(
                f"dataset {label!r}: {key!r} has dtype {d.dtype}, expected float32 or float64; "
                "rewrite the file with floating-point arrays"
            )
        return d.astype(np.float32)[:] if d.dtype != np.float32 else d[:]
    if kind not in "biuf":
        raise DatasetError(
            f"dataset {label!r}: {key!r} has dtype {d.dtype}, expected bool; rewrite the file with bool flags"
        )
    return d[:]


def _read_metadata(f: h5py.File) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    group = f.get("metadata")
    if not isinstance(group, h5py.Group):
        return meta

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape == ():
            v = obj[()]
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            elif isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, str | int | float | bool):
                meta[name] = v

    group.visititems(visit)
    return meta


def _read_npz(path: Path, label: str) -> dict[str, Any]:
    what, errors = f"{path} is not a readable .npz file", (OSError, ValueError, EOFError, KeyError)
    with read_errors(label, what, errors, _fix(path)), np.load(path, allow_pickle=False) as z:
        out: dict[str, Any] = {}
        for key in REQUIRED_KEYS + OPTIONAL_KEYS:
            if key in z.files:
                v = z[key]
                if key in _FLOAT_KEYS and v.dtype.kind != "f":
                    raise DatasetError(
                        f"dataset {label!r}: {key!r} has dtype {v.dtype}, expected float32 or float64; "
                        "rewrite the file with floating-point arrays"
                    )
                if key in _FLAG_KEYS and v.dtype.kind not in "biuf":
                    raise DatasetError(
                        f"dataset {label!r}: {key!r} has dtype {v.dtype}, expected bool; "
                        "rewrite the file with bool flags"
                    )
                out[key] = v.astype(np.float32, copy=False) if key in _FLOAT_KEYS else v
    out["metadata"] = {}
    return out


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:160] or type(e).__name__


def validate_d4rl_arrays(
    raw: dict[str, Any], label: str, path: str | os.PathLike | None = None,
    obs_dim: int | None = None, act_dim: int | None = None, env: str | None = None,
) -> None:
    """Check a raw D4RL dict in place: keys, shapes, equal lengths, flags, finiteness, dims.

    ``rewards``, ``terminals`` and ``timeouts`` of shape ``(N, 1)`` are squeezed to ``(N,)`` and
    flags become bool (as D4RL's ``get_dataset`` does).

    Args:
      raw: the dict from :func:`read_d4rl_file` (modified in place).
      label: the dataset's name for messages.
      path: the file, for messages.
      obs_dim, act_dim: the environment's dims, checked when given.
      env: the environment's name, for messages.

    Raises:
      DatasetError: one line naming the key, what is wrong and what to do.

    Long because: one check per D4RL array, each with its own message, in the file's order.
    """
    where = f" ({path})" if path else ""
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise DatasetError(
                f"dataset {label!r}{where} has no {key!r} array; a D4RL file needs "
                f"{', '.join(REQUIRED_KEYS)} (timeouts optional): rewrite or re-download it"
            )
    for key in ("rewards", "terminals", "timeouts"):
        if key in raw and raw[key].ndim == 2 and raw[key].shape[1] == 1:
            raw[key] = raw[key][:, 0]
    n = raw["rewards"].shape[0] if raw["rewards"].ndim else 0
    expect = {"observations": 2, "actions": 2, "rewards": 1, "terminals": 1, "timeouts": 1}
    for key, ndim in expect.items():
        if key not in raw:
            continue
        v = raw[key]
        if v.ndim != ndim:
            shape = "(N, dim)" if ndim == 2 else "(N,)"
            raise DatasetError(
                f"dataset {label!r}{where}: {key!r} has shape {v.shape}, expected {shape}; rewrite the file"
            )
        if v.shape[0] != n:
            raise DatasetError(
                f"dataset {label!r}{where}: {key!r} has {v.shape[0]} rows but 'rewards' has {n}; "
                "all arrays must have the same length: rewrite or re-download the file"
            )
    if n == 0:
        raise DatasetError(f"dataset {label!r}{where} is empty (0 rows); rewrite or re-download it")
    for key in _FLAG_KEYS:
        if key in raw and raw[key].dtype != np.bool_:
            v = raw[key]
            if not np.all((v == 0) | (v == 1)):
                raise DatasetError(
                    f"dataset {label!r}{where}: {key!r} holds values other than 0/1; flags must be bool"
                )
            raw[key] = v.astype(bool)
    for key in _FLOAT_KEYS:
        bad = int(raw[key].size - np.count_nonzero(np.isfinite(raw[key])))
        if bad:
            raise DatasetError(
                f"dataset {label!r}{where}: {key!r} has {bad} NaN/Inf values; clean or regenerate the file"
            )
    if obs_dim is not None or act_dim is not None:
        check_dims(raw["observations"].shape[1], raw["actions"].shape[1], obs_dim, act_dim, label, env)


def check_dims(
    obs: int, act: int, obs_dim: int | None, act_dim: int | None, label: str, env: str | None
) -> None:
    """Raise :class:`DatasetError` unless the data's dims equal the environment's."""
    for what, have, want in (("observation", obs, obs_dim), ("action", act, act_dim)):
        if want is not None and have != want:
            raise DatasetError(
                f"dataset {label!r}: {what}s have {have} dims but environment {env!r} has {want}; "
                f"this file is not a {env} dataset: pass the right env or the right file"
            )


# --- D4RL semantics ----------------------------------------------------------------------------
def final_flags(
    terminals: np.ndarray, timeouts: np.ndarray | None, max_episode_steps: int, *, for_qlearning: bool,
    terminate_on_end: bool = False,
) -> np.ndarray:
    """D4RL's ``final_timestep`` of every row: ``timeouts`` when present, else its step counter.

    Without ``timeouts`` D4RL counts ``episode_step`` and calls a row final when it equals
    ``max_episode_steps - 1``. ``qlearning_dataset`` resets the counter to 0 and skips a final row
    (no increment) unless ``terminate_on_end``; on a kept terminal/final row it resets to 0 and then
    increments. ``sequence_dataset`` resets to 0 and increments at every episode end. Both loops are
    reproduced exactly here, one terminal at a time: between two terminals the counter only grows
    and restarts at each final row, so the final rows there are an arithmetic sequence.

    Returns:
      bool ``[N]`` (``qlearning``: only the first ``N - 1`` entries matter).
    """
    if timeouts is not None:
        return np.asarray(timeouts, bool)
    done = np.asarray(terminals, bool)
    n, last = len(done), max_episode_steps - 1
    skip = for_qlearning and not terminate_on_end  # a final row restarts the counter at 0, else at 1
    period = last + 1 if skip else last  # rows from one final row to the next without a terminal
    out = np.zeros(n, bool)
    start, step = 0, 0  # the counter at row ``start``
    for end in [*np.flatnonzero(done).tolist(), n - 1]:  # rows start..end hold one terminal, at end
        if start > end:
            continue
        first = start + last - step
        if step <= last and first <= end:
            finals = np.arange(first, end + 1, period) if period > 0 else np.array([first])
            out[finals] = True
            step = 0 if skip and finals[-1] == end else 1
        else:
            step = 1
        start = end + 1
    return out


def qlearning_rows(raw: dict[str, Any], terminate_on_end: bool = False, max_episode_steps: int = 1000) -> np.ndarray:
    """int64 ``[M]``: the file rows ``i`` that :func:`qlearning_dataset` turns into transitions
    ``(observations[i], actions[i], rewards[i], observations[i + 1], terminals[i])``."""
    n = raw["rewards"].shape[0]
    if terminate_on_end:
        return np.arange(n - 1, dtype=np.int64)
    final = final_flags(raw["terminals"], raw.get("timeouts"), max_episode_steps, for_qlearning=True)
    return np.flatnonzero(~final[: n - 1]).astype(np.int64)


def qlearning_dataset(
    raw: dict[str, Any], terminate_on_end: bool = False, max_episode_steps: int = 1000
) -> dict[str, np.ndarray]:
    """D4RL's ``qlearning_dataset``, vectorized and exact.

    Args:
      raw: validated arrays (``observations [N, o]``, ``actions [N, a]``, ``rewards [N]``,
        ``terminals [N]``, optional ``timeouts [N]``).
      terminate_on_end: keep timeout rows (still with ``terminals`` as stored) instead of skipping them.
      max_episode_steps: the time limit, used only when the file has no ``timeouts``.

    Returns:
      ``observations``, ``actions``, ``next_observations`` (float32), ``rewards`` (float32),
      ``terminals`` (bool), each with ``M = N - 1 - #{i < N-1 : final[i]}`` rows
      (``M = N - 1`` with ``terminate_on_end``), and ``rows`` (int64 ``[M]``): the file row of each
      transition.
    """
    n = raw["rewards"].shape[0]
    rows = qlearning_rows(raw, terminate_on_end, max_episode_steps)
    obs = raw["observations"]
    if len(rows) == n - 1:  # nothing skipped: slices, no gather
        q_obs, q_next = obs[: n - 1], obs[1:]
    else:
        q_obs, q_next = obs[rows], obs[rows + 1]
    return {
        "observations": np.asarray(q_obs, np.float32),
        "actions": np.asarray(raw["actions"][rows], np.float32),
        "next_observations": np.asarray(q_next, np.float32),
        "rewards": np.asarray(raw["rewards"][rows], np.float32),
        "terminals": np.asarray(raw["terminals"][rows], bool),
        "rows": rows,
    }


def episode_bounds(raw: dict[str, Any], max_episode_steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """First and last file row (inclusive) of each episode of D4RL's ``sequence_dataset``.

    An episode ends at a row with ``terminals`` or the final flag (``timeouts``, or the step counter
    when the file has none); rows after the last end form no episode.

    Returns:
      ``(starts, ends)``: int64 ``[E]`` each.
    """
    final = final_flags(raw["terminals"], raw.get("timeouts"), max_episode_steps, for_qlearning=False)
    ends = np.flatnonzero(np.asarray(raw["terminals"], bool) | final).astype(np.int64)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else ends.copy()
    return starts, ends


def episode_returns(rewards: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """float64 ``[E]`` undiscounted return of each episode ``rewards[starts[k] : ends[k] + 1]``."""
    if len(starts) == 0:
        return np.zeros(0, np.float64)
    r = np.asarray(rewards[: ends[-1] + 1], np.float64)
    return np.add.reduceat(r, starts)


def sequence_dataset(raw: dict[str, Any], max_episode_steps: int = 1000) -> Iterator[dict[str, np.ndarray]]:
    """D4RL's ``sequence_dataset``: yield each complete episode's rows of every ``[N, ...]`` array."""
    n = raw["rewards"].shape[0]
    starts, ends = episode_bounds(raw, max_episode_steps)
    keys = [k for k, v in raw.items() if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        yield {k: raw[k][s : e + 1] for k in keys}


def episodes_in_transitions(
    rows: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map episodes given as file rows onto the ``qlearning_dataset`` transitions.

    Episode ``k``'s transitions are the kept rows in ``[starts[k], ends[k]]``; they are contiguous,
    ``transitions[t_start[k] : t_end[k]]``. A timeout-ended episode has ``length - 1`` transitions
    (its timeout row is dropped) and the file's last row is never a transition.

    Args:
      rows: int64 ``[M]`` file row of each transition (sorted), from :func:`qlearning_dataset`.
      starts, ends: file rows of each episode (inclusive), from :func:`episode_bounds`.

    Returns:
      ``(t_start, t_end)``: int64 ``[E]`` each, ``t_end`` exclusive.
    """
    return (
        np.searchsorted(rows, starts, side="left").astype(np.int64),
        np.searchsorted(rows, ends, side="right").astype(np.int64),
    )


def write_d4rl(path: str | os.PathLike, data: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    """Write ``data`` as a D4RL HDF5 file at ``path`` (gzip; top-level arrays, ``infos/*``, ``metadata/*``).

    Args:
      path: the file to write (not atomic: wrap in :func:`offreg.atomic.atomic_write`).
      data: every key of :data:`FIELDS` but, optionally, ``next_observations`` (``[N, ...]`` arrays,
        written in their dtypes), any of
        :data:`INFO_FIELDS`, and any key ``infos/<name>`` (written as it is).
      metadata: values become scalar datasets (str -> bytes) or arrays under ``metadata/``; keys with
        ``/`` make groups (``policy/fc0/weight``).
    """
    with h5py.File(path, "w") as f:
        for k in FIELDS:
            if k == "next_observations" and k not in data:
                continue
            f.create_dataset(k, data=data[k], compression="gzip", compression_opts=4)
        for k in INFO_FIELDS:
            if k in data:
                f.create_dataset(f"infos/{k}", data=data[k], compression="gzip", compression_opts=4)
        for k in data:
            if k.startswith("infos/"):  # further per-row records, e.g. an environment's state
                f.create_dataset(k, data=data[k], compression="gzip", compression_opts=4)
        for k, v in metadata.items():
            f.create_dataset(f"metadata/{k}", data=v.encode() if isinstance(v, str) else v)
