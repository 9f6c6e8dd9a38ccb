"""The jitted core of the engine: K updates as one ``lax.scan``, seeds (and swept coefficients) vmapped.

The training engine: every agent trains here, one seed or many, from the CLI or from Python.

**Inner loop.** One jitted call runs ``K = log_every`` gradient updates as a ``lax.scan`` (the
*chunk*); each update samples its batch on the device from the dataset, which is an argument of the
jitted function (never a closure constant). The key stream of a seed is carried, one split per
update::

    key, sample_key, update_key = jax.random.split(key, 3)
    batch = offreg.data.sample(transitions, sample_key, config.batch_size)
    agent, metrics = agent.update(batch, update_key)

starting from ``train_key`` of :func:`offreg.seeds.seed_keys`. The key is saved with every
checkpoint, so the updates (and so the parameters) do not depend on where chunks start or end, nor
on whether the run was interrupted and resumed.

**Seeds.** N seeds train in one process on a leading seed axis (the dataset stays unbatched; the
step counter is shared, see :mod:`offreg.seeds`); every seed gets its keys from
:func:`offreg.seeds.seed_keys`, and ``jax.vmap`` batches ``create`` and the chunk. On the CPU,
seed ``s`` is the same bit for bit in every run with >= 2 seeds. A single-seed run is a different
XLA program (the size-1 seed axis is simplified away, and reductions may then be vectorized
differently): it equals seed ``s`` of a multi-seed run to float32 rounding (with the pinned jax
0.10.2, BC's and TD3+BC's single runs differ from their vmapped seed in the last bit of some
parameters); ``tests/test_engine.py`` checks both.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from offreg.data.core import sample
from offreg.seeds import SEED_AXIS, repeat_seeds, seed_axes, seed_keys, stack_seeds
from offreg.types import Metrics, PRNGKey, Transitions


def scan_updates(
    agent: Any, transitions: Transitions, key: PRNGKey, num_steps: int, context: Any = ()
) -> tuple[Any, PRNGKey, Metrics]:
    """``num_steps`` updates of one (unbatched) agent as a ``lax.scan``, sampling on the device.

    Args:
      agent: the agent.
      transitions: the preprocessed dataset (leading axis N).
      context: what the agent derived once from the dataset (``agent_cls.context``), or ``()``.
      key: the seed's current key; split once per update as in the module docstring.
      num_steps: K (static).

    Returns:
      ``(agent, key, metrics)`` with every metric stacked to ``[K, ...]``.
    """
    batch_size = agent.config.batch_size

    def body(carry, _):
        agent, key = carry
        key, sample_key, update_key = jax.random.split(key, 3)
        batch = sample(transitions, sample_key, batch_size)
        agent, metrics = agent.update(batch, update_key, context)
        return (agent, key), metrics

    (agent, key), metrics = jax.lax.scan(body, (agent, key), None, length=num_steps)
    return agent, key, metrics


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


@functools.lru_cache(maxsize=64)
def _chunk_fn(treedef: Any, leaf_axes: tuple[int | None, ...]) -> Callable[..., Any]:
    """The jitted, seed-vmapped chunk for agents of one tree structure (config included) and seed axes."""
    axes = jax.tree_util.tree_unflatten(treedef, list(leaf_axes))

    def one_seed(agent, transitions, context, key, num_steps):
        agent, key, metrics = scan_updates(agent, transitions, key, num_steps, context)
        return agent, key, metrics, _all_finite(agent)

    def chunk(agents, transitions, context, keys, num_steps):
        f = functools.partial(one_seed, num_steps=num_steps)
        return jax.vmap(f, in_axes=(axes, None, None, 0), out_axes=(axes, 0, 0, 0), axis_name=SEED_AXIS)(
            agents, transitions, context, keys
        )

    return jax.jit(chunk, static_argnames="num_steps")


def train_chunk(
    agents: Any, transitions: Transitions, keys: PRNGKey, num_steps: int, context: Any = ()
) -> tuple[Any, PRNGKey, Metrics, jax.Array]:
    """K updates of every seed in one jitted call: ``vmap`` over seeds of :func:`scan_updates`.

    Args:
      agents: a multi-seed agent (leading seed axis S, see :mod:`offreg.seeds`).
      transitions: the preprocessed dataset, unbatched.
      context: the dataset-derived constants, unbatched (every seed shares them).
      keys: ``uint32 [S, 2]``, each seed's current key.
      num_steps: K.

    Returns:
      ``(agents, keys, metrics [S, K, ...], params_finite [S])``.
    """
    treedef = jax.tree_util.tree_structure(agents)
    leaf_axes = tuple(treedef.flatten_up_to(seed_axes(agents)))
    return _chunk_fn(treedef, leaf_axes)(agents, transitions, context, keys, num_steps=num_steps)


def dataset_context(agent_cls: type, config: Any, dataset: Any) -> Any:
    """What the agent derives once from the prepared dataset to train (``agent_cls.context``), or ``()``."""
    context = getattr(agent_cls, "context", None)
    return () if context is None else context(config, dataset)


def create_seeds(agent_cls: type, config: Any, dataset: Any, seeds: Sequence[int], context: Any = ()) -> Any:
    """Create one agent per seed, stacked on a leading seed axis, with ``init_key`` of each seed.

    ``jit(vmap(create))`` over the seeds' keys, the transitions and the context arguments of the
    jitted function (not constants baked into the program).
    Agents whose ``create`` cannot be traced (host-side fits) are created one by one and stacked.
    """
    init_keys = jnp.stack([seed_keys(s)[0] for s in seeds])

    def create(transitions, context, key):
        return agent_cls.create(config, dataclasses.replace(dataset, transitions=transitions), key, context)

    try:
        axes = seed_axes(jax.eval_shape(create, dataset.transitions, context, init_keys[0]))
        batched = jax.jit(jax.vmap(create, in_axes=(None, None, 0), out_axes=axes))
        return batched(dataset.transitions, context, init_keys)
    except jax.errors.JAXTypeError:
        return stack_seeds([agent_cls.create(config, dataset, k, context) for k in init_keys])


def expand_sweep(agents: Any, keys: PRNGKey, points: Sequence[Mapping[str, float]]) -> tuple[Any, PRNGKey]:
    """Runs for every grid point of a coefficient sweep: the seeds' agents and keys repeated per point.

    Each point's copy gets the point's values in ``agents.coefs`` (the array coefficients every
    update reads), so one compiled chunk trains the whole grid: run ``p * S + s`` is point ``p``,
    seed ``s``, created and trained exactly as seed ``s`` alone would be but for those values.

    Args:
      agents: the seeds' agents, leading axis ``S`` (shared fields, axis None, are kept once).
      keys: ``uint32 [S, 2]``, the seeds' training keys.
      points: the grid, each a mapping from coefficient name to value.

    Returns:
      ``(agents, keys)`` with leading axis ``len(points) * S``.
    """
    if not points or points == [{}]:
        return agents, keys
    agents = repeat_seeds(agents, len(points))
    num_seeds = keys.shape[0]
    coefs = dict(agents.coefs)
    for name in points[0]:
        values = jnp.asarray([float(p[name]) for p in points], coefs[name].dtype)
        coefs[name] = jnp.repeat(values, num_seeds)
    return agents.replace(coefs=coefs), jnp.concatenate([keys] * len(points))
