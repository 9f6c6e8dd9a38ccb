"""Generate D4RL-style datasets: train a SAC behaviour policy, roll out its snapshots, write HDF5.

This follows D4RL's locomotion recipe (``Farama-Foundation/D4RL:scripts/generation/mujoco/*``; the D4RL
paper, arXiv 2004.07219) on the Gymnasium MuJoCo environments whose dynamics match D4RL's v2 data (``Hopper-v4``, ...):

- **SAC** (rlkit's batch variant): a tanh-Gaussian policy and twin critics, 2 x 256 ReLU, Adam 3e-4,
  gamma 0.99, tau 5e-3, batch 256, automatic entropy tuning toward ``-act_dim``. Like rlkit's
  ``TorchBatchRLAlgorithm`` it alternates ``chunk`` environment steps (1000) with ``chunk``
  gradient updates, which here are one jitted ``lax.scan`` sampling the replay buffer on the device.
  The first ``start_steps`` actions are uniform (rlkit collects its first 1000 steps before training).
- **Snapshots** of the policy every ``snapshot_every`` environment steps, each evaluated by
  ``eval_episodes`` episodes of the *sampling* policy (the policy the data is collected with).
- **Levels.** ``random``: uniform actions. ``expert``: the snapshot with the best evaluated return
  (D4RL used the final policy of a much longer run). ``medium``: the first snapshot whose return
  reaches ``medium_fraction`` (1/3) of D4RL's expert return (``REF_MAX_SCORE``), D4RL's early stop
  at about a third of expert; if the run gets there only with its best snapshot (or never), 1/3
  of the trained expert's return (:func:`choose_levels`).
  ``medium-replay``: the replay buffer up to the medium snapshot. ``medium-expert``: medium cut at
  its last complete episode, then expert (``stitch_dataset.py``).
- **Rollouts** sample from the policy (not its mean), ``max_episode_steps`` 1000; a step reaching the
  limit is a ``timeout`` and never a ``terminal`` (D4RL's ``collect_data.py``). qpos/qvel are recorded
  before the step. Files are gzip HDF5 in D4RL's layout (``collect_data.py``'s keys), float32, plus offreg metadata.

Determinism: every random number comes from a JAX key derived from the seed; environment ``k``-th
episode is reset with seed ``episode_seed(seed, k)``; a fixed snapshot and seed therefore give the same
arrays on every run on the same machine (and ``bundled`` datasets rely on it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flax.struct
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax

from offreg.atomic import atomic_write
from offreg.data.catalogue import LOCOMOTION_REF_SCORES
from offreg.errors import ConfigError, DatasetError, OffregError, unknown_name
from offreg.networks import EnsembleCritic, TanhGaussianActor, polyak

LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
"""The D4RL levels ``collect`` writes, in D4RL's names."""

GYM_IDS = {"hopper": "Hopper-v4", "halfcheetah": "HalfCheetah-v4", "walker2d": "Walker2d-v4"}
"""Fallback Gymnasium ids when ``offreg.envs`` lacks the name (v4: the dynamics of the ``openai/gym``
MuJoCo v2 classes D4RL v2 was collected with)."""

REF_SCORES = LOCOMOTION_REF_SCORES
"""D4RL's ``(REF_MIN_SCORE, REF_MAX_SCORE)`` per environment (``Farama-Foundation/D4RL:d4rl/infos.py``)."""


# --------------------------------------------------------------------------------------------------
# environments
# --------------------------------------------------------------------------------------------------
def known_env_names() -> list[str]:
    """Environment names ``collect`` accepts: offreg's registry plus the D4RL locomotion fallbacks."""
    import offreg.envs

    return sorted(set(offreg.envs.env_names()) | set(GYM_IDS))


def make_env(name: str):
    """The Gymnasium environment for an offreg environment name (``offreg.envs`` first, then Gymnasium).

    Raises:
      UnknownNameError: neither offreg nor the fallback table knows ``name``.
    """
    import offreg.envs

    if name in offreg.envs.env_names():
        return offreg.envs.make_env(name)
    if name in GYM_IDS:
        import warnings

        import gymnasium as gym

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gym.make(GYM_IDS[name])
    raise unknown_name("environment", name, known_env_names(), "Run `offreg collect --help` for the names.")


def episode_seed(seed: int, episode: int) -> int:
    """Reset seed of the ``episode``-th episode (counted over all parallel environments) of a run."""
    return int((seed * 1_000_003 + episode) % (2**31 - 1))


