"""Agents. Importing this package registers the built-in agents."""

from offreg.agents.base import Agent, AgentConfig, AgentSpec, get_spec, register, registry
from offreg.agents.regularizers import CriticFns, Regularizer, behaviour_cloning

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentSpec",
    "CriticFns",
    "Regularizer",
    "behaviour_cloning",
    "get_spec",
    "register",
    "registry",
]
import offreg.agents.bc  # noqa: E402,F401
import offreg.agents.td3bc  # noqa: E402,F401
import offreg.agents.odice  # noqa: E402,F401
import offreg.agents.prdc  # noqa: E402,F401
import offreg.agents.a2pr  # noqa: E402,F401

import offreg.agents.r2pvi  # noqa: E402,F401  (registers r2pvi-tv, r2pvi-kl, r2pvi-chi2, pevi, drpvi, drvi-l)
