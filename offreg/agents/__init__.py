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
