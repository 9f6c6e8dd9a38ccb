"""Minari datasets read from disk with h5py (the ``minari`` package is not needed to load them).

Layout (Minari 0.4-0.5 HDF5 storage, ``Farama-Foundation/Minari:minari/dataset/_storages/hdf5_storage.py``):
``<root>/<id>/data/metadata.json`` and ``<root>/<id>/data/main_data.hdf5`` with one group ``episode_{i}``
per episode holding ``observations [T+1, o]`` (the final observation included), ``actions [T, a]``, ``rewards [T]``,
``terminations [T]`` and ``truncations [T]``. A Dict observation space is stored as a group of such
arrays per key; offreg flattens it into one vector per step with
:func:`offreg.envs.recorded.flatten_observation` (keys in sorted order, e.g. AntMaze's
``achieved_goal, desired_goal, observation``), the same rule its recorded environment applies at
evaluation.

Transitions (as CORL's Minari scripts build them, ``tinkoff-ai/CORL:algorithms/minari/iql.py``): per episode
``observations[:-1]``, ``actions``, ``rewards``, ``observations[1:]``, ``terminals = terminations``;
truncations only end an episode and never stop bootstrapping. No row is dropped. Every episode is
complete (it ends in a termination or a truncation), so all of them count as episodes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from offreg.data.catalogue import check_safe_name, minari_root
from offreg.data.d4rl import open_hdf5
from offreg.envs import RECORDED
from offreg.envs.recorded import flatten_observation
from offreg.errors import DatasetError


def minari_dataset_dir(dataset_id: str, root: Path | None = None) -> Path:
    """``<root>/<dataset_id>/data`` after checking that the id cannot escape ``root``."""
    root = root or minari_root()
    return check_safe_name(dataset_id, root, "Minari dataset id") / "data"


def local_minari_ids(root: Path | None = None) -> list[str]:
    """Ids of the Minari datasets present under ``root`` (those with a ``data/metadata.json``)."""
    root = root or minari_root()
    if not root.is_dir():
        return []
    ids = []
    for meta in root.glob("**/data/metadata.json"):
        ids.append(meta.parent.parent.relative_to(root).as_posix())
    return sorted(ids)


def missing_minari(dataset_id: str, where: Path) -> DatasetError:
    return DatasetError(
        f"Minari dataset {dataset_id!r} is not at {where}; download it with `minari download {dataset_id}` "
        f"(pip install 'offreg[minari]'), or copy its directory there, or set MINARI_DATASETS_PATH to its root"
    )


def read_minari(dataset_id: str, root: Path | None = None) -> dict[str, Any]:
    """Read a local Minari dataset into ``qlearning``-style arrays plus its episodes and metadata.

    Args:
      dataset_id: the Minari id (``mujoco/hopper/medium-v0``), without the ``minari/`` prefix.
      root: the datasets root (default :func:`minari_root`).

    Returns:
      ``observations, actions, rewards, next_observations`` (float32), ``terminals`` (bool),
      ``episode_starts`` / ``episode_lengths`` (int64 ``[E]``), ``episode_returns`` (float64 ``[E]``),
      ``metadata`` (the parsed ``metadata.json``).

    Raises:
      DatasetError: the dataset is missing, not HDF5-format, has non-Box spaces, inconsistent
        episode arrays, NaN/Inf values, or no steps.

    Long because: Minari's episode layout converted to D4RL's arrays step by step, with one message per bad input.
    """
    label = f"minari/{dataset_id}"
    data_dir = minari_dataset_dir(dataset_id, root)
    meta_path = data_dir / "metadata.json"
    if not meta_path.is_file():
        raise missing_minari(dataset_id, data_dir)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"dataset {label!r}: cannot parse {meta_path} ({e}); download the dataset again") from None
    fmt = meta.get("data_format", "hdf5")
    if fmt != "hdf5":
        raise DatasetError(
            f"dataset {label!r} is stored as {fmt!r}; offreg reads Minari's HDF5 storage: "
            "re-create the dataset with data_format='hdf5'"
        )
    h5_path = data_dir / "main_data.hdf5"
    if not h5_path.is_file():
        raise missing_minari(dataset_id, h5_path)
    f = open_hdf5(h5_path, label, "download the dataset again")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next", "act", "rew", "term")}
    lengths, returns = [], []
    with f:
        names = [n for n in f.keys() if re.fullmatch(r"episode_\d+", n)]
        names.sort(key=lambda n: int(n.split("_")[1]))
        for name in names:
            g = f[name]
            arrays = {}
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                if key not in g:
                    raise DatasetError(f"dataset {label!r}: {name} has no {key!r}; download the dataset again")
                if key == "observations" and isinstance(g[key], h5py.Group):
                    arrays[key] = flatten_observation(_read_group(g[key]), batch_dims=1)
                    continue
                if not isinstance(g[key], h5py.Dataset):
                    raise DatasetError(
                        f"dataset {label!r}: {name}/{key} is a group (a Dict or Tuple space); offreg supports "
                        "Box actions and Box or Dict-of-Box observations only"
                    )
                arrays[key] = g[key][()]
            obs, act = arrays["observations"], arrays["actions"]
            rew = arrays["rewards"].reshape(-1)
            t = rew.shape[0]
            if obs.ndim != 2 or act.ndim != 2:
                raise DatasetError(
                    f"dataset {label!r}: {name} has observations {obs.shape} and actions {act.shape}; "
                    "offreg supports flat Box spaces only"
                )
            if obs.shape[0] != t + 1 or act.shape[0] != t or arrays["terminations"].reshape(-1).shape[0] != t:
                raise DatasetError(
                    f"dataset {label!r}: {name} has {obs.shape[0]} observations, {act.shape[0]} actions and "
                    f"{t} rewards; expected T+1, T and T: download the dataset again"
                )
            parts["obs"].append(obs[:-1])
            parts["next"].append(obs[1:])
            parts["act"].append(act)
            parts["rew"].append(rew)
            parts["term"].append(arrays["terminations"].reshape(-1).astype(bool))
            lengths.append(t)
            returns.append(float(np.sum(rew, dtype=np.float64)))
    if not lengths or sum(lengths) == 0:
        raise DatasetError(f"dataset {label!r} is empty (no episode steps); download or re-create it")
    lengths_arr = np.asarray(lengths, np.int64)
    out = {
        "observations": np.concatenate(parts["obs"]).astype(np.float32),
        "actions": np.concatenate(parts["act"]).astype(np.float32),
        "rewards": np.concatenate(parts["rew"]).astype(np.float32),
        "next_observations": np.concatenate(parts["next"]).astype(np.float32),
        "terminals": np.concatenate(parts["term"]),
        "episode_starts": np.concatenate([[0], np.cumsum(lengths_arr)[:-1]]).astype(np.int64),
        "episode_lengths": lengths_arr,
        "episode_returns": np.asarray(returns, np.float64),
        "metadata": meta,
    }
    for key in ("observations", "actions", "rewards", "next_observations"):
        bad = int(out[key].size - np.count_nonzero(np.isfinite(out[key])))
        if bad:
            raise DatasetError(f"dataset {label!r}: {key!r} has {bad} NaN/Inf values; clean or re-create it")
    return out


def _read_group(g: h5py.Group) -> dict[str, Any]:
    """A Dict observation's group as nested ``{key: array}``."""
    return {k: _read_group(v) if isinstance(v, h5py.Group) else v[()] for k, v in g.items()}


