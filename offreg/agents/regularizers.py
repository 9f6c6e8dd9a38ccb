"""The policy-regularization interface, in the manner of optax's ``GradientTransformation``.

What TD3+BC, PRDC and A2PR differ in is the term that pulls the policy toward trusted actions.
That term is a :class:`Regularizer`: a NamedTuple of pure functions. The TD3 backbone's actor loss
is ``-lambda * mean Q1(s, pi(s)) + regularizer.loss(...)`` with ``lambda = alpha / mean|Q1|``, so
any regularizer combines with the backbone.

Regularizers are built from the agent's (static, hashable) config by a cached factory, so the same
config always yields the same functions and jit caches hit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from offreg.types import Metrics, PRNGKey, Transitions

QFn = Callable[[jax.Array, jax.Array], jax.Array]


class CriticFns(NamedTuple):
    """The critic as a regularizer sees it, with parameters already stop-gradiented.

    Attributes:
      q: ``(observations [B, obs], actions [B, act]) -> [num_critics, B]``, the online critic after
        this step's critic update.
      q_target: the same with the target critic's parameters.
      next_actions: ``[B, act]`` the smoothed target-policy actions ``a~'`` at
        ``batch.next_observations`` that this step's critic target used (A2PR's value target reuses
        them), or ``None`` where the agent has none.
    """

    q: QFn
    q_target: QFn
    next_actions: jax.Array | None = None


class Regularizer(NamedTuple):
    """A policy regularizer.

    Attributes:
      init: ``(key, dataset) -> state``. PRDC: the neighbour-search index; A2PR: its value net and
        VAE with their optimizer states; BC: an empty tuple. ``dataset`` is the preprocessed
        :class:`offreg.data.Dataset` the agent trains on.
      update: ``(state, batch, critic, key) -> (state, metrics)``, called once per gradient step
        after the critic update and before the actor update (regularizers that learn parts of
        their own; the identity otherwise).
      loss: ``(state, observations, policy_actions, batch, critic, key) -> (loss, metrics)``, a
        scalar differentiable in ``policy_actions`` (``[B, act]``); gradients reach the actor only
        through ``policy_actions``.
    """

    init: Callable[[PRNGKey, Any], Any]
    update: Callable[[Any, Transitions, CriticFns, PRNGKey], tuple[Any, Metrics]]
    loss: Callable[[Any, jax.Array, jax.Array, Transitions, CriticFns, PRNGKey], tuple[jax.Array, Metrics]]


def no_update(state: Any, batch: Transitions, critic: CriticFns, key: PRNGKey) -> tuple[Any, Metrics]:
    """The ``update`` of a regularizer with nothing to learn."""
    del batch, critic, key
    return state, {}


def behaviour_cloning() -> Regularizer:
    """TD3+BC's term: ``mean_{B x A} (pi(s) - a)^2`` toward the batch's own dataset action."""

    def init(key: PRNGKey, dataset: Any) -> tuple:
        del key, dataset
        return ()

    def loss(state, observations, policy_actions, batch, critic, key):
        del state, observations, critic, key
        bc = jnp.mean((policy_actions - batch.actions) ** 2)
        return bc, {"bc_loss": bc}

    return Regularizer(init=init, update=no_update, loss=loss)
