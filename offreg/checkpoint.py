"""Save and restore a whole agent, without pickle.

A checkpoint is one msgpack file (``flax.serialization``) holding

- ``meta``: a JSON string with the agent's registered name, its config (``AgentConfig.to_dict``),
  the :class:`~offreg.data.DatasetInfo` of the data it was trained on, the training step, the seeds
  (when the file holds several seeds stacked on a leading axis) and free-form ``extra`` fields;
- ``state``: the agent's state dict (``flax.serialization.to_state_dict``): every parameter,
  optimizer state, target network, regularizer state and the step count;
- ``key``: the training PRNG key(s), ``uint32 [2]`` (or ``[num_seeds, 2]``), or nil.

Writes are atomic: the bytes go to a temporary file in the same directory, are flushed to disk and
then renamed over the destination (:mod:`offreg.atomic`), so a crash leaves either the old or the new file.

Loading rebuilds a template agent from the registry and the saved config (``jax.eval_shape`` of
``create`` on a tiny dataset of the saved dimensions, so the dataset file is not needed) and
restores the arrays into it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from offreg.agents.names import get_spec, name_of
from offreg.atomic import atomic_write_bytes
from offreg.data.core import DatasetInfo, from_arrays
from offreg.errors import CheckpointError, ConfigError, OffregError
from offreg.seeds import index_seed

FORMAT = "offreg-agent"
FORMAT_VERSION = 2
"""2: agents hold no dataset-derived state (PRDC's index is rebuilt from the data), the TD3 backbone's
regularizer is a config value, and the metadata always has the agent's dimensions. Version 1 files
(offreg 0.1) are refused with a message saying so."""
SUFFIX = ".msgpack"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
      agent: the agent; with a leading seed axis (see :mod:`offreg.seeds`) when ``seeds`` is not None.
      agent_name: the registered agent name.
      config: the agent's config (also ``agent.config``).
      dataset_info: the :class:`~offreg.data.DatasetInfo` the agent was trained on, or None.
      step: the number of gradient updates done.
      key: the training key(s) (``uint32 [2]`` or ``[num_seeds, 2]``), or None.
      seeds: the seeds stacked on the leading axis, or None for a single (unbatched) agent.
      extra: the free-form fields given to :func:`save_agent`.
      path: the file it was read from.
    """

    agent: Any
    agent_name: str
    config: Any
    dataset_info: Any
    step: int
    key: jax.Array | None
    seeds: list[int] | None
    extra: dict[str, Any]
    path: Path

    def runs(self) -> list[tuple[dict[str, float], int | None]]:
        """``(sweep point, seed)`` of each agent on the leading axis (``({}, None)`` for a single agent)."""
        if self.seeds is None:
            return [({}, None)]
        points = self.extra.get("sweep") or [{}] * len(self.seeds)
        return list(zip(points, self.seeds, strict=True))

    def run_agent(self, index: int) -> Any:
        """The unbatched agent at position ``index`` of the leading (run) axis."""
        return self.agent if self.seeds is None else index_seed(self.agent, index)

    def seed_agent(self, seed: int | None = None) -> Any:
        """The unbatched agent of one seed (the first when ``seed`` is None)."""
        if self.seeds is None:
            if seed is not None:
                raise CheckpointError(f"checkpoint {self.path} holds a single agent; do not pass a seed")
            return self.agent
        if seed is None:
            index = 0
        elif seed in self.seeds:
            index = self.seeds.index(seed)
        else:
            raise CheckpointError(f"checkpoint {self.path} has no seed {seed}; it holds seeds {self.seeds}")
        return index_seed(self.agent, index)


def agent_name_of(agent: Any) -> str:
    """The registered name of ``agent`` (see :func:`offreg.agents.names.name_of`).

    Raises:
      CheckpointError: the agent is not registered (register it with ``offreg.agents.register``).
    """
    try:
        return name_of(agent)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def save_agent(
    agent: Any,
    path: str | os.PathLike,
    *,
    dataset_info: Any = None,
    step: int | None = None,
    key: Any = None,
    seeds: list[int] | None = None,
    agent_name: str | None = None,
    **extra: Any,
) -> Path:
    """Save ``agent`` (and optionally the step, key and dataset description) to ``path`` atomically.

    Args:
      agent: a registered agent (a pytree). With ``seeds``, a multi-seed agent (:mod:`offreg.seeds`).
      path: the file to write (``.msgpack`` is appended when it has no suffix).
      dataset_info: the :class:`~offreg.data.DatasetInfo` of the (preprocessed) training data; needed
        to evaluate the loaded agent in the right environment.
      step: training step; defaults to ``agent.step`` when the agent has one (first seed), else 0.
      key: the training PRNG key(s) to resume from.
      seeds: the seeds on the leading axis of a stacked multi-seed agent.
      agent_name: the registered name to record (the engine passes the run's); default: the first name
        whose agent, config and regularizer classes are the agent's.
      **extra: JSON-serializable metadata stored under ``extra``.

    Returns:
      The path written.

    Raises:
      CheckpointError: the agent is not registered, or ``extra`` is not JSON-serializable.
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(SUFFIX)
    if step is None:
        raw = getattr(agent, "step", 0)
        step = int(np.asarray(raw).reshape(-1)[0]) if raw is not None else 0
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "agent": agent_name or agent_name_of(agent),
        "config": agent.config.to_dict(),
        "dataset_info": None if dataset_info is None else dataset_info.to_dict(),
        "dims": _dims(agent, dataset_info),
        "step": int(step),
        "seeds": None if seeds is None else [int(s) for s in seeds],
        "extra": extra,
    }
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except TypeError as e:
        raise CheckpointError(f"checkpoint metadata for {path} is not JSON-serializable: {e}") from None
    key = None if key is None else np.asarray(jax.device_get(key), np.uint32)
    payload = {"meta": meta_json, "state": jax.device_get(serialization.to_state_dict(agent)), "key": key}
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))
    return path


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint file written by :func:`save_agent`, or the latest checkpoint of a run directory.

    Raises:
      CheckpointError: the path is missing, not a checkpoint, corrupt, or its agent is unknown.
    """
    path, meta, state, key = _read_payload(Path(path))
    try:
        spec = get_spec(meta["agent"])
        config = spec.config_from_dict(meta["config"])
    except OffregError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    info = None if meta.get("dataset_info") is None else DatasetInfo.from_dict(meta["dataset_info"])
    template = _template(spec.agent_cls, config, info, meta.get("dims"))
    try:
        agent = serialization.from_state_dict(template, state)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {path} does not match agent {meta['agent']!r} of this offreg version ({e})"
        ) from None
    agent = jax.tree_util.tree_map(jnp.asarray, agent)
    return Checkpoint(
        agent=agent,
        agent_name=meta["agent"],
        config=config,
        dataset_info=info,
        step=int(meta.get("step", 0)),
        key=None if key is None else jnp.asarray(key, jnp.uint32),
        seeds=meta.get("seeds"),
        extra=meta.get("extra", {}),
        path=path,
    )


