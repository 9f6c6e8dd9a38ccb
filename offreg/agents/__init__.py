"""Agents: the registry of names (importing it loads no agent module and no JAX), the Agent protocol,
the config base classes and the policy-regularizer interface.

``offreg.agents.registry()`` lists every name; ``offreg.agents.register`` adds one (see
docs/agents.md). The other names below load their module on first access.
"""

from offreg.agents.names import AgentEntry, get_spec, name_of, register, registry

AgentSpec = AgentEntry  # the name earlier versions used

_LAZY = {
    "Agent": "offreg.agents.base",
    "AgentConfig": "offreg.agents.base",
    "Config": "offreg.agents.base",
    "ConfigPart": "offreg.agents.base",
    "BC": "offreg.agents.regularizers",
    "CriticFns": "offreg.agents.regularizers",
    "Regularizer": "offreg.agents.regularizers",
    "RegularizerConfig": "offreg.agents.regularizers",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib  # noqa: PLC0415  (keeps `import offreg.agents` free of JAX)

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'offreg.agents' has no attribute {name!r}")


__all__ = ["AgentEntry", "AgentSpec", "get_spec", "name_of", "register", "registry", *_LAZY]
