"""The TD3 backbone shared by every TD3-shaped agent (TD3+BC, PRDC, A2PR).

One gradient step (Fujimoto et al. 2018; Fujimoto & Gu 2021), ``step`` counting from 1:

1. **Critic.** Target policy smoothing ``a~' = clip(pi'(s') + clip(eps, -c, c), -m, m)`` with
   ``eps ~ N(0, (sigma m)^2)``, ``c = noise_clip * m``, ``m = max_action``; target
   ``y = r + gamma (1 - d) min_i Q'_i(s', a~')`` (no gradient); loss
   ``L_Q = sum_i mean_B (Q_i(s, a) - y)^2`` (a *sum* of the two batch-mean MSEs); one Adam step.
2. **Regularizer update.** ``reg_state <- regularizer.update(reg_state, batch, critic, key)`` every
   step, with the critic *after* step 1 and the target critic.
3. **Actor**, only when ``step % policy_freq == 0`` (so the first actor step is step 2):
   ``L_pi = -lambda mean_B Q_1(s, pi(s)) + regularizer.loss(...)`` with
   ``lambda = alpha / stopgrad(mean_B |Q_1(s, pi(s))|)`` and the updated critic; gradient with
   respect to the actor's parameters only; one Adam step; then Polyak averaging of *both* targets
   with ``tau``.

A new agent of this shape is a regularizer (a :class:`~offreg.agents.regularizers.RegularizerConfig`
in one file) plus one line in :mod:`offreg.agents.names`; see docs/agents.md.

The delayed actor branch is a ``lax.cond``: under ``jit`` and ``lax.scan`` it skips the actor's
work on odd steps; under ``vmap`` with a batched ``step`` it becomes a select that computes both
branches. The engine therefore keeps ``step`` unbatched across seeds (:func:`offreg.seeds.seed_axes`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from offreg.agents.base import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    UNIT_INTERVAL,
    WIDTHS,
    AgentConfig,
    check_config,
    coefficients,
    one_of,
)
from offreg.agents.regularizers import BC, CriticFns, RegularizerConfig
from offreg.data.core import normalize
from offreg.networks import ACTIVATIONS, INITS, Critic, DeterministicActor, EnsembleCritic, TrainState, adam
from offreg.types import Metrics, PRNGKey, Transitions


@dataclasses.dataclass(frozen=True)
class TD3Config(AgentConfig):
    """TD3 with a policy regularizer: ``max_pi lambda Q_1(s, pi(s)) - R(pi)``, ``lambda = alpha / mean|Q_1|``.

    Attributes:
      regularizer: the policy regularizer ``R`` (a :class:`RegularizerConfig`: ``BC()`` is TD3+BC).
      actor_hidden_dims: hidden widths of the actor ``s -> ... -> tanh`` (A2PR: three layers).
      critic_hidden_dims: hidden widths of each twin critic ``[s||a] -> ... -> 1`` (A2PR: four layers).
      activation: hidden activation, a key of ``offreg.networks.ACTIVATIONS``.
      init: ``torch`` (PyTorch's default ``nn.Linear`` init, as the official codes) or ``flax``.
      actor_lr: Adam learning rate of the actor.
      critic_lr: Adam learning rate of the twin critics.
      discount: gamma of the TD target.
      tau: Polyak coefficient of both target networks (sweepable).
      policy_noise: std of the target-policy smoothing noise, as a fraction of ``max_action``.
      noise_clip: clip of that noise, as a fraction of ``max_action``.
      policy_freq: the actor and the targets update every ``policy_freq`` critic steps.
      alpha: numerator of ``lambda = alpha / mean|Q|`` weighing the Q term (sweepable).
      max_action: bound ``m`` of the actions (1.0 for D4RL).
    """

    sweepable: ClassVar[tuple[str, ...]] = ("alpha", "tau")
    checks = {
        "activation": one_of(sorted(ACTIVATIONS)), "init": one_of(INITS), "actor_hidden_dims": WIDTHS,
        "critic_hidden_dims": WIDTHS, "actor_lr": POSITIVE, "critic_lr": POSITIVE, "max_action": POSITIVE,
        "discount": UNIT_INTERVAL, "tau": UNIT_INTERVAL, "policy_noise": NON_NEGATIVE, "noise_clip": NON_NEGATIVE,
        "alpha": NON_NEGATIVE, "policy_freq": AT_LEAST_ONE,
    }

    regularizer: RegularizerConfig = BC()
    actor_hidden_dims: tuple[int, ...] = (256, 256)
    critic_hidden_dims: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    init: str = "torch"
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2
    alpha: float = 2.5
    max_action: float = 1.0


# --- networks ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def networks(config: TD3Config, act_dim: int) -> tuple[DeterministicActor, EnsembleCritic, Critic]:
    """The actor, the twin critic (``[2, B]``) and a single critic that applies ``Q_1``'s parameters."""
    actor = DeterministicActor(config.actor_hidden_dims, act_dim, config.max_action, config.activation, config.init)
    critic = EnsembleCritic(config.critic_hidden_dims, 2, config.activation, False, config.init)
    q1 = Critic(config.critic_hidden_dims, config.activation, False, config.init)
    return actor, critic, q1


def first_critic_params(critic_params: Any) -> Any:
    """Parameters of ``Q_1`` (member 0 of the ensemble) in the layout of a single :class:`Critic`."""
    (members,) = critic_params["params"].values()
    return {"params": jax.tree_util.tree_map(lambda x: x[0], members)}


class TD3Agent(flax.struct.PyTreeNode):
    """The TD3 backbone's state: an immutable pytree (see the module docstring for the update).

    Attributes:
      actor: ``pi``'s parameters, Adam state and Polyak-averaged target (a :class:`TrainState`).
      critic: the twin critic's (leading member axis 2), likewise.
      reg_state: the regularizer's learned state (``regularizer.init``; its dataset-derived
        context is not agent state, see :meth:`context`).
      obs_mean: ``[obs_dim]`` mean subtracted from raw observations by :meth:`act` (0 if off).
      obs_std: ``[obs_dim]`` std (eps included) dividing raw observations in :meth:`act` (1 if off).
      coefs: the sweepable coefficients (``alpha``, ``tau`` and the regularizer's) as float32 scalars.
      step: int32 number of gradient steps taken.
      last_actor_metrics: metrics of the most recent actor step (zeros before the first); steps that
        skip the actor report these, so a chunk's mean weighs every actor step ``policy_freq`` times.
      act_dim: action dimension (static).
      config: the hyperparameters (static).
    """

    actor: TrainState
    critic: TrainState
    reg_state: Any
    obs_mean: jax.Array
    obs_std: jax.Array
    coefs: dict[str, jax.Array]
    step: jax.Array
    last_actor_metrics: dict[str, jax.Array]
    act_dim: int = flax.struct.field(pytree_node=False)
    config: TD3Config = flax.struct.field(pytree_node=False)

    # --- create --------------------------------------------------------------------------------
    @classmethod
    def context(cls, config: TD3Config, dataset: Any) -> Any:
        """The regularizer's dataset-derived constants (host-side, once per prepared dataset)."""
        return config.regularizer.functions(config).context(config.prepare(dataset))

    @classmethod
    def create(cls, config: TD3Config, dataset: Any, key: PRNGKey, context: Any = None) -> TD3Agent:
        """Initialise networks (targets as copies), Adam states and the regularizer's state.

        Args:
          config: the hyperparameters.
          dataset: an :class:`offreg.data.Dataset`; ``config.prepare(dataset)`` is applied
            (idempotent) and its normalization statistics are kept for :meth:`act`. Train on batches
            of that prepared dataset.
          key: PRNG key.
          context: :meth:`context` of the dataset, used only to trace the actor metrics' shapes;
            built here when None.
        """
        check_config(cls, config, TD3Config)
        dataset = config.prepare(dataset)
        if context is None:
            context = cls.context(config, dataset)
        info = dataset.info
        obs_dim, act_dim = int(info.obs_dim), int(info.act_dim)
        actor, critic, _ = networks(config, act_dim)
        actor_key, critic_key, reg_key = jax.random.split(key, 3)
        obs = jnp.zeros((1, obs_dim), jnp.float32)
        act = jnp.zeros((1, act_dim), jnp.float32)
        obs_mean, obs_std = info.observation_stats()
        agent = cls(
            actor=TrainState.create(actor.init(actor_key, obs), adam(config.actor_lr), target=True),
            critic=TrainState.create(critic.init(critic_key, obs, act), adam(config.critic_lr), target=True),
            reg_state=config.regularizer.functions(config).init(reg_key, dataset),
            obs_mean=obs_mean,
            obs_std=obs_std,
            coefs=coefficients(config),
            step=jnp.zeros((), jnp.int32),
            last_actor_metrics={},
            act_dim=act_dim,
            config=config,
        )
        batch = Transitions(obs, act, jnp.zeros(1), obs, jnp.zeros(1))
        shapes = jax.eval_shape(lambda a, c: a._actor_step(a.critic, a.reg_state, batch, c, key)[-1], agent, context)
        return agent.replace(last_actor_metrics=jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))

    # --- act -----------------------------------------------------------------------------------
    def act(self, observations: jax.Array) -> jax.Array:
        """Deterministic actions ``pi((o - mu) / sigma)`` for raw observations ``[..., obs] -> [..., act]``."""
        actor, _, _ = networks(self.config, self.act_dim)
        return actor.apply(self.actor.params, normalize(observations, self.obs_mean, self.obs_std))

    # --- update --------------------------------------------------------------------------------
    def critic_fns(self, critic: TrainState, next_actions: jax.Array | None = None) -> CriticFns:
        """The critic as the regularizer sees it (stop-gradiented parameters), ``[2, B]`` outputs."""
        _, critic_net, _ = networks(self.config, self.act_dim)
        online = jax.lax.stop_gradient(critic.params)
        target = jax.lax.stop_gradient(critic.target_params)
        return CriticFns(
            q=lambda o, a: critic_net.apply(online, o, a),
            q_target=lambda o, a: critic_net.apply(target, o, a),
            next_actions=next_actions,
        )

    def critic_target(self, batch: Transitions, noise_key: PRNGKey) -> tuple[jax.Array, jax.Array]:
        """TD3's smoothed target: ``(y [B], a~' [B, act])``, both without gradient."""
        cfg = self.config
        actor, critic, _ = networks(cfg, self.act_dim)
        m = cfg.max_action
        noise = jnp.clip(
            cfg.policy_noise * m * jax.random.normal(noise_key, batch.actions.shape, batch.actions.dtype),
            -cfg.noise_clip * m,
            cfg.noise_clip * m,
        )
        next_actions = jnp.clip(actor.apply(self.actor.target_params, batch.next_observations) + noise, -m, m)
        target_q = critic.apply(self.critic.target_params, batch.next_observations, next_actions).min(axis=0)
        y = batch.rewards + cfg.discount * batch.masks * target_q
        return jax.lax.stop_gradient(y), jax.lax.stop_gradient(next_actions)

    def _critic_step(self, batch: Transitions, noise_key: PRNGKey) -> tuple[TrainState, jax.Array, Metrics]:
        """One critic Adam step on ``L_Q``; returns ``(critic, a~', metrics)``, the target untouched."""
        _, critic_net, _ = networks(self.config, self.act_dim)
        y, next_actions = self.critic_target(batch, noise_key)

        def critic_loss_fn(critic_params):
            q = critic_net.apply(critic_params, batch.observations, batch.actions)  # [2, B]
            return jnp.sum(jnp.mean((q - y) ** 2, axis=1)), q

        (critic_loss, q), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(self.critic.params)
        metrics = {"critic_loss": critic_loss, "q": jnp.mean(q), "target_q": jnp.mean(y)}
        return self.critic.apply_gradients(grads), next_actions, metrics

    def _actor_step(
        self, critic: TrainState, reg_state: Any, batch: Transitions, context: Any, key: PRNGKey
    ) -> tuple[TrainState, Metrics]:
        """One actor Adam step against the updated critic; returns ``(actor, metrics)``, the target untouched."""
        cfg = self.config
        actor, _, q1_net = networks(cfg, self.act_dim)
        reg = cfg.regularizer.functions(cfg)
        q1_params = jax.lax.stop_gradient(first_critic_params(critic.params))
        critic_fns = self.critic_fns(critic)
        obs = batch.observations

        def loss_fn(actor_params):
            pi = actor.apply(actor_params, obs)
            q = q1_net.apply(q1_params, obs, pi)
            lam = self.coefs["alpha"] / jax.lax.stop_gradient(jnp.mean(jnp.abs(q)))
            reg_loss, reg_metrics = reg.loss(reg_state, obs, pi, batch, critic_fns, self.coefs, context, key)
            loss = -lam * jnp.mean(q) + reg_loss
            return loss, {"actor_loss": loss, "lambda": lam, "q_pi": jnp.mean(q), "reg_loss": reg_loss, **reg_metrics}

        grads, metrics = jax.grad(loss_fn, has_aux=True)(self.actor.params)
        return self.actor.apply_gradients(grads), metrics

    def update(self, batch: Transitions, key: PRNGKey, context: Any = ()) -> tuple[TD3Agent, Metrics]:
        """One TD3 gradient step (critic, regularizer update, delayed actor and targets).

        Args:
          batch: normalized transitions, leading axis B.
          context: :meth:`context` of the dataset.
          key: PRNG key, split into (target noise, regularizer update, regularizer loss).

        Returns:
          ``(agent, metrics)``; metrics are float32 scalars: ``critic_loss``, ``q`` (mean of both
          critics on the batch), ``target_q`` (mean ``y``), the regularizer's update metrics, and the
          actor's ``actor_loss``, ``lambda``, ``q_pi``, ``reg_loss`` and regularizer-loss metrics of
          the most recent actor step (see ``last_actor_metrics``), plus ``actor_updated`` (1.0 on
          actor steps).
        """
        cfg = self.config
        reg = cfg.regularizer.functions(cfg)
        noise_key, reg_update_key, reg_loss_key = jax.random.split(key, 3)
        step = self.step + 1

        # --- critic ---
        critic, next_actions, critic_metrics = self._critic_step(batch, noise_key)

        # --- regularizer's own update, with the updated critic ---
        reg_state, reg_metrics = reg.update(
            self.reg_state, batch, self.critic_fns(critic, next_actions), self.coefs, context, reg_update_key
        )

        # --- delayed actor and targets ---
        def actor_branch(_):
            actor, metrics = self._actor_step(critic, reg_state, batch, context, reg_loss_key)
            tau = self.coefs["tau"]
            return actor.update_target(tau), critic.update_target(tau), metrics

        def skip_branch(_):
            return self.actor, critic, self.last_actor_metrics

        do_actor = step % cfg.policy_freq == 0
        actor, critic, actor_metrics = jax.lax.cond(do_actor, actor_branch, skip_branch, None)
        agent = self.replace(
            actor=actor, critic=critic, reg_state=reg_state, step=step, last_actor_metrics=actor_metrics
        )
        metrics = {
            **critic_metrics,
            **reg_metrics,
            **actor_metrics,
            "actor_updated": do_actor.astype(jnp.float32),
        }
        return agent, metrics