def _read_payload(path: Path) -> tuple[Path, dict, Any, Any]:
    """``(file, meta, state dict, key)`` of a checkpoint file or a run directory's latest, format checked."""
    if path.is_dir():
        path = latest_checkpoint(path)
    if not path.exists():
        alt = path.with_suffix(SUFFIX) if not path.suffix else None
        if alt is not None and alt.exists():
            path = alt
        else:
            raise CheckpointError(f"checkpoint {path} does not exist; check the path or the run directory")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        meta = json.loads(payload["meta"])
        state = payload["state"]
        key = payload.get("key")
    except Exception as e:  # msgpack raises many types on truncated/garbage input
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not an offreg checkpoint ({type(e).__name__}); "
            "use another checkpoint of the run"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an offreg agent checkpoint (no {FORMAT!r} header)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {meta['format_version']}; upgrade offreg to read it"
        )
    if meta.get("format_version", 0) < FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {meta.get('format_version', 0)} (offreg 0.1), which this "
            f"offreg (format {FORMAT_VERSION}) cannot read; load it with offreg 0.1 or train again"
        )
    return path, meta, state, key


def load_agent(path: str | os.PathLike, seed: int | None = None) -> Any:
    """Load an agent saved by :func:`save_agent` or by ``offreg train``.

    Args:
      path: a checkpoint file, or a run directory (its latest checkpoint is used).
      seed: for a multi-seed checkpoint, the seed to return (default: the first seed).

    Returns:
      The unbatched agent, ready for ``agent.act(observations)``.

    Raises:
      CheckpointError: missing, corrupt or incompatible checkpoint, or an unknown seed.
    """
    return read_checkpoint(path).seed_agent(seed)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The checkpoint with the highest step under ``run_dir/checkpoints`` (or ``run_dir`` itself).

    Raises:
      CheckpointError: there is none.
    """
    run_dir = Path(run_dir)
    found = list_checkpoints(run_dir / "checkpoints") or list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint in {run_dir}; is it an offreg run directory with a saved step?")
    return found[-1][1]


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step_<N>.msgpack`` file in ``directory``, sorted by step."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    out = []
    for p in directory.glob(f"step_*{SUFFIX}"):
        try:
            out.append((int(p.stem.split("_", 1)[1]), p))
        except ValueError:
            continue
    return sorted(out)


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """``run_dir/checkpoints/step_<step, 9 digits>.msgpack``."""
    return Path(run_dir) / "checkpoints" / f"step_{step:09d}{SUFFIX}"


def _dims(agent: Any, info: Any) -> dict[str, int] | None:
    """Observation and action dimensions of an agent, from ``info`` or from its own arrays."""
    if info is not None:
        return {"obs_dim": int(info.obs_dim), "act_dim": int(info.act_dim)}
    obs_mean, act_dim = getattr(agent, "obs_mean", None), getattr(agent, "act_dim", None)
    if obs_mean is None or act_dim is None:
        return None
    return {"obs_dim": int(np.shape(obs_mean)[-1]), "act_dim": int(act_dim)}


def _template(agent_cls: type, config: Any, info: Any, dims: dict[str, int] | None = None) -> Any:
    """An agent with the right tree structure, built without the training data.

    ``create`` runs under ``jax.eval_shape`` on a small synthetic dataset of the saved dimensions (no
    arrays are computed); agents whose ``create`` is not traceable (closed-form fits on the host)
    are created concretely on the same small dataset. Only the tree structure of the template is
    used; every array comes from the checkpoint.
    """
    if info is None:
        dims = dims or {"obs_dim": 1, "act_dim": 1}
        info = DatasetInfo("template", "file", None, dims["obs_dim"], dims["act_dim"], 0)
    if hasattr(agent_cls, "template"):  # agents whose create needs their own kind of data
        return agent_cls.template(config, info)
    n = max(int(getattr(config, "batch_size", 1)), 64)
    rng = np.random.default_rng(0)  # template data only; never on the training path
    obs = rng.normal(size=(n, info.obs_dim))
    dummy = from_arrays(
        obs, rng.uniform(-1, 1, (n, info.act_dim)), rng.normal(size=n), obs + 0.01 * rng.normal(size=obs.shape),
        np.zeros(n), info, episode_starts=[0, n // 2], episode_returns=[0.0, 1.0], episode_lengths=[n // 2, n - n // 2],
    )
    key = jax.random.PRNGKey(0)
    try:
        return jax.eval_shape(lambda k: agent_cls.create(config, dummy, k), key)
    except jax.errors.JAXTypeError:
        return agent_cls.create(config, dummy, key)
