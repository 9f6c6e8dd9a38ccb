"""Agent names: each is a backbone, optionally a regularizer, and its packaged presets.

This module imports nothing heavy: ``offreg agents`` lists the names without importing JAX or any
agent module. An entry names its classes as ``"module:attribute"`` strings, loaded on first use::

    register("prdc", agent="offreg.agents.td3:TD3Agent", config="offreg.agents.td3:TD3Config",
             regularizer="offreg.agents.prdc:PRDC", description="...", paper="...")

A regularizer on the TD3 backbone is therefore one file (its ``RegularizerConfig``) plus one
``register`` line. Another package registers its agents through the ``offreg.agents`` entry-point
group: each entry point names an :class:`AgentEntry`, a list of them, or a function that calls
:func:`register`; they are read the first time the registry is asked for (see docs/agents.md).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from offreg.errors import ConfigError, unknown_name

ENTRY_POINT_GROUP = "offreg.agents"


@dataclasses.dataclass(frozen=True)
class AgentEntry:
    """A registered agent name.

    Attributes:
      name: the name users type (``prdc``).
      agent: the agent class, or ``"module:Class"``.
      config: the agent's config class, or ``"module:Class"``.
      regularizer: the :class:`~offreg.agents.regularizers.RegularizerConfig` class of the config's
        ``regularizer`` field (TD3-shaped agents), or ``"module:Class"``; None for other agents.
      defaults: config fields that differ from the config class's defaults for this name (A2PR's
        deeper networks); presets and the user's overrides apply over them.
      description: one line for ``offreg agents``.
      paper: the paper (authors, title, arXiv id).
    """

    name: str
    agent: Any
    config: Any
    regularizer: Any = None
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    paper: str = ""

    @property
    def agent_cls(self) -> type:
        return _load(self.agent)

    @property
    def config_cls(self) -> type:
        return _load(self.config)

    def default_config(self) -> Any:
        """The config of this name before presets: the class defaults, the regularizer, ``defaults``."""
        parts = {} if self.regularizer is None else {"regularizer": _load(self.regularizer)()}
        return self.config_cls(**parts).replace(**dict(self.defaults))

    def config_from_dict(self, d: Mapping[str, Any]) -> Any:
        """A config of this name from ``AgentConfig.to_dict`` output (or any subset of fields)."""
        return self.default_config().replace(**dict(d))


_ENTRIES: dict[str, AgentEntry] = {}
_LOADED_ENTRY_POINTS = False


def register(
    name: str, *, agent: Any, config: Any, regularizer: Any = None, defaults: Mapping[str, Any] | None = None,
    description: str = "", paper: str = "",
) -> AgentEntry:
    """Register (or replace) an agent name; returns its entry."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"an agent name must be a non-empty string, got {name!r}")
    entry = AgentEntry(name, agent, config, regularizer, dict(defaults or {}), description, paper)
    _ENTRIES[name] = entry
    return entry


def registry() -> dict[str, AgentEntry]:
    """Every registered agent, by name: the built-ins and those of installed packages' entry points."""
    _load_entry_points()
    return dict(_ENTRIES)


def get_spec(name: str) -> AgentEntry:
    """The entry of ``name``.

    Raises:
      UnknownNameError: no agent has that name (the message suggests the closest).
    """
    reg = registry()
    if name not in reg:
        raise unknown_name("agent", name, reg, "Run `offreg agents` to list them.")
    return reg[name]


def name_of(agent: Any) -> str:
    """The registered name of an agent object: the entry whose classes (and regularizer) it has.

    Raises:
      ConfigError: no entry matches (register the agent with :func:`register`).
    """
    config = getattr(agent, "config", None)
    reg = getattr(config, "regularizer", None)
    for name, entry in registry().items():
        if entry.agent_cls is type(agent) and entry.config_cls is type(config) and (
            (reg is None and entry.regularizer is None)
            or (reg is not None and entry.regularizer is not None and _load(entry.regularizer) is type(reg))
        ):
            return name
    raise ConfigError(
        f"agent class {type(agent).__name__} with {type(config).__name__} is not registered; "
        "register it with offreg.agents.register"
    )


def _load(ref: Any) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load {ref!r} ({type(e).__name__}: {e}); check the agent's registration") from None


