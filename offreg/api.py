"""The Python API: datasets and agents by name.

``make_agent(name, dataset, seed=0, **overrides)`` is the one place where a name becomes a
configured agent: the config is resolved (the paper's per-dataset preset, then ``overrides``), the
dataset is prepared by that config (``config.prepare``) and the agent is created with the seed's
``init_key`` (:func:`offreg.seeds.seed_keys`), exactly as the engine does. The training engine, the
evaluator and the leaderboard go through the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offreg import data, evaluation
from offreg.agents import presets
from offreg.agents.names import get_spec
from offreg.engine import dataset_context, dataset_name
from offreg.seeds import seed_keys


def load_dataset(name_or_path: str, **options: Any) -> Any:
    """Load a dataset by catalogue name (``hopper-medium-v2``, ``offreg/hopper-medium-replay-v0``) or path.

    See :func:`offreg.data.load_dataset` for ``options`` (``terminate_on_end``, ``download``, ...).
    """
    return data.load_dataset(name_or_path, **options)


def resolve_config(agent: str, dataset: Any, overrides: Mapping[str, Any] | None = None) -> Any:
    """The agent's config for a dataset: its paper preset for that dataset (if any), then ``overrides``.

    Args:
      agent: registered agent name.
      dataset: dataset name or :class:`~offreg.data.Dataset` (its name selects the preset).
      overrides: config fields to set; strings are parsed (``"3e-4"``, ``"[256, 256]"``, ``"true"``).

    Raises:
      UnknownNameError: unknown agent or config field.
      ConfigError: a value of the wrong type or out of range.
    """
    return presets.resolve_config(agent, dataset_name(dataset), dict(overrides or {}))


def make_agent(name: str, dataset: Any, seed: int = 0, **overrides: Any) -> Any:
    """Create a configured, untrained agent for a dataset.

    Args:
      name: registered agent name (``offreg agents`` lists them).
      dataset: a :class:`~offreg.data.Dataset` or a name/path for :func:`load_dataset`.
      seed: the seed; the agent is created with ``seed_keys(seed)[0]``, exactly as the engine does.
      **overrides: config fields over the paper preset (e.g. ``alpha=2.5``).

    Returns:
      The agent (its config is ``agent.config``).
    """
    spec = get_spec(name)
    config = resolve_config(name, dataset, overrides)
    if isinstance(dataset, str):
        dataset = load_dataset(dataset)
    prepared = config.prepare(dataset)
    context = dataset_context(spec.agent_cls, config, prepared)
    return spec.agent_cls.create(config, prepared, seed_keys(seed)[0], context)


def evaluate(agent: Any, dataset_or_env: Any, episodes: int = 10, seed: int = 0) -> Any:
    """Roll out ``agent.act`` for ``episodes`` episodes; see :func:`offreg.evaluation.evaluate`."""
    return evaluation.evaluate(agent, dataset_or_env, episodes=episodes, seed=seed)