class EnvPool:
    """``num_envs`` environments stepped in lockstep, recording D4RL's per-step fields.

    Episodes get ids in the order they start (ids ``0..num_envs-1`` first); the ``k``-th episode is
    reset with ``episode_seed(seed, k)``, so the pool is deterministic given the actions.
    """

    def __init__(self, env_name: str, num_envs: int, seed: int):
        self.envs = [make_env(env_name) for _ in range(num_envs)]
        env = self.envs[0]
        self.env_name = env_name
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        self.act_low = np.asarray(env.action_space.low, np.float32)
        self.act_high = np.asarray(env.action_space.high, np.float32)
        spec = getattr(env, "spec", None)
        self.max_episode_steps = int(getattr(spec, "max_episode_steps", None) or 1000)
        self.gym_id = getattr(spec, "id", env_name)
        self.has_qpos = hasattr(env.unwrapped, "data") and hasattr(env.unwrapped.data, "qpos")
        self.seed = seed
        self.next_episode = 0
        self.episode_ids = np.zeros(num_envs, np.int64)
        self.t = np.zeros(num_envs, np.int64)
        self.obs = np.zeros((num_envs, self.obs_dim), np.float32)
        for i in range(num_envs):
            self._reset(i)

    def _reset(self, i: int) -> None:
        obs, _ = self.envs[i].reset(seed=episode_seed(self.seed, self.next_episode))
        self.obs[i] = np.asarray(obs, np.float32).reshape(-1)
        self.episode_ids[i] = self.next_episode
        self.next_episode += 1
        self.t[i] = 0

    def _qpos_qvel(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        data = self.envs[i].unwrapped.data
        return np.array(data.qpos, np.float32), np.array(data.qvel, np.float32)

    def step(self, actions: np.ndarray, log_probs: np.ndarray) -> list[dict[str, Any]]:
        """Step every environment once; finished environments are reset (with their next seed).

        Args:
          actions: ``[num_envs, act_dim]`` in the action space.
          log_probs: ``[num_envs]`` log-probability of each action under the behaviour policy.

        Returns:
          One record per environment: ``episode`` id, ``observations``, ``actions``, ``rewards``,
          ``terminals``, ``timeouts``, ``next_observations``, ``action_log_probs`` and, for MuJoCo
          environments, ``qpos``/``qvel`` before the step.
        """
        records = []
        for i, env in enumerate(self.envs):
            rec: dict[str, Any] = {"episode": int(self.episode_ids[i]), "observations": self.obs[i].copy()}
            if self.has_qpos:
                rec["qpos"], rec["qvel"] = self._qpos_qvel(i)
            next_obs, reward, terminated, truncated, _ = env.step(np.asarray(actions[i], np.float64))
            self.t[i] += 1
            timeout = bool(self.t[i] >= self.max_episode_steps)
            rec.update(
                actions=np.asarray(actions[i], np.float32),
                rewards=np.float32(reward),
                terminals=bool(terminated) and not timeout,
                timeouts=timeout,
                next_observations=np.asarray(next_obs, np.float32).reshape(-1),
                action_log_probs=np.float32(log_probs[i]),
            )
            records.append(rec)
            if terminated or truncated or timeout:
                self._reset(i)
            else:
                self.obs[i] = rec["next_observations"]
        return records

    def close(self) -> None:
        for env in self.envs:
            env.close()


# --------------------------------------------------------------------------------------------------
# policy
# --------------------------------------------------------------------------------------------------
def tanh_gaussian_sample(mean: jax.Array, log_std: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sample ``a = tanh(u)``, ``u ~ N(mean, exp(log_std)^2)``, and its log-density.

    ``log pi(a) = log N(u) - sum_i log(1 - tanh(u_i)^2)``, the Jacobian written stably as
    ``2 (log 2 - u - softplus(-2u))``. Shapes ``[..., d]`` -> ``([..., d], [...])``.
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    log_n = -0.5 * jnp.sum(eps**2, -1) - jnp.sum(log_std, -1) - 0.5 * mean.shape[-1] * jnp.log(2.0 * jnp.pi)
    log_det = jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), -1)
    return jnp.tanh(u), log_n - log_det


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Soft actor-critic (Haarnoja et al., 2018) as in rlkit, which generated D4RL's data.

    Critic: ``min_j Q'_j(s', a') - alpha log pi(a'|s')``, ``y = r + gamma (1 - d) (...)``, MSE per critic.
    Actor: ``E[alpha log pi(a|s) - min_j Q_j(s, a)]``. Temperature: ``-log_alpha (log pi + H_target)``.
    """

    hidden_dims: tuple[int, ...] = (256, 256)
    """Widths of the actor and critic hidden layers (D4RL: 256, 256)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    alpha_lr: float = 3e-4
    """Adam learning rate of ``log alpha``."""
    discount: float = 0.99
    """gamma."""
    tau: float = 5e-3
    """Polyak rate of the target critics."""
    batch_size: int = 256
    """Minibatch size."""
    init_alpha: float = 1.0
    """Initial temperature (rlkit: log alpha = 0)."""
    target_entropy: float | None = None
    """Entropy target; None means ``-act_dim``."""
    start_steps: int = 5000
    """Environment steps with uniform actions before the first update."""
    chunk: int = 1000
    """Environment steps collected between update phases, and updates per phase (rlkit: 1000/1000)."""


