"""The snapshot format of behaviour policies: ``.npz`` files of actor parameters, no pickle.

A snapshot holds the flattened flax parameters of a SAC actor (``params/Linear_0/Dense_0/kernel``,
...) plus a JSON ``__meta__`` string. ``offreg/bundled/*.npz`` and ``offreg collect``'s
``snapshots/step<N>.npz`` use it; :func:`actor_metadata` converts an actor to D4RL's
``metadata/policy`` layout for the HDF5 files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from offreg.atomic import atomic_write
from offreg.errors import DatasetError


@dataclasses.dataclass
class Snapshot:
    """A policy snapshot: the environment step it was taken at, its parameters and evaluated return."""

    step: int
    actor: Any
    return_mean: float
    return_std: float


def save_snapshot(path: str | os.PathLike, actor_params: Any, meta: dict[str, Any], dtype: Any = np.float32) -> None:
    """Write an actor snapshot as ``.npz`` (arrays keyed ``params/Linear_0/Dense_0/kernel``..., float32
    or, for compact approximate copies, float16) plus ``meta`` as a JSON string under ``__meta__``.
    Atomic (temporary name, then rename)."""
    flat = flax.traverse_util.flatten_dict(jax.device_get(actor_params), sep="/")
    arrays = {k: np.asarray(v, dtype) for k, v in flat.items()}
    arrays["__meta__"] = np.asarray(json.dumps(meta, sort_keys=True))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def load_snapshot(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Read a snapshot written by :func:`save_snapshot`: ``(actor_params, meta)``, parameters float32.

    Raises:
      DatasetError: the file is missing or not a snapshot.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            flat = {k: jnp.asarray(z[k], jnp.float32) for k in z.files if k != "__meta__"}
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(f"policy snapshot {str(path)!r} cannot be read ({e}); reinstall offreg or recollect") from e
    return flax.traverse_util.unflatten_dict(flat, sep="/"), meta


def actor_metadata(actor_params: Any) -> dict[str, np.ndarray]:
    """The policy weights in D4RL's ``metadata/policy`` layout (rlkit names, torch ``weight [out, in]``)."""
    p = actor_params["params"]
    names = {k: f"fc{k.split('_')[1]}" for k in p if k.startswith("Linear_")}
    names.update(mean="last_fc", log_std="last_fc_log_std")
    out = {}
    for k, name in names.items():
        out[f"policy/{name}/weight"] = np.asarray(p[k]["Dense_0"]["kernel"], np.float32).T
        out[f"policy/{name}/bias"] = np.asarray(p[k]["Dense_0"]["bias"], np.float32)
    out["policy/nonlinearity"] = b"relu"
    out["policy/output_distribution"] = b"tanh_gaussian"
    return out