def _load_entry_points() -> None:
    global _LOADED_ENTRY_POINTS
    if _LOADED_ENTRY_POINTS:
        return
    _LOADED_ENTRY_POINTS = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:  # a broken third-party package must not break offreg
            raise ConfigError(
                f"the {ENTRY_POINT_GROUP!r} entry point {ep.name!r} ({ep.value}) failed to load "
                f"({type(e).__name__}: {e}); fix or uninstall that package"
            ) from None
        for item in obj if isinstance(obj, list | tuple) else [obj]:
            if isinstance(item, AgentEntry):
                _ENTRIES[item.name] = item
            elif callable(item):
                item()
            else:
                raise ConfigError(
                    f"the {ENTRY_POINT_GROUP!r} entry point {ep.name!r} gives {type(item).__name__}; "
                    "it must name an AgentEntry, a list of them, or a function calling offreg.agents.register"
                )


# --- the built-in agents: one line each ----------------------------------------------------------
_TD3 = {"agent": "offreg.agents.td3:TD3Agent", "config": "offreg.agents.td3:TD3Config"}
register("bc", agent="offreg.agents.bc:BCAgent", config="offreg.agents.bc:BCConfig",
         description="Behaviour cloning: a deterministic tanh policy regressed on the dataset's actions",
         paper="Behaviour cloning baseline (as in Fujimoto & Gu 2021, arXiv 2106.06860)")
register("td3bc", **_TD3, regularizer="offreg.agents.regularizers:BC",
         description="TD3 with a behaviour-cloning term and Q normalized by alpha / mean|Q|",
         paper="Fujimoto & Gu 2021, A Minimalist Approach to Offline Reinforcement Learning, arXiv 2106.06860")
register("prdc", **_TD3, regularizer="offreg.agents.prdc:PRDC",
         description="TD3 with a constraint toward the nearest dataset state-action pair (exact search on the device)",
         paper="Ran et al. 2023, Policy Regularization with Dataset Constraint for Offline RL, arXiv 2306.06569")
register("a2pr", **_TD3, regularizer="offreg.agents.a2pr:A2PR",
         defaults={"actor_hidden_dims": (256, 256, 256), "critic_hidden_dims": (256, 256, 256, 256)},
         description="TD3 with advantage-guided BC toward the better of the dataset action and a VAE projection of pi",
         paper="Liu et al. 2024, Adaptive Advantage-Guided Policy Regularization for Offline RL, arXiv 2405.19909")
register("odice", agent="offreg.agents.odice:ODICE", config="offreg.agents.odice:ODICEConfig",
         description="O-DICE: V-DICE value with the orthogonal-gradient update, policy by weighted BC",
         paper="Mao, Xu, Zhang, Zhan. ODICE: Revealing the Mystery of Distribution Correction Estimation via "
               "Orthogonal-gradient Update. ICLR 2024. arXiv:2402.00348")

_LINEAR = "offreg.agents.r2pvi:LinearValueIterationAgent"
_R2PVI = "Tang, Liu & Xu. Robust Offline RL with Linearly Structured f-Divergence Regularization. ICML 2025"
register("r2pvi-tv", agent=_LINEAR, config="offreg.agents.r2pvi:R2PVIConfig", paper=_R2PVI,
         description="R2PVI with TV regularization (linear MDPs: linear-mdp, american-put)")
register("r2pvi-kl", agent=_LINEAR, config="offreg.agents.r2pvi:R2PVIKLConfig", paper=_R2PVI,
         description="R2PVI with KL regularization (linear MDPs: linear-mdp, american-put)")
register("r2pvi-chi2", agent=_LINEAR, config="offreg.agents.r2pvi:R2PVIChi2Config", paper=_R2PVI,
         description="R2PVI with chi-square regularization, exact dual (linear MDPs)")
register("pevi", agent=_LINEAR, config="offreg.agents.r2pvi:PEVIConfig",
         description="PEVI: pessimistic least-squares value iteration (linear MDPs)",
         paper="Jin, Yang & Wang. Is Pessimism Provably Efficient for Offline RL? ICML 2021")
register("drpvi", agent=_LINEAR, config="offreg.agents.r2pvi:DRPVIConfig",
         description="DRPVI: distributionally robust PEVI, d-rectangular TV ball (linear MDPs)",
         paper="Liu & Xu. Minimax Optimal and Computationally Efficient Algorithms for Distributionally Robust "
               "Offline RL. NeurIPS 2024")
register("drvi-l", agent=_LINEAR, config="offreg.agents.r2pvi:DRVILConfig",
         description="DRVI-L: distributionally robust VI, d-rectangular KL ball (linear MDPs)",
         paper="Ma et al. Distributionally Robust Offline RL with Linear Function Approximation. arXiv 2209.06620")