class SACState(flax.struct.PyTreeNode):
    """SAC's learnable and optimizer state; a pytree, updated functionally."""

    actor: Any
    critic: Any
    target_critic: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    step: jax.Array


class SAC:
    """SAC's networks, initialisation and jitted update phase for one environment's shapes."""

    def __init__(self, config: SACConfig, obs_dim: int, act_dim: int):
        self.config = config
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor_net = TanhGaussianActor(config.hidden_dims, act_dim)
        self.critic_net = EnsembleCritic(config.hidden_dims, num=2)
        self.actor_tx = optax.adam(config.actor_lr)
        self.critic_tx = optax.adam(config.critic_lr)
        self.alpha_tx = optax.adam(config.alpha_lr)
        self.target_entropy = -float(act_dim) if config.target_entropy is None else config.target_entropy
        self.update_phase = jax.jit(self._update_phase, static_argnums=(3,))

    def init(self, key: jax.Array) -> SACState:
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        act = jnp.zeros((1, self.act_dim), jnp.float32)
        actor = self.actor_net.init(k_actor, obs)
        critic = self.critic_net.init(k_critic, obs, act)
        log_alpha = jnp.asarray(np.log(self.config.init_alpha), jnp.float32)
        return SACState(
            actor=actor,
            critic=critic,
            target_critic=critic,
            log_alpha=log_alpha,
            actor_opt=self.actor_tx.init(actor),
            critic_opt=self.critic_tx.init(critic),
            alpha_opt=self.alpha_tx.init(log_alpha),
            step=jnp.zeros((), jnp.int32),
        )

    def update(self, state: SACState, batch: dict[str, jax.Array], key: jax.Array) -> tuple[SACState, dict]:
        """One SAC update on ``batch`` (critic, then actor, then temperature, then targets)."""
        cfg = self.config
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)

        # --- critic ---
        mean, log_std = self.actor_net.apply(state.actor, batch["next_observations"])
        next_a, next_logp = tanh_gaussian_sample(mean, log_std, k_next)
        next_q = self.critic_net.apply(state.target_critic, batch["next_observations"], next_a).min(0)
        target = batch["rewards"] + cfg.discount * (1.0 - batch["terminals"]) * (next_q - alpha * next_logp)
        target = jax.lax.stop_gradient(target)

        def critic_loss(params):
            q = self.critic_net.apply(params, batch["observations"], batch["actions"])
            return jnp.mean((q - target[None]) ** 2, axis=1).sum(), q.mean()

        (c_loss, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
        updates, critic_opt = self.critic_tx.update(grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, updates)

        # --- actor ---
        def actor_loss(params):
            mean, log_std = self.actor_net.apply(params, batch["observations"])
            a, logp = tanh_gaussian_sample(mean, log_std, k_pi)
            q = self.critic_net.apply(critic, batch["observations"], a).min(0)
            return jnp.mean(alpha * logp - q), logp

        (a_loss, logp), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
        updates, actor_opt = self.actor_tx.update(grads, state.actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, updates)

        # --- temperature ---
        entropy_gap = jax.lax.stop_gradient(logp + self.target_entropy)
        al_loss, grad = jax.value_and_grad(lambda la: -jnp.mean(la * entropy_gap))(state.log_alpha)
        updates, alpha_opt = self.alpha_tx.update(grad, state.alpha_opt, state.log_alpha)
        log_alpha = optax.apply_updates(state.log_alpha, updates)

        new = state.replace(
            actor=actor,
            critic=critic,
            target_critic=polyak(state.target_critic, critic, cfg.tau),
            log_alpha=log_alpha,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
            step=state.step + 1,
        )
        metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "alpha": alpha, "q": q_mean, "entropy": -logp.mean()}
        return new, metrics

    def _update_phase(self, state, buffer, size, num_updates, key):
        """``num_updates`` updates in one ``lax.scan``, minibatches drawn uniformly from ``buffer[:size]``."""

        def body(state, k):
            k_idx, k_up = jax.random.split(k)
            idx = jax.random.randint(k_idx, (self.config.batch_size,), 0, size)
            batch = {name: jnp.take(arr, idx, axis=0) for name, arr in buffer.items()}
            return self.update(state, batch, k_up)

        state, metrics = jax.lax.scan(body, state, jax.random.split(key, num_updates))
        return state, jax.tree_util.tree_map(jnp.mean, metrics)


