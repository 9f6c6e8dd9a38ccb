"""The behaviour learner: soft actor-critic as in rlkit, which trained D4RL's behaviour policies.

A tanh-Gaussian policy and twin critics, 2 x 256 ReLU, Adam 3e-4, gamma 0.99, tau 5e-3, batch 256,
automatic entropy tuning toward ``-act_dim``. Like rlkit's ``TorchBatchRLAlgorithm``,
:func:`train_sac` alternates ``chunk`` environment steps (1000) with ``chunk`` gradient updates, which
here are one jitted ``lax.scan`` sampling the replay buffer on the device. The first
``start_steps`` actions are uniform. Every ``snapshot_every`` environment steps the policy is
evaluated (``eval_episodes`` episodes of the *sampling* policy) and kept as a :class:`Snapshot`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from offreg.data.generate.policy import policy_actions, tanh_gaussian_sample
from offreg.data.generate.rollout import EnvPool, evaluate_policy
from offreg.data.generate.snapshots import Snapshot
from offreg.networks import EnsembleCritic, TanhGaussianActor, TrainState, adam


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
    """SAC's learnable and optimizer state; a pytree, updated functionally.

    Attributes:
      actor: the policy's parameters and Adam state.
      critic: the twin critics' parameters, Adam state and Polyak-averaged target.
      alpha: ``log_alpha`` (a scalar) and its Adam state.
      step: number of updates taken.
    """

    actor: TrainState
    critic: TrainState
    alpha: TrainState
    step: jax.Array


class SAC:
    """SAC's networks, initialisation and jitted update phase for one environment's shapes."""

    def __init__(self, config: SACConfig, obs_dim: int, act_dim: int):
        self.config = config
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor_net = TanhGaussianActor(config.hidden_dims, act_dim)
        self.critic_net = EnsembleCritic(config.hidden_dims, num=2)
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
            actor=TrainState.create(actor, adam(self.config.actor_lr)),
            critic=TrainState.create(critic, adam(self.config.critic_lr), target=True),
            alpha=TrainState.create(log_alpha, adam(self.config.alpha_lr)),
            step=jnp.zeros((), jnp.int32),
        )

    def update(self, state: SACState, batch: dict[str, jax.Array], key: jax.Array) -> tuple[SACState, dict]:
        """One SAC update on ``batch`` (critic, then actor, then temperature, then targets)."""
        cfg = self.config
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(state.alpha.params)

        # --- critic ---
        mean, log_std = self.actor_net.apply(state.actor.params, batch["next_observations"])
        next_a, next_logp = tanh_gaussian_sample(mean, log_std, k_next)
        next_q = self.critic_net.apply(state.critic.target_params, batch["next_observations"], next_a).min(0)
        target = batch["rewards"] + cfg.discount * (1.0 - batch["terminals"]) * (next_q - alpha * next_logp)
        target = jax.lax.stop_gradient(target)

        def critic_loss(params):
            q = self.critic_net.apply(params, batch["observations"], batch["actions"])
            return jnp.mean((q - target[None]) ** 2, axis=1).sum(), q.mean()

        (c_loss, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic.params)
        critic = state.critic.apply_gradients(grads)

        # --- actor ---
        def actor_loss(params):
            mean, log_std = self.actor_net.apply(params, batch["observations"])
            a, logp = tanh_gaussian_sample(mean, log_std, k_pi)
            q = self.critic_net.apply(critic.params, batch["observations"], a).min(0)
            return jnp.mean(alpha * logp - q), logp

        (a_loss, logp), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor.params)

        # --- temperature ---
        entropy_gap = jax.lax.stop_gradient(logp + self.target_entropy)
        al_loss, grad = jax.value_and_grad(lambda la: -jnp.mean(la * entropy_gap))(state.alpha.params)

        new = state.replace(
            actor=state.actor.apply_gradients(grads),
            critic=critic.update_target(cfg.tau),
            alpha=state.alpha.apply_gradients(grad),
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


@dataclasses.dataclass
class TrainResult:
    """What :func:`train_sac` returns: the snapshots and the whole replay buffer in insertion order."""

    snapshots: list[Snapshot]
    replay: dict[str, np.ndarray]
    gym_id: str


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

    Long because: rlkit's loop of environment steps, update phases, snapshots and logging, in its order.
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
        params = None if step < config.start_steps else state.actor.params
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
            actor = jax.device_get(state.actor.params)
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