def _env_spec(meta: dict[str, Any], key: str = "env_spec") -> dict[str, Any]:
    """``metadata.json``'s ``key`` (a JSON string or a dict) as a dict; ``{}`` when absent or unreadable."""
    spec = meta.get(key)
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            return {}
    return spec if isinstance(spec, dict) else {}


def max_episode_steps_of(meta: dict[str, Any]) -> int | None:
    """The time limit recorded in ``metadata.json``'s ``env_spec``, if any."""
    steps = _env_spec(meta).get("max_episode_steps")
    return int(steps) if isinstance(steps, int) else None


def env_spec_id(meta: dict[str, Any]) -> str | None:
    """The Gymnasium id recorded in ``metadata.json``'s ``env_spec``, if any."""
    return _env_spec(meta).get("id")


def recorded_env(meta: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The environment a Minari dataset is evaluated in: ``(env_id, env_kwargs)`` for ``DatasetInfo``.

    The recorded ``eval_env_spec`` when the dataset has one, else its ``env_spec``: ``env_id`` is
    ``gymnasium:<id>`` and ``env_kwargs`` is ``{"spec": <the EnvSpec dict>}``
    (:func:`offreg.envs.recorded.make_recorded`). None when neither names an id.
    """
    for key in ("eval_env_spec", "env_spec"):
        spec = _env_spec(meta, key)
        if isinstance(spec.get("id"), str):
            return RECORDED + spec["id"], {"spec": spec}
    return None