@functools.partial(jax.jit, static_argnums=(3,))
def _policy_actions(actor_params, observations, key, hidden_dims):
    act_dim = actor_params["params"]["mean"]["Dense_0"]["bias"].shape[0]
    mean, log_std = TanhGaussianActor(hidden_dims, act_dim).apply(actor_params, observations)
    return tanh_gaussian_sample(mean, log_std, key)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _uniform_actions(key, num: int, act_dim: int):
    actions = jax.random.uniform(key, (num, act_dim), jnp.float32, -1.0, 1.0)
    return actions, jnp.full((num,), -act_dim * np.log(2.0), jnp.float32)


def policy_actions(
    actor_params: Any | None, observations: np.ndarray, key: jax.Array, act_low: np.ndarray, act_high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sample behaviour actions for ``[M, obs_dim]`` observations: the tanh-Gaussian snapshot, or
    uniform actions when ``actor_params`` is None. Returns ``(actions [M, act], log_probs [M])``
    rescaled from ``[-1, 1]`` to the action bounds (the identity for D4RL's tasks)."""
    if actor_params is None:
        a, logp = _uniform_actions(key, observations.shape[0], act_low.shape[0])
    else:
        hidden = tuple(int(v["Dense_0"]["bias"].shape[0]) for k, v in sorted(actor_params["params"].items())
                       if k.startswith("Linear_"))
        a, logp = _policy_actions(actor_params, jnp.asarray(observations), key, hidden)
    a = np.asarray(a)
    scale = (act_high - act_low) / 2.0
    logp = np.asarray(logp) - np.sum(np.log(scale))
    return act_low + (a + 1.0) * scale, logp


# --------------------------------------------------------------------------------------------------
# snapshots (npz, no pickle)
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# rollouts and the D4RL file
# --------------------------------------------------------------------------------------------------
FIELDS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
INFO_FIELDS = ("action_log_probs", "qpos", "qvel")


def rollout(
    env_name: str,
    actor_params: Any | None,
    num_steps: int,
    seed: int,
    num_envs: int = 10,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Collect ``num_steps`` rows in D4RL's layout from the sampling policy (uniform if params is None).

    Episodes run in ``num_envs`` environments; the output is episodes ``0, 1, 2, ...`` (in order of
    their start) concatenated and cut at ``num_steps`` rows, so the last episode may be incomplete
    (no terminal/timeout flag on its last row, as in D4RL's ``collect_data.py``). Actions of vector
    step ``i`` use the key ``fold_in(PRNGKey(seed), i)``.

    Returns:
      ``observations [N, obs]``, ``actions [N, act]``, ``rewards [N]``, ``terminals [N]`` bool,
      ``timeouts [N]`` bool, ``next_observations [N, obs]``, ``action_log_probs [N]``, and
      ``qpos``/``qvel`` for MuJoCo tasks; float32.
    """
    pool = EnvPool(env_name, num_envs, seed)
    key = jax.random.PRNGKey(seed)
    episodes: dict[int, list[dict]] = {}
    done: set[int] = set()
    total, prefix, i = 0, 0, 0
    while True:
        actions, logps = policy_actions(actor_params, pool.obs, jax.random.fold_in(key, i), pool.act_low, pool.act_high)
        for rec in pool.step(actions, logps):
            ep = rec.pop("episode")
            episodes.setdefault(ep, []).append(rec)
            if rec["terminals"] or rec["timeouts"]:
                done.add(ep)
        i += 1
        while prefix in done:  # grow the prefix of finished episodes
            total += len(episodes[prefix])
            prefix += 1
        if progress is not None:
            progress(total)
        if total >= num_steps:
            break
    pool.close()
    rows = [r for ep in range(prefix) for r in episodes[ep]][:num_steps]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def episode_returns(data: dict[str, np.ndarray]) -> np.ndarray:
    """Undiscounted returns of the complete episodes (ended by a terminal or a timeout) of a file."""
    ends = np.flatnonzero(np.logical_or(data["terminals"], data["timeouts"]))
    starts = np.concatenate([[0], ends[:-1] + 1])
    csum = np.concatenate([[0.0], np.cumsum(data["rewards"].astype(np.float64))])
    return csum[ends + 1] - csum[starts]


def trim_to_last_episode(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop the trailing incomplete episode (``stitch_dataset.py``'s cut before concatenating)."""
    ends = np.flatnonzero(np.logical_or(data["terminals"], data["timeouts"]))
    n = int(ends[-1]) + 1 if len(ends) else 0
    return {k: v[:n] for k, v in data.items()}


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


def simulator_versions() -> dict[str, str]:
    """Versions that determine the dynamics: ``mujoco``, ``gymnasium`` (and offreg's)."""
    import gymnasium

    import offreg

    try:
        import mujoco

        mj = mujoco.__version__
    except ImportError:  # pragma: no cover - mujoco is a core dependency
        mj = "absent"
    return {"mujoco_version": mj, "gymnasium_version": gymnasium.__version__, "offreg_version": offreg.__version__}


def write_d4rl(path: str | os.PathLike, data: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    """Write ``data`` as a D4RL HDF5 file at ``path`` (gzip; top-level arrays, ``infos/*``, ``metadata/*``).

    ``metadata`` values become scalar datasets (str -> bytes) or arrays under ``metadata/``; keys with
    ``/`` make groups (``policy/fc0/weight``). Not atomic: see :func:`atomic_write`.
    """
    import h5py

    with h5py.File(path, "w") as f:
        for k in FIELDS:
            f.create_dataset(k, data=data[k], compression="gzip", compression_opts=4)
        for k in INFO_FIELDS:
            if k in data:
                f.create_dataset(f"infos/{k}", data=data[k], compression="gzip", compression_opts=4)
        for k, v in metadata.items():
            f.create_dataset(f"metadata/{k}", data=v.encode() if isinstance(v, str) else v)


def level_metadata(
    env_name: str, gym_id: str, level: str, data: dict[str, np.ndarray], command: str, seed: int, **extra: Any
) -> dict[str, Any]:
    """The metadata every offreg-generated file carries (env id, level, behaviour returns, versions, command)."""
    rets = episode_returns(data)
    meta: dict[str, Any] = {
        "algorithm": "SAC" if level != "random" else "random",
        "env_id": env_name,
        "gym_id": gym_id,
        "level": level,
        "behavior_return_mean": float(rets.mean()) if len(rets) else float("nan"),
        "behavior_return_std": float(rets.std()) if len(rets) else float("nan"),
        "num_episodes": int(len(rets)),
        "command": command,
        "seed": int(seed),
        **simulator_versions(),
    }
    if env_name in REF_SCORES and len(rets):
        lo, hi = REF_SCORES[env_name]
        meta["behavior_normalized_score"] = float(100.0 * (rets.mean() - lo) / (hi - lo))
    meta.update(extra)
    return meta


# --------------------------------------------------------------------------------------------------
# SAC training with snapshots
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Snapshot:
    """A policy snapshot: the environment step it was taken at, its parameters and evaluated return."""

    step: int
    actor: Any
    return_mean: float
    return_std: float


@dataclasses.dataclass
class TrainResult:
    """What :func:`train_sac` returns: the snapshots and the whole replay buffer in insertion order."""

    snapshots: list[Snapshot]
    replay: dict[str, np.ndarray]
    gym_id: str


def evaluate_policy(env_name: str, actor_params: Any, episodes: int, seed: int) -> np.ndarray:
    """Returns of ``episodes`` episodes of the sampling policy (one per environment, run in lockstep)."""
    pool = EnvPool(env_name, episodes, seed)
    key = jax.random.PRNGKey(seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, bool)
    i = 0
    while running.any():
        a, lp = policy_actions(actor_params, pool.obs, jax.random.fold_in(key, i), pool.act_low, pool.act_high)
        for j, rec in enumerate(pool.step(a, lp)):
            if running[j]:
                returns[j] += float(rec["rewards"])
                if rec["terminals"] or rec["timeouts"]:
                    running[j] = False
        i += 1
    pool.close()
    return returns


def train_sac(
    env_name: str,
    total_steps: int,
    seed: int = 0,
    config: SACConfig = SACConfig(),
    snapshot_every: int = 10_000,
    eval_episodes: int = 10,
    log: Callable[[str], None] | None = print,
    on_snapshot: Callable[[Snapshot, dict[str, np.ndarray]], None] | None = None,
) -> TrainResult:
    """Train SAC for ``total_steps`` environment steps (one environment, as rlkit), with snapshots.

    ``on_snapshot(snapshot, replay_so_far)`` is called at each snapshot (views, valid during the call).

    Returns:
      The snapshots (every ``snapshot_every`` steps, and at the end) and the replay buffer as
      D4RL-layout arrays in the order the transitions were collected (a single environment, so
      episodes are contiguous).
    """
    pool = EnvPool(env_name, 1, seed)
    sac = SAC(config, pool.obs_dim, pool.act_dim)
    root = jax.random.PRNGKey(seed)
    k_init, k_act, k_upd = jax.random.split(root, 3)
    state = sac.init(k_init)
    obs_dim, act_dim = pool.obs_dim, pool.act_dim
    buf: dict[str, np.ndarray] = {
        "observations": np.zeros((total_steps, obs_dim), np.float32),
        "actions": np.zeros((total_steps, act_dim), np.float32),
        "rewards": np.zeros(total_steps, np.float32),
        "next_observations": np.zeros((total_steps, obs_dim), np.float32),
        "terminals": np.zeros(total_steps, np.float32),
        "timeouts": np.zeros(total_steps, bool),
        "action_log_probs": np.zeros(total_steps, np.float32),
    }
    if pool.has_qpos:
        qpos, qvel = pool._qpos_qvel(0)
        buf["qpos"] = np.zeros((total_steps, qpos.shape[0]), np.float32)
        buf["qvel"] = np.zeros((total_steps, qvel.shape[0]), np.float32)
    learn_keys = ("observations", "actions", "rewards", "next_observations", "terminals")

    def replay_view(n: int) -> dict[str, np.ndarray]:
        view = {k: v[:n] for k, v in buf.items()}
        view["terminals"] = view["terminals"].astype(bool)
        return view

    snapshots: list[Snapshot] = []
    t0 = time.time()
    metrics: dict[str, float] = {}
    for step in range(total_steps):
        key = jax.random.fold_in(k_act, step)
        params = None if step < config.start_steps else state.actor
        a, lp = policy_actions(params, pool.obs, key, pool.act_low, pool.act_high)
        (rec,) = pool.step(a, lp)
        for k in buf:
            buf[k][step] = rec[k]
        n = step + 1
        if n >= config.start_steps and n % config.chunk == 0:
            device_buf = {k: jnp.asarray(buf[k]) for k in learn_keys}
            state, m = sac.update_phase(state, device_buf, n, config.chunk, jax.random.fold_in(k_upd, n))
            metrics = {k: float(v) for k, v in m.items()}
        if n % snapshot_every == 0 or n == total_steps:
            actor = jax.device_get(state.actor)
            rets = evaluate_policy(env_name, actor, eval_episodes, seed + 10_000 + n)
            snap = Snapshot(n, actor, float(rets.mean()), float(rets.std()))
            snapshots.append(snap)
            if on_snapshot is not None:
                on_snapshot(snap, replay_view(n))
            if log is not None:
                ms = " ".join(f"{k}={v:.3g}" for k, v in metrics.items())
                log(f"[sac {env_name}] step {n} return {snap.return_mean:.1f} +- {snap.return_std:.1f} "
                    f"({time.time() - t0:.0f}s) {ms}")
    pool.close()
    replay = replay_view(total_steps)
    return TrainResult(snapshots, replay, pool.gym_id)


def choose_levels(
    snapshots: Sequence[Snapshot], medium_fraction: float, expert_return: float | None = None
) -> tuple[Snapshot, Snapshot, float]:
    """Pick the medium and expert snapshots: ``(medium, expert, medium_target)``.

    The expert is the best-evaluated snapshot. The medium snapshot is the first whose evaluated return
    reaches ``medium_target = medium_fraction * expert_return``, where ``expert_return`` is the
    reference expert's return (D4RL's ``REF_MAX_SCORE``, the return of D4RL's SAC expert, so that
    "medium" means what it means in D4RL). When no snapshot before the expert reaches it (a short
    run), or when ``expert_return`` is None, the target is ``medium_fraction`` times the trained
    expert's return.
    """
    expert = max(snapshots, key=lambda s: s.return_mean)
    target = medium_fraction * expert_return if expert_return is not None else None
    medium = None if target is None else next((s for s in snapshots if s.return_mean >= target), None)
    if medium is None or medium.step >= expert.step:
        target = medium_fraction * expert.return_mean
        medium = next(s for s in snapshots if s.return_mean >= target)
    return medium, expert, float(target)


def replay_until(replay: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    """The first ``step`` rows of the replay buffer; the last row of a cut-off episode becomes a timeout
    (so no loader bootstraps across it into the next, unrelated row)."""
    out = {k: v[:step].copy() for k, v in replay.items()}
    if step and not (out["terminals"][-1] or out["timeouts"][-1]):
        out["timeouts"][-1] = True
    return out


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------
def parse_levels(levels: str | Sequence[str]) -> list[str]:
    """Parse ``random,medium`` (or a list) into levels, checking each name.

    Raises:
      UnknownNameError: an unknown level (with suggestions).
    """
    items = [s.strip() for s in levels.split(",")] if isinstance(levels, str) else list(levels)
    items = [s for s in items if s]
    if not items:
        raise ConfigError(f"no dataset level given; expected some of {', '.join(LEVELS)}")
    for s in items:
        if s not in LEVELS:
            raise unknown_name("dataset level", s, LEVELS, f"Levels: {', '.join(LEVELS)}.")
    return list(dict.fromkeys(items))


def check_output_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` if needed and check that it is a writable directory.

    Raises:
      OffregError: ``out`` is a file, cannot be created, or is not writable.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OffregError(f"--out {str(out)!r} is a file, not a directory; give a directory path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".offreg-write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OffregError(
            f"--out {str(out)!r} is not writable ({e.strerror or e}); choose a directory you can write to"
        ) from e
    return out


def collect(
    env: str,
    levels: str | Sequence[str] = LEVELS,
    out: str | os.PathLike = ".",
    *,
    train_steps: int = 300_000,
    level_steps: int = 1_000_000,
    seed: int = 0,
    medium_fraction: float = 1.0 / 3.0,
    snapshot_every: int = 10_000,
    eval_episodes: int = 10,
    num_envs: int = 10,
    config: SACConfig = SACConfig(),
    command: str | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Path]:
    """Generate D4RL-style datasets for ``env`` at ``levels`` into ``out`` (the ``offreg collect`` command).

    Files are ``{out}/{env}-{level}.hdf5``; policy snapshots go to ``{out}/snapshots/step{N}.npz``
    with ``{out}/snapshots/snapshots.json`` listing their evaluated returns. Each file is written to a
    temporary name and renamed, so an interrupted run leaves no partial file.

    Args:
      env: offreg environment name (``hopper``, ``halfcheetah``, ``walker2d``, ...).
      levels: comma-separated or a list of :data:`LEVELS`.
      out: output directory (created if needed).
      train_steps: SAC environment steps (skipped if only ``random`` is asked for).
      level_steps: rows of each rollout level (D4RL: 1,000,000; medium-expert has up to twice that).
      seed: seed of training, evaluation and rollouts.
      medium_fraction: the medium snapshot is the first reaching this fraction of the expert's return
        (D4RL's expert return for D4RL's tasks; see :func:`choose_levels`).
      snapshot_every: environment steps between snapshots.
      eval_episodes: episodes per snapshot evaluation.
      num_envs: environments stepped in lockstep during rollouts.
      config: SAC hyperparameters.
      command: recorded in the metadata (default: this process's command line).

    Returns:
      ``{level: path}`` of the files written.

    Raises:
      UnknownNameError: unknown environment or level. ConfigError: a non-positive budget.
      OffregError: ``out`` is not a writable directory.
    """
    todo = parse_levels(levels)
    if env not in known_env_names():
        raise unknown_name("environment", env, known_env_names(), "Run `offreg collect --help` for the names.")
    for name, v in (("train_steps", train_steps), ("level_steps", level_steps), ("snapshot_every", snapshot_every),
                    ("eval_episodes", eval_episodes), ("num_envs", num_envs)):
        if int(v) <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {v}")
    if not 0.0 < medium_fraction <= 1.0:
        raise ConfigError(f"medium_fraction must be in (0, 1], got {medium_fraction}")
    needs_sac = any(lv != "random" for lv in todo)
    if needs_sac and train_steps < config.start_steps + config.chunk:
        raise ConfigError(
            f"train_steps={train_steps} leaves no SAC update; use at least start_steps + chunk = "
            f"{config.start_steps + config.chunk} (or a smaller SACConfig.start_steps/chunk)"
        )
    out_dir = check_output_dir(out)
    command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    say = log or (lambda s: None)
    probe = EnvPool(env, 1, seed)
    gym_id = probe.gym_id
    probe.close()
    paths: dict[str, Path] = {}

    def write_level(level: str, data: dict[str, np.ndarray], **extra: Any) -> None:
        meta = level_metadata(env, gym_id, level, data, command, seed, **extra)
        path = out_dir / f"{env}-{level}.hdf5"
        atomic_write(path, lambda p: write_d4rl(p, data, meta))
        paths[level] = path
        say(f"[collect] wrote {path} ({len(data['rewards'])} rows, behaviour return "
            f"{meta['behavior_return_mean']:.1f} +- {meta['behavior_return_std']:.1f})")

    if "random" in todo:
        write_level("random", rollout(env, None, level_steps, seed, num_envs))
    if not needs_sac:
        return paths

    snap_dir = out_dir / "snapshots"

    def keep(snap: Snapshot, replay: dict[str, np.ndarray]) -> None:
        save_snapshot(snap_dir / f"step{snap.step}.npz", snap.actor,
                      {"env_id": env, "step": snap.step, "return_mean": snap.return_mean,
                       "return_std": snap.return_std, "seed": seed, "hidden_dims": list(config.hidden_dims)})

    result = train_sac(env, train_steps, seed, config, snapshot_every, eval_episodes, log, keep)
    medium, expert, target = choose_levels(result.snapshots, medium_fraction, REF_SCORES.get(env, (0, None))[1])
    index = {"snapshots": [{"step": s.step, "return_mean": s.return_mean, "return_std": s.return_std}
                           for s in result.snapshots], "medium_step": medium.step, "expert_step": expert.step,
             "medium_target": target, "config": dataclasses.asdict(config)}
    atomic_write(snap_dir / "snapshots.json", lambda p: p.write_text(json.dumps(index, indent=2)))
    say(f"[collect] medium = step {medium.step} ({medium.return_mean:.1f}), expert = step {expert.step} "
        f"({expert.return_mean:.1f})")

    def policy_meta(s: Snapshot) -> dict[str, Any]:
        return {"iteration": np.int32(s.step), "snapshot_step": int(s.step), **actor_metadata(s.actor)}

    rollouts: dict[str, dict[str, np.ndarray]] = {}
    for level, snap in (("medium", medium), ("expert", expert)):
        if level in todo or "medium-expert" in todo:
            rollouts[level] = rollout(env, snap.actor, level_steps, seed + (1 if level == "medium" else 2), num_envs)
            if level in todo:
                write_level(level, rollouts[level], **policy_meta(snap))
    if "medium-replay" in todo:
        write_level("medium-replay", replay_until(result.replay, medium.step), iteration=np.int32(medium.step))
    if "medium-expert" in todo:
        med = trim_to_last_episode(rollouts["medium"])
        both = {k: np.concatenate([med[k], rollouts["expert"][k]])[: 2 * level_steps] for k in med}
        write_level("medium-expert", both)
    return paths


def add_collect_arguments(p: Any) -> None:
    """The ``offreg collect`` options (an ``argparse`` parser)."""
    p.add_argument("--env", required=True, help="environment: hopper, halfcheetah, walker2d, ant, ...")
    p.add_argument("--levels", default=",".join(LEVELS), help=f"comma-separated levels (default: {','.join(LEVELS)})")
    p.add_argument("--out", required=True, help="output directory for <env>-<level>.hdf5 and snapshots/")
    p.add_argument("--train-steps", type=int, default=300_000, help="SAC environment steps (default: 300000)")
    p.add_argument("--level-steps", type=int, default=1_000_000,
                   help="rows per rollout level (default: 1000000, D4RL's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--medium-fraction", type=float, default=1.0 / 3.0,
                   help="medium = first snapshot reaching this fraction of D4RL's expert return, else of the "
                   "trained expert's (default: 1/3)")
    p.add_argument("--snapshot-every", type=int, default=10_000, help="environment steps between snapshots")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per snapshot evaluation")
    p.add_argument("--num-envs", type=int, default=10, help="environments stepped in lockstep in rollouts")
    p.add_argument("--start-steps", type=int, default=SACConfig.start_steps,
                   help=f"uniform-action steps before SAC updates (default: {SACConfig.start_steps})")
    p.add_argument("--chunk", type=int, default=SACConfig.chunk,
                   help=f"environment steps per collect/update phase (default: {SACConfig.chunk})")
    p.add_argument("--hidden", default="256,256", help="hidden widths of SAC's networks (default: 256,256)")


def collect_from_args(args: Any) -> dict[str, Path]:
    """Run :func:`collect` from parsed ``offreg collect`` arguments."""
    try:
        hidden = tuple(int(h) for h in str(args.hidden).split(",") if h.strip())
    except ValueError:
        raise ConfigError(f"--hidden {args.hidden!r} must be comma-separated integers, e.g. 256,256") from None
    if not hidden or min(hidden) <= 0:
        raise ConfigError(f"--hidden {args.hidden!r} must be positive widths, e.g. 256,256")
    for name in ("start_steps", "chunk"):
        if getattr(args, name) < (0 if name == "start_steps" else 1):
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    config = SACConfig(hidden_dims=hidden, start_steps=args.start_steps, chunk=args.chunk)
    return collect(
        args.env, args.levels, args.out, train_steps=args.train_steps, level_steps=args.level_steps,
        seed=args.seed, medium_fraction=args.medium_fraction, snapshot_every=args.snapshot_every,
        eval_episodes=args.eval_episodes, num_envs=args.num_envs, config=config,
        command=" ".join(["offreg", *sys.argv[1:]]),
    )
