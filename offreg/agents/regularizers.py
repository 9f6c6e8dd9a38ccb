"""The policy-regularization interface, in the manner of optax's ``GradientTransformation``.

What TD3+BC, PRDC and A2PR differ in is the term that pulls the policy toward trusted actions.
That term is a :class:`Regularizer`: a NamedTuple of pure functions, built by a small frozen
:class:`RegularizerConfig` that is the value of the TD3 backbone config's ``regularizer`` field.
The backbone's actor loss is ``-lambda * mean Q1(s, pi(s)) + regularizer.loss(...)`` with
``lambda = alpha / mean|Q1|``, so any regularizer combines with the backbone.

Every function gets ``coefs``, the agent's sweepable coefficients as float32 scalars (the
backbone's ``alpha`` and ``tau`` and the regularizer's own, e.g. PRDC's ``beta``), so a sweep vmaps
them; and ``context``, what :attr:`Regularizer.context` derived once from the dataset on the host
(PRDC's neighbour index), passed by the engine beside the transitions and never checkpointed.
docs/agents.md shows a new regularizer written and registered in one file.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from offreg.agents.base import ConfigPart
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
      init: ``(key, dataset) -> state``, the regularizer's learned state (A2PR: its value net and
        VAE with their optimizer states; others: ``()``). ``dataset`` is the prepared
        :class:`offreg.data.Dataset` the agent trains on.
      context: ``(dataset) -> context``, host-side, once per dataset: constants derived from the
        data (PRDC: the neighbour-search index; others: ``()``).
      update: ``(state, batch, critic, coefs, context, key) -> (state, metrics)``, once per
        gradient step after the critic update and before the actor update.
      loss: ``(state, observations, policy_actions, batch, critic, coefs, context, key) -> (loss,
        metrics)``, a scalar differentiable in ``policy_actions`` (``[B, act]``); gradients reach the
        actor only through ``policy_actions``.
    """

    init: Callable[[PRNGKey, Any], Any]
    context: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Metrics]]
    loss: Callable[..., tuple[jax.Array, Metrics]]


@dataclasses.dataclass(frozen=True)
class RegularizerConfig(ConfigPart):
    """Base of a regularizer's hyperparameters; a subclass sets ``kind`` and defines :meth:`build`.

    ``sweepable`` names its float fields that reach the functions through ``coefs``.
    """

    def build(self, backbone: Any) -> Regularizer:
        """The regularizer's functions for a backbone config (its discount, max_action, ...)."""
        raise NotImplementedError(f"{type(self).__name__} must define build(backbone)")

    def functions(self, backbone: Any) -> Regularizer:
        """:meth:`build`, cached: equal configs give the very same functions, so jit caches hit."""
        return _cached_build(self, backbone)


@functools.lru_cache(maxsize=512)
def _cached_build(config: RegularizerConfig, backbone: Any) -> Regularizer:
    return config.build(backbone)


def no_state(key: PRNGKey, dataset: Any) -> tuple:
    """The ``init`` of a regularizer with nothing to learn."""
    del key, dataset
    return ()


def no_context(dataset: Any) -> tuple:
    """The ``context`` of a regularizer that needs nothing from the dataset beyond the batch."""
    del dataset
    return ()


def no_update(state, batch, critic, coefs, context, key) -> tuple[Any, Metrics]:
    """The ``update`` of a regularizer with nothing to learn."""
    del batch, critic, coefs, context, key
    return state, {}


@dataclasses.dataclass(frozen=True)
class BC(RegularizerConfig):
    """TD3+BC's term (Fujimoto & Gu 2021): ``mean_{B x A} (pi(s) - a)^2`` toward the batch's own action."""

    kind = "bc"

    def build(self, backbone: Any) -> Regularizer:
        def loss(state, observations, policy_actions, batch: Transitions, critic, coefs, context, key):
            del state, observations, critic, coefs, context, key
            bc = jnp.mean((policy_actions - batch.actions) ** 2)
            return bc, {"bc_loss": bc}

        return Regularizer(init=no_state, context=no_context, update=no_update, loss=loss)
