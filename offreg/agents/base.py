"""The Agent protocol, the config base class and the agent registry.

An agent is an immutable ``flax.struct.PyTreeNode``: every learnable and optimizer state, target,
regularizer state, observation-normalization statistics and the step count are fields; the config
is a static field. Its three functions are pure, so the engine can ``jit``, ``lax.scan`` and
``vmap`` them:

- ``Agent.create(config, dataset, key) -> agent``
- ``agent.update(batch, key) -> (agent, metrics)``
- ``agent.act(observations) -> actions`` on *raw* environment observations (the agent applies its
  dataset's observation normalization itself), deterministic.

Agents fitted in closed form rather than by gradient steps (R2PVI) set ``gradient_free = True``:
``create`` fits, and the engine runs no updates.

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
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from offreg.errors import ConfigError, unknown_name
from offreg.types import Metrics, PRNGKey, Transitions


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Base of every agent's hyperparameters: a frozen dataclass, one docstring line per field.

    Subclasses list in ``sweepable`` the float coefficients one may sweep (alpha, beta, ...). The
    agent copies them into an array field (see :func:`coefficients`) so that seeds *and*
    coefficients can be vmapped without recompiling; every other field is static.

    Preprocessing fields shared by all agents:
      normalize_observations: standardize observations with the dataset's mean/std.
      obs_norm_eps: added to the std (TD3+BC/PRDC/A2PR: 1e-3).
      reward_transform: ``none``, ``locomotion``, ``antmaze`` or ``affine`` (see ``Dataset``).
      reward_scale: scale of the ``antmaze``/``affine`` transforms.
      reward_shift: shift of the ``antmaze``/``affine`` transforms.
      batch_size: transitions per gradient step.
    """

    sweepable: ClassVar[tuple[str, ...]] = ()

    normalize_observations: bool = True
    obs_norm_eps: float = 1e-3
    reward_transform: str = "none"
    reward_scale: float = 1.0
    reward_shift: float = 0.0
    batch_size: int = 256

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_type(type(self).__name__, f.name, value, _field_types(type(self))[f.name])
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")
        if self.obs_norm_eps < 0:
            raise ConfigError(f"obs_norm_eps must be >= 0, got {self.obs_norm_eps}")

    # --- JSON round trip -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            k = sorted(unknown)[0]
            raise unknown_name(f"{cls.__name__} field", k, names, f"Valid fields: {', '.join(sorted(names))}.")
        types_ = _field_types(cls)
        return cls(**{k: _coerce(cls.__name__, k, v, types_[k]) for k, v in d.items()})

    def replace(self, **overrides: Any) -> AgentConfig:
        """A copy with ``overrides`` applied (validated and coerced like ``from_dict``)."""
        return type(self).from_dict({**self.to_dict(), **overrides})


def coefficients(config: AgentConfig) -> dict[str, jax.Array]:
    """The config's sweepable coefficients as float32 scalars, for an agent's array field."""
    return {k: jnp.float32(getattr(config, k)) for k in config.sweepable}


def prepare_dataset(config: AgentConfig, dataset: Any) -> Any:
    """Apply ``config``'s preprocessing (observation normalization, reward transform) to a dataset.

    Idempotent: a dataset already normalized, or already carrying the same reward transform, is
    left as it is, so both the engine (which samples batches from the result) and ``create``
    (which reads the normalization statistics for ``act``) may call it.

    Raises:
      ConfigError: the dataset already carries a different reward transform.
    """
    if config.normalize_observations:
        dataset = dataset.normalize_observations(config.obs_norm_eps)
    kind, have = config.reward_transform, dataset.info.reward_transform
    if kind == "none" or kind == have and (
        kind in ("locomotion", "locomotion_iql")
        or (dataset.info.reward_scale, dataset.info.reward_shift) == (config.reward_scale, config.reward_shift)
    ):
        return dataset
    if have != "none":
        raise ConfigError(
            f"dataset {dataset.info.name!r} already has reward transform {have!r} but the config asks for "
            f"{kind!r} (scale {config.reward_scale}, shift {config.reward_shift}); load the dataset again"
        )
    return dataset.transform_rewards(kind, config.reward_scale, config.reward_shift)


@runtime_checkable
class Agent(Protocol):
    """What the engine, evaluator, checkpoints and CLI rely on."""

    config: AgentConfig
    gradient_free: ClassVar[bool]

    @classmethod
    def create(cls, config: AgentConfig, dataset: Any, key: PRNGKey) -> Agent: ...

    def update(self, batch: Transitions, key: PRNGKey) -> tuple[Agent, Metrics]: ...

    def act(self, observations: jax.Array) -> jax.Array: ...


# --- registry ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """A registered agent: its class, config class, one-line description and paper."""

    name: str
    agent_cls: type
    config_cls: type[AgentConfig]
    description: str
    paper: str


_REGISTRY: dict[str, AgentSpec] = {}


def register(name: str, config_cls: type[AgentConfig], description: str, paper: str) -> Callable[[type], type]:
    """Class decorator registering an agent class under ``name``."""

    def deco(agent_cls: type) -> type:
        _REGISTRY[name] = AgentSpec(name, agent_cls, config_cls, description, paper)
        return agent_cls

    return deco


def registry() -> dict[str, AgentSpec]:
    """Every registered agent, by name (importing ``offreg.agents`` registers the built-ins)."""
    import offreg.agents  # noqa: F401  (registers the built-in agents)

    return dict(_REGISTRY)


def get_spec(name: str) -> AgentSpec:
    reg = registry()
    if name not in reg:
        raise unknown_name("agent", name, reg, "Run `offreg agents` to list them.")
    return reg[name]


# --- config helpers ------------------------------------------------------------------------------
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def _check_type(owner: str, name: str, value: Any, tp: Any) -> None:
    if not _matches(value, tp):
        raise ConfigError(f"{owner}.{name} must be {_type_name(tp)}, got {value!r}")


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
    """Coerce JSON/CLI values: lists -> tuples, ints -> floats, strings -> numbers/bools."""
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
