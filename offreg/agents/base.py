"""The Agent protocol and the config base classes (the names live in :mod:`offreg.agents.names`).

An agent is an immutable ``flax.struct.PyTreeNode``: every learnable and optimizer state, target,
regularizer state, observation-normalization statistics and the step count are fields; the config
is a static field. Its three functions are pure, so the engine can ``jit``, ``lax.scan`` and
``vmap`` them:

- ``Agent.create(config, dataset, key) -> agent``
- ``agent.update(batch, key, context) -> (agent, metrics)``, where ``context`` is what the agent
  derives once from its dataset to train (PRDC's neighbour index): built on the host by the optional
  classmethod ``Agent.context(config, dataset)`` (default ``()``), passed by the engine beside the
  transitions, shared by every seed and never part of the agent (so never in a checkpoint)
- ``agent.act(observations) -> actions`` on *raw* environment observations (the agent applies its
  dataset's observation normalization itself), deterministic.

Agents fitted in closed form rather than by gradient steps (R2PVI) set ``gradient_free = True``
(absent: False, see :func:`is_gradient_free`): ``create`` fits, and the engine runs no updates.

Optional: ``Agent.template(config, info) -> agent``, a classmethod building an agent of the right
tree structure without training data, for agents whose ``create`` only accepts their own kind of
data (R2PVI). Checkpoint loading uses it when present; otherwise it traces ``create`` on a small
synthetic dataset of the saved dimensions.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from offreg.errors import ConfigError, unknown_name
from offreg.types import Metrics, PRNGKey, Transitions


class Rule(NamedTuple):
    """What a config field must be: ``ok(value)``, or the error says ``must be <expected>``."""

    expected: str
    ok: Callable[[Any], bool]


POSITIVE = Rule("positive", lambda v: v > 0)
NON_NEGATIVE = Rule(">= 0", lambda v: v >= 0)
AT_LEAST_ONE = Rule(">= 1", lambda v: v >= 1)
UNIT_INTERVAL = Rule("in [0, 1]", lambda v: 0 <= v <= 1)
WIDTHS = Rule("a non-empty tuple of positive widths", lambda v: len(v) > 0 and min(v) > 0)


def one_of(options: Iterable[Any]) -> Rule:
    """The field is one of ``options`` (listed in the error as given, e.g. ``sorted(ACTIVATIONS)``)."""
    options = tuple(options)
    return Rule(f"one of {options}", lambda v: v in options)


@dataclasses.dataclass(frozen=True)
class Config:
    """A frozen dataclass of hyperparameters: type-checked fields, JSON round trip, ``replace``.

    A field may hold a :class:`ConfigPart` (the TD3 backbone's ``regularizer``): it is written as
    ``{"kind": ..., <its fields>}``, and ``replace``/``from_dict`` route a name that is not the
    config's own field to the part that has it (``beta=2.0`` or ``regularizer.beta=2.0``).

    Subclasses list in ``sweepable`` the float coefficients one may sweep (alpha, beta, ...): the
    agent keeps them in an array field (see :func:`coefficients`) so that runs with other values
    are vmapped, not recompiled; every other field is static.
    """

    sweepable: ClassVar[tuple[str, ...]] = ()
    checks: ClassVar[Mapping[str, Rule]] = {}
    """``{field: Rule}`` that each class adds to its bases' (checked after the types, bases first)."""

    def __post_init__(self) -> None:
        types_ = _field_types(type(self))
        for f in dataclasses.fields(self):
            _check_type(type(self).__name__, f.name, getattr(self, f.name), types_[f.name])
        for cls in reversed(type(self).__mro__):
            for name, rule in vars(cls).get("checks", {}).items():
                self.require(rule, name)

    def require(self, rule: Rule, *names: str) -> None:
        """Check the fields ``names`` against ``rule`` (in ``__post_init__``; see :data:`POSITIVE`, ...).

        Raises:
          ConfigError: ``<Config>.<field> must be <rule.expected>, got <value>`` for the first that fails.
        """
        for name in names:
            value = getattr(self, name)
            if not rule.ok(value):
                raise _field_error(type(self).__name__, name, rule.expected, value)

    def __getattr__(self, name: str) -> Any:
        """A part's field read through the config (``config.beta`` for ``config.regularizer.beta``)."""
        if not name.startswith("__"):
            for part in self.__dict__.values():
                if isinstance(part, ConfigPart) and name in part.__dataclass_fields__:
                    return getattr(part, name)
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def parts(self) -> dict[str, ConfigPart]:
        """The fields holding a :class:`ConfigPart`, by field name."""
        return {f.name: v for f in dataclasses.fields(self) if isinstance(v := getattr(self, f.name), ConfigPart)}

    def field_names(self) -> set[str]:
        """Every name ``replace`` accepts: own fields and the fields of each part."""
        names = {f.name for f in dataclasses.fields(self)}
        for part in self.parts().values():
            names |= part.field_names()
        return names

    # --- JSON round trip -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            k = sorted(unknown)[0]
            raise unknown_name(f"{cls.__name__} field", k, names, f"Valid fields: {', '.join(sorted(names))}.")
        types_ = _field_types(cls)
        return cls(**{k: _coerce(cls.__name__, k, v, types_[k]) for k, v in d.items()})

    def replace(self, **overrides: Any) -> Config:
        """A copy with ``overrides`` applied (validated and coerced like ``from_dict``).

        A name that is not a field of this config goes to the part that has it.
        """
        own = {f.name for f in dataclasses.fields(self)}
        d = self.to_dict()
        parts = self.parts()
        for k, v in overrides.items():
            head, _, rest = k.partition(".")
            if k in own:
                d[k] = v.to_dict() if isinstance(v, ConfigPart) else v
            elif rest and head in parts:
                d[head] = {**d[head], rest: v}
            elif owners := [n for n, p in parts.items() if k in p.field_names()]:
                d[owners[0]] = {**d[owners[0]], k: v}
            else:
                names = self.field_names()
                raise unknown_name(f"{type(self).__name__} field", k, names,
                                   f"Valid fields: {', '.join(sorted(names))}.")
        return type(self).from_dict(d)


class ConfigPart(Config):
    """A config held in a field of another (a regularizer's): its subclasses are found by ``kind``."""

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[ConfigPart]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            ConfigPart._kinds[cls.kind] = cls

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **super().to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConfigPart:
        d = dict(d)
        kind = d.pop("kind", cls.kind)
        target = ConfigPart._kinds.get(kind)
        if target is None or not issubclass(target, cls):
            known = sorted(k for k, c in ConfigPart._kinds.items() if issubclass(c, cls))
            raise unknown_name(f"{cls.__name__} kind", str(kind), known, "")
        return Config.from_dict.__func__(target, d)  # type: ignore[attr-defined]


@dataclasses.dataclass(frozen=True)
class AgentConfig(Config):
    """Base of every agent's hyperparameters: a frozen dataclass, one docstring line per field.

    Preprocessing fields shared by all agents:
      normalize_observations: standardize observations with the dataset's mean/std.
      obs_norm_eps: added to the std (TD3+BC/PRDC/A2PR: 1e-3).
      reward_transform: ``none``, ``locomotion``, ``antmaze`` or ``affine`` (see ``Dataset``).
      reward_scale: scale of the ``antmaze``/``affine`` transforms.
      reward_shift: shift of the ``antmaze``/``affine`` transforms.
      batch_size: transitions per gradient step.
    """

    normalize_observations: bool = True
    obs_norm_eps: float = 1e-3
    reward_transform: str = "none"
    reward_scale: float = 1.0
    reward_shift: float = 0.0
    batch_size: int = 256

    checks = {"batch_size": POSITIVE, "obs_norm_eps": NON_NEGATIVE}

    def prepare(self, dataset: Any) -> Any:
        """The dataset this config trains on (see :func:`prepare_dataset`); agents may add transforms."""
        return prepare_dataset(self, dataset)


def coefficients(config: AgentConfig) -> dict[str, jax.Array]:
    """The config's sweepable coefficients (its own and its parts') as float32 scalars, by name."""
    out = {k: jnp.float32(getattr(config, k)) for k in config.sweepable}
    for part in config.parts().values():
        out.update(coefficients(part))
    return out


def prepare_dataset(config: AgentConfig, dataset: Any) -> Any:
    """Apply ``config``'s preprocessing (observation normalization, reward transform) to a dataset.

    The config is the one place that decides a training run's reward transform (its preset sets
    each paper's, e.g. AntMaze's): a dataset that already carries a transform is accepted only
    when it is the config's own. Idempotent: a dataset already normalized, or already carrying the
    same reward transform, is left as it is, so both the engine (which samples batches from the
    result) and ``create`` (which reads the normalization statistics for ``act``) may call it.

    Raises:
      ConfigError: the dataset already carries a reward transform other than the config's.
    """
    if config.normalize_observations:
        dataset = dataset.normalize_observations(config.obs_norm_eps)
    kind, have = config.reward_transform, dataset.info.reward_transform
    if kind == have and (
        kind in ("none", "locomotion", "locomotion_iql")
        or (dataset.info.reward_scale, dataset.info.reward_shift) == (config.reward_scale, config.reward_shift)
    ):
        return dataset
    if have != "none":
        raise ConfigError(
            f"dataset {dataset.info.name!r} already has reward transform {have!r} (scale "
            f"{dataset.info.reward_scale:g}, shift {dataset.info.reward_shift:g}) but the {type(config).__name__} "
            f"asks for {kind!r} (scale "
            f"{config.reward_scale:g}, shift {config.reward_shift:g}); the agent config decides the reward transform: "
            "load the dataset without one (no reward_transform dataset option) and set reward_transform, "
            "reward_scale and reward_shift in the config if its preset's are not wanted"
        )
    return dataset.transform_rewards(kind, config.reward_scale, config.reward_shift)


@runtime_checkable
class Agent(Protocol):
    """What the engine, evaluator, checkpoints and CLI rely on."""

    config: AgentConfig
    gradient_free: ClassVar[bool]

    @classmethod
    def create(cls, config: AgentConfig, dataset: Any, key: PRNGKey) -> Agent: ...

    def update(self, batch: Transitions, key: PRNGKey, context: Any = ()) -> tuple[Agent, Metrics]: ...

    def act(self, observations: jax.Array) -> jax.Array: ...


def is_gradient_free(agent_cls: type) -> bool:
    """Whether the agent class is fitted in ``create`` (its ``gradient_free``, False when absent)."""
    return bool(getattr(agent_cls, "gradient_free", False))


def check_config(agent_cls: type, config: Any, config_cls: type) -> None:
    """At the top of ``create``: raise ``ConfigError`` unless ``config`` is a ``config_cls``."""
    if not isinstance(config, config_cls):
        raise ConfigError(f"{agent_cls.__name__}.create needs a {config_cls.__name__}, got {type(config).__name__}")


# --- config helpers ------------------------------------------------------------------------------
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Config):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def _check_type(owner: str, name: str, value: Any, tp: Any) -> None:
    if not _matches(value, tp):
        raise _field_error(owner, name, _type_name(tp), value)


def _field_error(owner: str, name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{owner}.{name} must be {expected}, got {value!r}")


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(owner: str, name: str, value: Any, tp: Any) -> Any:
    """Coerce JSON/CLI values: lists -> tuples, ints -> floats, strings -> numbers/bools, dicts -> parts."""
    if isinstance(tp, type) and issubclass(tp, ConfigPart) and isinstance(value, dict):
        return tp.from_dict(value)
    origin = typing.get_origin(tp)
    if isinstance(value, str) and tp is not str and not (
        origin in (typing.Union, types.UnionType) and str in typing.get_args(tp)
    ) and origin is not typing.Literal:
        try:
            value = json.loads(value.replace("(", "[").replace(")", "]"))
        except json.JSONDecodeError:
            if value.lower() in ("true", "false"):
                value = value.lower() == "true"
    if isinstance(value, list):
        value = tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if origin is tuple and isinstance(value, tuple):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and args[0] is float:
            value = tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
    _check_type(owner, name, value, tp)
    return value
