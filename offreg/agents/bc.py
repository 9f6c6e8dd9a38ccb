"""Behaviour cloning: a deterministic tanh actor regressed onto the dataset's actions.

``min_pi E_(s,a)~D mean_A (pi(s) - a)^2``, with states standardized by the dataset's mean and std
(+1e-3) as in TD3+BC's codebase, and the same actor network (256-256 ReLU, tanh output, PyTorch init).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from offreg.agents.base import POSITIVE, WIDTHS, AgentConfig, check_config, coefficients, one_of
from offreg.data.core import normalize
from offreg.networks import ACTIVATIONS, INITS, DeterministicActor, TrainState, adam
from offreg.types import Metrics, PRNGKey, Transitions


@dataclasses.dataclass(frozen=True)
class BCConfig(AgentConfig):
    """Deterministic behaviour cloning ``min_pi mean (pi(s) - a)^2`` (the BC baseline of TD3+BC's paper).

    Attributes:
      hidden_dims: hidden widths of the actor.
      activation: hidden activation, a key of ``offreg.networks.ACTIVATIONS``.
      init: ``torch`` (PyTorch's default ``nn.Linear`` init) or ``flax``.
      lr: Adam learning rate.
      max_action: bound of the tanh output (1.0 for D4RL).
    """

    hidden_dims: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    init: str = "torch"
    lr: float = 3e-4
    max_action: float = 1.0

    checks = {"activation": one_of(sorted(ACTIVATIONS)), "init": one_of(INITS), "hidden_dims": WIDTHS,
              "lr": POSITIVE, "max_action": POSITIVE}


def _actor(config: BCConfig, act_dim: int) -> DeterministicActor:
    return DeterministicActor(config.hidden_dims, act_dim, config.max_action, config.activation, config.init)


class BCAgent(flax.struct.PyTreeNode):
    """Behaviour cloning's state.

    Attributes:
      actor: ``pi``'s parameters and Adam state (a :class:`TrainState` without target).
      obs_mean: ``[obs_dim]`` mean subtracted from raw observations by :meth:`act` (0 if off).
      obs_std: ``[obs_dim]`` std (eps included) dividing raw observations in :meth:`act` (1 if off).
      coefs: sweepable coefficients (none).
      step: int32 number of gradient steps taken.
      act_dim: action dimension (static).
      config: the hyperparameters (static).
    """

    actor: TrainState
    obs_mean: jax.Array
    obs_std: jax.Array
    coefs: dict[str, jax.Array]
    step: jax.Array
    act_dim: int = flax.struct.field(pytree_node=False)
    config: BCConfig = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, config: BCConfig, dataset: Any, key: PRNGKey, context: Any = ()) -> BCAgent:
        """Initialise the actor and Adam; ``config.prepare(dataset)`` gives the normalization."""
        check_config(cls, config, BCConfig)
        info = config.prepare(dataset).info
        params = _actor(config, info.act_dim).init(key, jnp.zeros((1, info.obs_dim), jnp.float32))
        mean, std = info.observation_stats()
        return cls(
            actor=TrainState.create(params, adam(config.lr)),
            obs_mean=mean,
            obs_std=std,
            coefs=coefficients(config),
            step=jnp.zeros((), jnp.int32),
            act_dim=int(info.act_dim),
            config=config,
        )

    def act(self, observations: jax.Array) -> jax.Array:
        """Deterministic actions ``pi((o - mu) / sigma)`` for raw observations ``[..., obs] -> [..., act]``."""
        obs = normalize(observations, self.obs_mean, self.obs_std)
        return _actor(self.config, self.act_dim).apply(self.actor.params, obs)

    def update(self, batch: Transitions, key: PRNGKey, context: Any = ()) -> tuple[BCAgent, Metrics]:
        """One Adam step on ``mean_{B x A} (pi(s) - a)^2``; metrics ``bc_loss`` (before the step)."""
        del key
        actor = _actor(self.config, self.act_dim)

        def loss_fn(params):
            return jnp.mean((actor.apply(params, batch.observations) - batch.actions) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(self.actor.params)
        agent = self.replace(actor=self.actor.apply_gradients(grads), step=self.step + 1)
        return agent, {"bc_loss": loss}
