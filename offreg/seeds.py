"""Several seeds of one agent in one pytree: keys per seed, the seed axis, stacking and slicing.

The engine trains N seeds at once by ``jax.vmap`` over a leading seed axis of the agent. Every array
of the agent carries that axis except the step counter, which all seeds share: keeping it
unbatched lets a ``lax.cond`` on the step (TD3's delayed actor) stay a real branch under ``vmap``
instead of becoming a select that computes both sides. An agent class may define
``seed_axes(self)`` to choose other shared fields.

Keys: seed ``s`` gives ``init_key, train_key = split(PRNGKey(s))``; ``create`` uses ``init_key`` and
the engine's key stream starts at ``train_key``, in a single run and in a vmapped run alike, so seed
``s`` of a vmapped run reproduces the single run of seed ``s``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from offreg.types import PRNGKey

SEED_AXIS = "seeds"
"""Axis name of the engine's seed ``vmap``: code inside an update may reduce over it (e.g. run a
branch when any seed needs it); it must not mix the seeds' values."""


def seed_keys(seed: int) -> tuple[PRNGKey, PRNGKey]:
    """``(init_key, train_key)`` of a seed: ``jax.random.split(jax.random.PRNGKey(seed))``."""
    init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, train_key


def seed_axes(agent: Any) -> Any:
    """``vmap`` axes of a multi-seed agent: 0 for every array, ``None`` for the shared ``step`` field.

    (What every seed shares because it comes from the dataset, such as PRDC's neighbour index, is not
    agent state: the engine passes it beside the transitions.) Uses ``agent.seed_axes()`` when the
    agent class defines it.
    """
    if hasattr(agent, "seed_axes"):
        return agent.seed_axes()
    axes = jax.tree_util.tree_map(lambda _: 0, agent)
    if dataclasses.is_dataclass(agent) and "step" in {f.name for f in dataclasses.fields(agent)}:
        axes = dataclasses.replace(axes, step=None)
    return axes


def _leaf_axes(agent: Any) -> list[int | None]:
    """The per-leaf axes of :func:`seed_axes` in ``tree_leaves(agent)`` order."""
    axes = seed_axes(agent)
    return jax.tree_util.tree_structure(agent).flatten_up_to(axes)


def stack_seeds(agents: list[Any]) -> Any:
    """Stack unbatched agents (one per seed) into one multi-seed agent.

    Shared fields (axis ``None``) take the first agent's value.
    """
    first = agents[0]
    treedef = jax.tree_util.tree_structure(first)
    leaves = [jax.tree_util.tree_leaves(a) for a in agents]
    out = []
    for i, ax in enumerate(_leaf_axes(first)):
        out.append(leaves[0][i] if ax is None else jnp.stack([ls[i] for ls in leaves]))
    return jax.tree_util.tree_unflatten(treedef, out)


def repeat_seeds(agents: Any, times: int) -> Any:
    """A multi-seed agent whose seed axis is the given one repeated ``times`` times (shared fields once)."""
    treedef = jax.tree_util.tree_structure(agents)
    leaves = jax.tree_util.tree_leaves(agents)
    out = [x if ax is None else jnp.concatenate([x] * times) for x, ax in zip(leaves, _leaf_axes(agents), strict=True)]
    return jax.tree_util.tree_unflatten(treedef, out)


def index_seed(agents: Any, index: int) -> Any:
    """The unbatched agent at position ``index`` of a multi-seed agent."""
    treedef = jax.tree_util.tree_structure(agents)
    leaves = jax.tree_util.tree_leaves(agents)
    out = [x if ax is None else x[index] for x, ax in zip(leaves, _leaf_axes(agents), strict=True)]
    return jax.tree_util.tree_unflatten(treedef, out)


def derived_seed(seed: int, index: int) -> int:
    """An environment seed derived from a run's ``seed`` and an ``index`` (an episode, a training step).

    ``(seed * 1_000_003 + index) mod (2^31 - 1)``: distinct indices of one seed give distinct seeds
    (below 2^31 - 1 of them), and every value is a valid non-negative int32 seed. Collection resets
    its ``k``-th episode with ``derived_seed(seed, k)``; the engine evaluates at ``step`` with
    ``derived_seed(seed, step)``.
    """
    return int((seed * 1_000_003 + index) % (2**31 - 1))
