"""The in-memory dataset: transitions on the device, their description, and on-device sampling.

Every loader (D4RL files, Minari, offreg's generated data) ends in :class:`Dataset`. Preprocessing
(observation normalization, reward transforms) returns a new :class:`Dataset` whose
:class:`DatasetInfo` records what was applied, so evaluation and saved agents apply the same.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offreg.errors import ConfigError, DatasetError
from offreg.types import PRNGKey, Transitions

REWARD_TRANSFORMS = ("none", "locomotion", "locomotion_iql", "antmaze", "affine")


def normalize(observations: Any, mean: Any, std: Any) -> Any:
    """``(observations - mean) / std``: the one observation normalization, on np or jnp arrays ``[..., obs]``.

    The loader applies it to a dataset (:meth:`Dataset.normalize_observations`); an agent keeps
    ``mean`` and ``std`` (:meth:`DatasetInfo.observation_stats`) and applies it to the raw
    observations it acts on.
    """
    return (observations - mean) / std


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is and how it was preprocessed. JSON round-trips with ``to_dict``/``from_dict``.

    Attributes:
      name: catalogue name (``hopper-medium-v2``, ``offreg/hopper-medium-v0``) or file path.
      source: ``d4rl``, ``minari``, ``offreg`` or ``file``.
      env_id: environment id used for evaluation (a key of ``offreg.envs``), or ``None``.
      obs_dim: observation dimension.
      act_dim: action dimension.
      num_transitions: number of transitions after ``qlearning_dataset`` semantics.
      num_episodes: number of complete episodes in the file.
      ref_min_score: return of the reference random policy (normalized score 0), or ``None``.
      ref_max_score: return of the reference expert policy (normalized score 100), or ``None``.
      max_episode_steps: the environment's time limit.
      obs_mean: per-dimension observation mean subtracted by the normalization (``None`` if off).
      obs_std: per-dimension observation std (eps included) divided by the normalization.
      reward_transform: the reward transform applied (``none``, ``locomotion``, ``antmaze``, ``affine``).
      reward_scale: ``r' = reward_scale * r + reward_shift`` as finally applied.
      reward_shift: see ``reward_scale``.
      extra: free-form metadata (file metadata, generation command, ...), JSON-serializable.
    """

    name: str
    source: str
    env_id: str | None
    obs_dim: int
    act_dim: int
    num_transitions: int
    num_episodes: int = 0
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    max_episode_steps: int = 1000
    obs_mean: tuple[float, ...] | None = None
    obs_std: tuple[float, ...] | None = None
    reward_transform: str = "none"
    reward_scale: float = 1.0
    reward_shift: float = 0.0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def normalized_score(self, returns: Any) -> Any:
        """D4RL normalized score ``100 * (R - ref_min) / (ref_max - ref_min)`` of undiscounted returns.

        Raises:
          DatasetError: the dataset has no reference scores.
        """
        if self.ref_min_score is None or self.ref_max_score is None:
            raise DatasetError(
                f"dataset {self.name!r} has no reference scores, so no normalized score exists; "
                "report raw returns instead"
            )
        return 100.0 * (np.asarray(returns) - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)

    def normalize_observations(self, observations: Any) -> Any:
        """Apply this dataset's observation normalization (identity when it is off). Works on np/jnp."""
        if self.obs_mean is None:
            return observations
        return normalize(observations, np.asarray(self.obs_mean, np.float32), np.asarray(self.obs_std, np.float32))

    def observation_stats(self) -> tuple[jax.Array, jax.Array]:
        """``(mean, std)``, float32 ``[obs_dim]``, of the observation normalization; ``(0, 1)`` when off.

        What an agent keeps to :func:`normalize` the raw observations it acts on.
        """
        if self.obs_mean is None:
            return jnp.zeros(self.obs_dim, jnp.float32), jnp.ones(self.obs_dim, jnp.float32)
        return jnp.asarray(self.obs_mean, jnp.float32), jnp.asarray(self.obs_std, jnp.float32)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("obs_mean", "obs_std"):
            if d[k] is not None:
                d[k] = [float(x) for x in d[k]]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetInfo:
        d = dict(d)
        for k in ("obs_mean", "obs_std"):
            if d.get(k) is not None:
                d[k] = tuple(float(x) for x in d[k])
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Transitions (on the device) plus their :class:`DatasetInfo`, and the episode structure.

    Attributes:
      transitions: float32 arrays with a leading transition axis, already preprocessed.
      info: description and the preprocessing applied.
      episode_starts: int64 ``[E]`` index of each episode's first transition in ``transitions``.
      episode_returns: float64 ``[E]`` undiscounted return of each episode, in the *raw* reward
        scale (before any reward transform). Only complete episodes (terminal or timeout) count.
      episode_lengths: int64 ``[E]`` number of environment steps of each episode.
      episode_ends: int64 ``[E]`` exclusive end of each episode's transitions, or ``None`` when each
        episode runs to the next one's start (the last to the end). Needed when transitions that
        belong to no complete episode (a trailing unfinished one) follow the last episode.
    """

    transitions: Transitions
    info: DatasetInfo
    episode_starts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    episode_returns: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float64))
    episode_lengths: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    episode_ends: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.transitions)

    def episodes(self) -> list[dict[str, np.ndarray | float | int]]:
        """The complete episodes as dicts of numpy arrays (a view of ``transitions``).

        Each dict has ``observations, actions, rewards, next_observations, terminals`` for the
        episode's transitions, plus ``return`` (raw reward scale) and ``length``.
        """
        host = jax.tree_util.tree_map(np.asarray, self.transitions)
        out = []
        ends = list(self.episode_starts[1:]) + [len(self)] if self.episode_ends is None else list(self.episode_ends)
        for start, end, ret, length in zip(
            self.episode_starts, ends, self.episode_returns, self.episode_lengths, strict=True
        ):
            ep: dict[str, Any] = {
                f.name: getattr(host, f.name)[start:end] for f in dataclasses.fields(Transitions)
            }
            ep["return"] = float(ret)
            ep["length"] = int(length)
            out.append(ep)
        return out

    # --- preprocessing -------------------------------------------------------------------------
    def normalize_observations(self, eps: float = 1e-3) -> Dataset:
        """Standardize observations with the dataset's mean and population std + ``eps``.

        ``mu`` and ``sigma`` come from ``observations`` only (as TD3+BC, PRDC and A2PR do) and are
        applied to both ``observations`` and ``next_observations``. Idempotent: a dataset already
        normalized is returned unchanged.
        """
        if self.info.obs_mean is not None:
            return self
        if eps < 0:
            raise ConfigError(f"observation-normalization eps must be >= 0, got {eps}")
        obs = np.asarray(self.transitions.observations, np.float64)
        mean = obs.mean(0).astype(np.float32)
        std = (obs.std(0) + eps).astype(np.float32)
        if np.any(std == 0):
            raise ConfigError(
                f"dataset {self.info.name!r} has constant observation dimensions; "
                "normalize with eps > 0"
            )
        t = self.transitions
        m, s = jnp.asarray(mean), jnp.asarray(std)
        t = t.replace(observations=normalize(t.observations, m, s),
                      next_observations=normalize(t.next_observations, m, s))
        info = dataclasses.replace(self.info, obs_mean=tuple(mean.tolist()), obs_std=tuple(std.tolist()))
        return dataclasses.replace(self, transitions=t, info=info)

    def transform_rewards(self, kind: str, scale: float | None = None, shift: float | None = None) -> Dataset:
        """Apply a reward transform used by the papers and record it in ``info``.

        Args:
          kind: ``none``; ``locomotion``: ``r * 1000 / (max_return - min_return)`` over complete
            episodes; ``locomotion_iql``: the same with the returns of :func:`iql_return_range`
            (IQL-PyTorch/O-DICE, which cut episodes every ``max_episode_steps`` transitions);
            ``antmaze``: ``r * scale + shift`` with an agent's AntMaze constants, which the papers
            do not share (PRDC ``10000 r - 1``, O-DICE ``3 r - 3``, IQL ``r - 1``), so both must be
            given: the agent configs' presets hold them (docs/presets.md); ``affine``:
            ``r * scale + shift`` (default scale 1, shift 0).
          scale, shift: used by ``antmaze`` (required) and ``affine``.

        Raises:
          ConfigError: an unknown kind, ``antmaze`` without ``scale`` and ``shift``, or a dataset
            that already carries a transform.
        """
        if kind not in REWARD_TRANSFORMS:
            raise ConfigError(f"unknown reward transform {kind!r}; expected one of {REWARD_TRANSFORMS}")
        if kind == "antmaze" and (scale is None or shift is None):
            raise ConfigError(
                "reward transform 'antmaze' needs reward_scale and reward_shift (r' = scale * r + shift): the "
                "papers differ (PRDC 10000 r - 1, O-DICE 3 r - 3, IQL r - 1); give both, or leave the transform "
                "to training, which applies the agent config's (offreg.resolve_config(agent, dataset))"
            )
        scale = 1.0 if scale is None else float(scale)
        shift = 0.0 if shift is None else float(shift)
        if self.info.reward_transform != "none":
            raise ConfigError(
                f"dataset {self.info.name!r} already has reward transform "
                f"{self.info.reward_transform!r}; load it again to apply another"
            )
        if kind == "none":
            return self
        if kind in ("locomotion", "locomotion_iql"):
            scale, shift = 1000.0 / self._return_spread(kind), 0.0
        t = self.transitions
        t = t.replace(rewards=t.rewards * jnp.float32(scale) + jnp.float32(shift))
        info = dataclasses.replace(
            self.info, reward_transform=kind, reward_scale=float(scale), reward_shift=float(shift)
        )
        return dataclasses.replace(self, transitions=t, info=info)

    def _return_spread(self, kind: str) -> float:
        """``max_return - min_return`` of the ``locomotion`` (complete episodes) or ``locomotion_iql``
        (:func:`iql_return_range`) scaling.

        Raises:
          DatasetError: too few episodes, or an empty range.
        """
        if kind == "locomotion":
            if len(self.episode_returns) < 2:
                raise DatasetError(
                    f"dataset {self.info.name!r} needs at least two complete episodes for the "
                    "'locomotion' reward scaling"
                )
            spread = float(np.max(self.episode_returns) - np.min(self.episode_returns))
            if spread <= 0:
                raise DatasetError(f"dataset {self.info.name!r}: all episode returns are equal")
            return spread
        lo, hi = iql_return_range(
            np.asarray(self.transitions.rewards), np.asarray(self.transitions.terminals), self.info.max_episode_steps,
        )
        if hi - lo <= 0:
            raise DatasetError(
                f"dataset {self.info.name!r}: the 'locomotion_iql' return range is empty; use reward_transform 'none'"
            )
        return float(hi - lo)


def iql_return_range(rewards: np.ndarray, terminals: np.ndarray, max_episode_steps: int) -> tuple[float, float]:
    """Min and max episode return as IQL-PyTorch's and O-DICE's ``return_range`` compute them.

    Walks the ``qlearning_dataset`` transitions in order and closes an episode at a terminal or
    after every ``max_episode_steps`` transitions (timeout rows were already dropped, so this cut
    drifts from the true episode ends); the final unfinished episode is excluded.

    Args:
      rewards: ``[N]`` raw rewards in dataset order.
      terminals: ``[N]`` terminal flags.
      max_episode_steps: the cut length (1000 for locomotion).

    Returns:
      ``(min_return, max_return)`` over the closed episodes.

    Raises:
      DatasetError: no episode is closed.
    """
    returns, ret, length = [], 0.0, 0
    for r, d in zip(np.asarray(rewards, np.float64).tolist(), np.asarray(terminals).tolist(), strict=True):
        ret += r
        length += 1
        if d or length == max_episode_steps:
            returns.append(ret)
            ret, length = 0.0, 0
    if not returns:
        raise DatasetError(
            f"no episode ends within {len(rewards)} transitions (no terminal and fewer than "
            f"{max_episode_steps}); use reward_transform 'none'"
        )
    return float(min(returns)), float(max(returns))


def sample(transitions: Transitions, key: PRNGKey, batch_size: int) -> Transitions:
    """Uniformly sample ``batch_size`` transitions with replacement. Pure; jit/scan/vmap-safe.

    Args:
      transitions: the device-resident dataset (leading axis N).
      key: PRNG key.
      batch_size: static batch size B.

    Returns:
      Transitions with leading axis B.
    """
    n = transitions.rewards.shape[0]
    idx = jax.random.randint(key, (batch_size,), 0, n)
    batch = jax.tree_util.tree_map(lambda x: jnp.take(x, idx, axis=0), transitions)
    # Materialize the batch once: without the barrier XLA may fuse the gather from the whole
    # dataset into each consumer of the batch and repeat it (measured in
    # experiments/bench/data_loading.py).
    return jax.lax.optimization_barrier(batch)


def from_arrays(
    observations: Any,
    actions: Any,
    rewards: Any,
    next_observations: Any,
    terminals: Any,
    info: DatasetInfo,
    episode_starts: Sequence[int] | np.ndarray | None = None,
    episode_returns: Sequence[float] | np.ndarray | None = None,
    episode_lengths: Sequence[int] | np.ndarray | None = None,
    episode_ends: Sequence[int] | np.ndarray | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from host arrays: validate, cast to float32 and put on the device.

    Raises:
      DatasetError: shapes disagree, the dataset is empty, or values are not finite.
    """
    arrays = {
        "observations": np.asarray(observations),
        "actions": np.asarray(actions),
        "rewards": np.asarray(rewards).reshape(-1),
        "next_observations": np.asarray(next_observations),
        "terminals": np.asarray(terminals).reshape(-1),
    }
    n = arrays["rewards"].shape[0]
    if n == 0:
        raise DatasetError(f"dataset {info.name!r} has no transitions; check the file or the episode filter")
    for k, v in arrays.items():
        if v.shape[0] != n:
            raise DatasetError(
                f"dataset {info.name!r}: {k} has {v.shape[0]} rows but rewards has {n}; "
                "all arrays must have the same length"
            )
    for k in ("observations", "next_observations"):
        if arrays[k].ndim != 2 or arrays[k].shape[1] != info.obs_dim:
            raise DatasetError(
                f"dataset {info.name!r}: {k} has shape {arrays[k].shape}, expected (N, {info.obs_dim})"
            )
    if arrays["actions"].ndim != 2 or arrays["actions"].shape[1] != info.act_dim:
        raise DatasetError(
            f"dataset {info.name!r}: actions has shape {arrays['actions'].shape}, expected (N, {info.act_dim})"
        )
    out = {}
    for k, v in arrays.items():
        v = v.astype(np.float32, copy=False)
        bad = int(np.size(v) - np.count_nonzero(np.isfinite(v)))
        if bad:
            raise DatasetError(
                f"dataset {info.name!r}: {k} has {bad} NaN/Inf values; clean or regenerate the file"
            )
        out[k] = jnp.asarray(v)
    ep = (
        np.zeros(0, np.int64) if episode_starts is None else np.asarray(episode_starts, np.int64),
        np.zeros(0, np.float64) if episode_returns is None else np.asarray(episode_returns, np.float64),
        np.zeros(0, np.int64) if episode_lengths is None else np.asarray(episode_lengths, np.int64),
    )
    info = dataclasses.replace(info, num_transitions=n, num_episodes=len(ep[1]))
    ends = None if episode_ends is None else np.asarray(episode_ends, np.int64)
    return Dataset(Transitions(**out), info, *ep, episode_ends=ends)
