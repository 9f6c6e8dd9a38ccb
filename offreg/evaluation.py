"""Policy evaluation: deterministic rollouts in the dataset's environment and D4RL normalized scores.

Protocol (the same for every agent):

- ``episodes`` environments are created with :func:`offreg.envs.make_env` and environment ``i`` is
  reset with seed ``seed + i``, so the start states depend only on ``seed`` and are the same at every
  evaluation of a run (as in PRDC's and A2PR's ``eval.py``, which seed a fresh environment with
  ``seed + 100``; the caller picks the base seed).
- All environments advance in lockstep: one batched call ``agent.act(observations [B, obs_dim])`` per
  step (jitted for JAX agents), then each unfinished environment steps once. An episode ends when
  the environment terminates or truncates it, or after ``max_episode_steps`` steps.
- ``agent.act`` receives *raw* environment observations; the agent applies its own observation
  normalization. Box actions are clipped to the action space bounds before stepping, as D4RL's
  ``NormalizedBoxEnv`` does (rewards therefore charge the clipped action). Discrete actions are cast
  to integers.
- The return of an episode is its undiscounted sum of rewards. The normalized score is
  ``100 * (return - ref_min) / (ref_max - ref_min)`` with the dataset's reference scores (D4RL's for
  D4RL datasets); ``mean_score`` is the score of ``mean_return``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from offreg.data.core import Dataset, DatasetInfo
from offreg.envs import RECORDED, env_names, eval_path, make_env
from offreg.envs.mujoco import LOCOMOTION
from offreg.envs.rollout import Lockstep, observation_dtype
from offreg.errors import ConfigError, EnvironmentError_, TrainingError, unknown_name
from offreg.provenance import package_versions, simulator_versions
from offreg.seeds import seed_axes


@dataclasses.dataclass(frozen=True, eq=False)
class EvalResult:
    """The outcome of one evaluation.

    Attributes:
      returns: float64 ``[episodes]`` undiscounted return of each episode (environment ``i`` reset
        with seed ``seed + i``).
      lengths: int64 ``[episodes]`` number of steps of each episode.
      normalized: float64 ``[episodes]`` D4RL normalized score of each episode, or ``None`` when no
        reference scores are known.
      mean_return: mean of ``returns``.
      std_return: population standard deviation (``ddof=0``) of ``returns``.
      mean_score: normalized score of ``mean_return`` (= mean of ``normalized``), or ``None``.
      env_id: the offreg environment name (``gymnasium:<id>`` for a dataset's recorded environment).
      versions: ``gymnasium`` (and ``mujoco`` for MuJoCo environments) versions and ``environment``,
        the exact Gymnasium environment used (e.g. ``Hopper-v4``).
      seed: the base reset seed.
      eval_path: which evaluation path the score came from (:func:`offreg.envs.eval_path`:
        ``d4rl-env``, ``recorded-env``, ``gymnasium-robotics+d4rl-reward``, ``offreg-env``).
    """

    returns: np.ndarray
    lengths: np.ndarray
    normalized: np.ndarray | None
    mean_return: float
    std_return: float
    mean_score: float | None
    env_id: str
    versions: dict[str, str]
    seed: int = 0
    eval_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (arrays become lists)."""
        return {
            "returns": self.returns.tolist(),
            "lengths": self.lengths.tolist(),
            "normalized": None if self.normalized is None else self.normalized.tolist(),
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "mean_score": self.mean_score,
            "env_id": self.env_id,
            "versions": dict(self.versions),
            "seed": self.seed,
            "eval_path": self.eval_path,
        }


# --- public API ----------------------------------------------------------------------------------
def evaluate(
    agent: Any,
    dataset_or_env: Dataset | DatasetInfo | str,
    episodes: int = 10,
    seed: int = 0,
    max_episode_steps: int | None = None,
) -> EvalResult:
    """Roll out ``agent``'s deterministic policy for ``episodes`` episodes, vectorized across episodes.

    Args:
      agent: anything with ``act(observations [B, obs_dim]) -> actions [B, act_dim]`` (``[B]`` for a
        discrete action space) on raw observations. A JAX pytree agent is jitted (compiled once per
        agent structure and batch size); other objects are called as they are.
      dataset_or_env: a :class:`~offreg.data.Dataset` or :class:`~offreg.data.DatasetInfo` (its
        ``env_id``, reference scores and time limit are used), or an offreg environment name
        (``hopper``, ...; D4RL reference scores for the four locomotion environments, none otherwise),
        or ``gymnasium:<id>`` (``gymnasium.make(<id>)``, no reference scores).
      episodes: number of episodes E; environment ``i`` is reset with seed ``seed + i``.
      seed: base reset seed.
      max_episode_steps: step limit per episode; default: the dataset's ``max_episode_steps``, else
        the environment's own time limit.

    Returns:
      An :class:`EvalResult`.

    Raises:
      EnvironmentError_: the dataset has no evaluation environment, or the agent's observation or
        action shapes do not match the environment.
      UnknownNameError: an unknown environment name.
      ConfigError: a bad ``episodes``, ``seed`` or ``max_episode_steps``.
      TrainingError: the agent returned non-finite actions.
    """
    target = _resolve(dataset_or_env)
    episodes, seed = _check_counts(episodes, seed)
    envs = [make_env(target.env_id, **target.env_kwargs) for _ in range(episodes)]
    try:
        horizon = _horizon(max_episode_steps, target, envs[0])
        _check_obs_dim(target, envs[0])
        policy = _make_policy(agent, envs[0], episodes, target.env_id, stacked=None)
        returns, lengths = _rollout(envs, policy, [seed + i for i in range(episodes)], horizon)
        versions = _versions(target.env_id, envs[0])
    finally:
        _close(envs)
    return _result(returns, lengths, target, versions, seed)


def evaluate_seeds(
    stacked_agent: Any,
    dataset_or_env: Dataset | DatasetInfo | str,
    episodes: int = 10,
    seed: int | Sequence[int] = 0,
    max_episode_steps: int | None = None,
) -> list[EvalResult]:
    """Evaluate S agents stacked along a leading seed axis (as ``jax.vmap(create)`` returns them).

    All S x E environments run in lockstep with one jitted ``jax.vmap(act)`` call per step on
    observations ``[S, E, obs_dim]``. Agent ``s``'s environment ``i`` is reset with seed
    ``seed_s + i``, so ``evaluate_seeds(stacked, d, E, seed)[s]`` equals
    ``evaluate(agent_s, d, E, seed_s)``.

    Args:
      stacked_agent: a JAX pytree agent whose array leaves all have leading dimension S.
      seed: one base reset seed for every agent, or a sequence of S base seeds, one per agent.
      dataset_or_env, episodes, max_episode_steps: as in :func:`evaluate`.

    Returns:
      S :class:`EvalResult` objects, one per seed, in the order of the leading axis.

    Raises:
      ConfigError: the agent is not a JAX pytree with a common leading axis.
      And everything :func:`evaluate` raises.
    """
    target = _resolve(dataset_or_env)
    num_seeds = _num_seeds(stacked_agent)
    base_seeds = [seed] * num_seeds if isinstance(seed, int | np.integer) else list(seed)
    if len(base_seeds) != num_seeds:
        raise ConfigError(f"seed must be an integer or {num_seeds} integers (one per agent), got {seed!r}")
    for s in base_seeds:
        episodes, _ = _check_counts(episodes, s)
    base_seeds = [int(s) for s in base_seeds]
    envs = [make_env(target.env_id, **target.env_kwargs) for _ in range(num_seeds * episodes)]
    try:
        horizon = _horizon(max_episode_steps, target, envs[0])
        _check_obs_dim(target, envs[0])
        policy = _make_policy(stacked_agent, envs[0], episodes, target.env_id, stacked=num_seeds)
        seeds = [s + i for s in base_seeds for i in range(episodes)]
        returns, lengths = _rollout(envs, policy, seeds, horizon)
        versions = _versions(target.env_id, envs[0])
    finally:
        _close(envs)
    returns, lengths = returns.reshape(num_seeds, episodes), lengths.reshape(num_seeds, episodes)
    return [_result(returns[s], lengths[s], target, versions, base_seeds[s]) for s in range(num_seeds)]


# --- what to evaluate ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Target:
    env_id: str
    name: str
    obs_dim: int | None
    max_episode_steps: int | None
    info: DatasetInfo | None
    reference: tuple[float, float] | None
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def _resolve(dataset_or_env: Any) -> _Target:
    if isinstance(dataset_or_env, Dataset):
        dataset_or_env = dataset_or_env.info
    if isinstance(dataset_or_env, DatasetInfo):
        info = dataset_or_env
        if info.env_id is None:
            raise EnvironmentError_(
                f"dataset {info.name!r} has no evaluation environment (env_id is None): no Gymnasium "
                "environment reproduces its dynamics; evaluate a Minari dataset recorded in the environment "
                "instead (minari/<id>, see `offreg datasets list`), or train with evaluation off"
            )
        ref = None
        if info.ref_min_score is not None and info.ref_max_score is not None:
            ref = (float(info.ref_min_score), float(info.ref_max_score))
        kwargs = dict(info.extra.get("env_kwargs") or {})
        return _Target(info.env_id, info.name, info.obs_dim, info.max_episode_steps, info, ref, kwargs)
    if isinstance(dataset_or_env, str):
        names = env_names()
        if dataset_or_env not in names and not dataset_or_env.startswith(RECORDED):
            raise unknown_name(
                "environment",
                dataset_or_env,
                names,
                "Pass an environment name from offreg.envs.env_names(), or the Dataset itself.",
            )
        spec = LOCOMOTION.get(dataset_or_env)
        ref = None if spec is None else (spec.ref_min_score, spec.ref_max_score)
        return _Target(dataset_or_env, dataset_or_env, None, None, None, ref)
    raise ConfigError(
        "dataset_or_env must be a Dataset, a DatasetInfo or an environment name, "
        f"got {type(dataset_or_env).__name__}"
    )


def _check_counts(episodes: Any, seed: Any) -> tuple[int, int]:
    if not isinstance(episodes, int | np.integer) or isinstance(episodes, bool) or episodes < 1:
        raise ConfigError(f"episodes must be a positive integer, got {episodes!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(episodes), int(seed)


def _horizon(max_episode_steps: Any, target: _Target, env: gym.Env) -> int:
    if max_episode_steps is None:
        max_episode_steps = target.max_episode_steps
        if max_episode_steps is None and env.spec is not None:
            max_episode_steps = env.spec.max_episode_steps
        if max_episode_steps is None:
            raise ConfigError(
                f"environment {target.env_id!r} has no time limit; pass max_episode_steps to evaluate"
            )
    if not isinstance(max_episode_steps, int | np.integer) or isinstance(max_episode_steps, bool) or (
        max_episode_steps < 1
    ):
        raise ConfigError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
    return int(max_episode_steps)


def _check_obs_dim(target: _Target, env: gym.Env) -> None:
    shape = env.observation_space.shape
    if target.obs_dim is not None and shape is not None and tuple(shape) != (target.obs_dim,):
        raise EnvironmentError_(
            f"dataset {target.name!r} has {target.obs_dim}-dim observations but its environment "
            f"{target.env_id!r} gives shape {tuple(shape)}; fix the dataset's env_id"
        )


# --- the policy: one batched act call per step ---------------------------------------------------
def _act(agent: Any, observations: jax.Array) -> jax.Array:
    return agent.act(observations)


# Module-level jitted functions: their caches persist across calls, so evaluating the same kind of
# agent every E training steps compiles once per (agent structure, batch size).
def _act_seeds(agent: Any, observations: jax.Array) -> jax.Array:
    """``act`` of every seed, vmapped over the seed axis (shared fields such as ``step`` unbatched)."""
    return jax.vmap(_act, in_axes=(seed_axes(agent), 0))(agent, observations)


_act_jit = jax.jit(_act)
_act_seeds_jit = jax.jit(_act_seeds)


def _is_jax_pytree(agent: Any) -> bool:
    leaves = jax.tree_util.tree_leaves(agent)
    return bool(leaves) and all(isinstance(x, jax.Array | np.ndarray | np.generic | int | float) for x in leaves)


def _num_seeds(stacked_agent: Any) -> int:
    sizes: set[int | None] = set()
    if _is_jax_pytree(stacked_agent):  # the seed-axis leaves (not the shared step) must agree
        axes = jax.tree_util.tree_structure(stacked_agent).flatten_up_to(seed_axes(stacked_agent))
        leaves = jax.tree_util.tree_leaves(stacked_agent)
        sizes = {np.shape(x)[0] if np.ndim(x) else None for x, ax in zip(leaves, axes, strict=True) if ax is not None}
    if len(sizes) != 1 or None in sizes:
        raise ConfigError(
            "evaluate_seeds needs a JAX pytree agent whose array leaves share a leading seed axis "
            f"(got leading sizes {sorted(map(str, sizes))}); use evaluate for a single agent"
        )
    return int(sizes.pop())


def _make_policy(
    agent: Any, env: gym.Env, episodes: int, env_id: str, stacked: int | None
) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``policy(obs [N, *obs_shape]) -> actions [N, ...]`` ready for ``env.step``, checking shapes once.

    ``N = episodes`` for a single agent and ``S * episodes`` for ``stacked = S`` seeds.

    Long because: every observation/action layout is checked once here, before the rollout starts.
    """
    obs_space, act_space = env.observation_space, env.action_space
    obs_shape = tuple(obs_space.shape or ())
    obs_dtype = observation_dtype(obs_space)
    batch = (episodes,) if stacked is None else (stacked, episodes)
    n = int(np.prod(batch))
    call_shape = (*batch, *obs_shape)
    expected = _expected_action_shapes(act_space, batch)

    def mismatch(got: Any) -> EnvironmentError_:
        return EnvironmentError_(
            f"agent.act returned actions of shape {tuple(got)} for observations of shape {call_shape}, but "
            f"environment {env_id!r} takes actions {_space_text(act_space)}, i.e. shape {expected[0]}; "
            "evaluate the agent on the environment of its training dataset"
        )

    def obs_error(err: Exception) -> EnvironmentError_:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return EnvironmentError_(
            f"agent.act cannot take observations of shape {call_shape} from environment {env_id!r} "
            f"({type(err).__name__}: {first}); evaluate the agent on the environment of its training dataset"
        )

    use_jit = _is_jax_pytree(agent)
    if use_jit:
        fn = _act_jit if stacked is None else _act_seeds_jit
        try:
            out = jax.eval_shape(fn, agent, jax.ShapeDtypeStruct(call_shape, obs_dtype))
        except jax.errors.JAXTypeError:  # act is not traceable (host code): call it as it is
            if stacked is not None:
                raise ConfigError(
                    "evaluate_seeds needs a jit-able agent.act; use evaluate for each agent instead"
                ) from None
            use_jit = False
        except Exception as err:  # noqa: BLE001 - any trace failure here is a shape mismatch
            raise obs_error(err) from err
        else:
            if tuple(out.shape) not in expected:
                raise mismatch(out.shape)
    elif stacked is not None:
        raise ConfigError("evaluate_seeds needs a JAX pytree agent; use evaluate for each agent instead")

    convert = _action_converter(act_space, n)

    if use_jit:
        def policy(obs: np.ndarray) -> np.ndarray:
            return convert(np.asarray(fn(agent, obs.reshape(call_shape))))

        return policy

    checked = False

    def host_policy(obs: np.ndarray) -> np.ndarray:
        nonlocal checked
        if checked:
            return convert(np.asarray(agent.act(obs)))
        try:
            actions = np.asarray(agent.act(obs))
        except Exception as err:  # noqa: BLE001 - the first call validates the observation shape
            raise obs_error(err) from err
        if tuple(actions.shape) not in expected:
            raise mismatch(actions.shape)
        checked = True
        return convert(actions)

    return host_policy


def _expected_action_shapes(space: gym.Space, batch: tuple[int, ...]) -> list[tuple[int, ...]]:
    if isinstance(space, gym.spaces.Discrete):
        return [batch, (*batch, 1)]
    if isinstance(space, gym.spaces.Box):
        return [(*batch, *space.shape)]
    raise ConfigError(f"evaluation supports Box and Discrete action spaces, got {space}")


def _space_text(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"in Discrete({space.n})"
    return f"in a Box of shape {tuple(space.shape)}"


def _action_converter(space: gym.Space, n: int) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high

        def box(actions: np.ndarray) -> np.ndarray:
            actions = actions.reshape(n, *space.shape)
            if not np.all(np.isfinite(actions)):
                raise TrainingError(
                    "agent.act returned non-finite actions; the agent has diverged (check the training losses)"
                )
            return np.clip(actions, low, high)  # keeps the agent's float dtype

        return box

    def discrete(actions: np.ndarray) -> np.ndarray:
        actions = actions.reshape(n)
        if not np.issubdtype(actions.dtype, np.integer):
            if not np.all(np.isfinite(actions)) or np.any(actions != np.round(actions)):
                raise EnvironmentError_(
                    f"agent.act returned non-integer actions for a discrete action space ({space}); "
                    "return action indices"
                )
        return actions.astype(np.int64)

    return discrete


# --- rollouts ------------------------------------------------------------------------------------
def _rollout(
    envs: Sequence[gym.Env], policy: Callable[[np.ndarray], np.ndarray], seeds: Sequence[int], horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Step ``envs`` in lockstep (:class:`offreg.envs.rollout.Lockstep`, no reset) until every episode
    ends; return (returns float64 [N], lengths int64 [N]).

    Finished environments are no longer stepped; their last observation stays in the batch (its
    action is ignored) so the batch shape, and hence the compiled ``act``, never changes.
    """
    loop = Lockstep(envs, lambda k: seeds[k], horizon, autoreset=False)
    returns = np.zeros(len(envs), np.float64)
    lengths = np.zeros(len(envs), np.int64)
    while loop.running.any():
        step = loop.step(policy(loop.obs))
        returns += step.rewards  # 0 where an environment no longer runs
        lengths += step.running
    return returns, lengths


def _versions(env_id: str, env: gym.Env) -> dict[str, str]:
    try:
        from gymnasium.envs.mujoco import MujocoEnv
    except ImportError:  # pragma: no cover - mujoco is a core dependency
        MujocoEnv = ()  # noqa: N806
    simulator = simulator_versions()
    versions = dict(simulator) if isinstance(env.unwrapped, MujocoEnv) else {"gymnasium": simulator["gymnasium"]}
    if env_id in LOCOMOTION:
        versions["environment"] = LOCOMOTION[env_id].describe()
    elif env.spec is not None:
        versions["environment"] = env.spec.id
        if str(env.spec.entry_point).startswith("gymnasium_robotics"):
            versions.update(simulator, **package_versions(("gymnasium-robotics",)))
    else:
        versions["environment"] = type(env.unwrapped).__name__
    return versions


def _close(envs: Sequence[gym.Env]) -> None:
    for env in envs:
        env.close()


def _result(
    returns: np.ndarray, lengths: np.ndarray, target: _Target, versions: dict[str, str], seed: int
) -> EvalResult:
    normalized = mean_score = None
    mean_return = float(np.mean(returns))
    if target.reference is not None:
        if target.info is not None:
            normalized = np.asarray(target.info.normalized_score(returns), np.float64)
            mean_score = float(target.info.normalized_score(mean_return))
        else:
            lo, hi = target.reference
            normalized = 100.0 * (returns - lo) / (hi - lo)
            mean_score = 100.0 * (mean_return - lo) / (hi - lo)
    return EvalResult(
        returns=returns,
        lengths=lengths,
        normalized=normalized,
        mean_return=mean_return,
        std_return=float(np.std(returns)),
        mean_score=mean_score,
        env_id=target.env_id,
        versions=dict(versions),
        seed=seed,
        eval_path=eval_path(target.env_id),
    )
