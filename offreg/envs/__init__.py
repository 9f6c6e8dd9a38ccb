"""Environments: offreg environment names -> Gymnasium environments.

``DatasetInfo.env_id`` holds an offreg environment name (``hopper``, ``halfcheetah``, ``walker2d``,
``ant``, and the R2PVI environments). :func:`make_env` builds the Gymnasium environment whose
dynamics match the data. Providers register factories with :func:`register_env`; the modules in
:data:`PROVIDERS` are imported on the first lookup.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from offreg.errors import unknown_name

PROVIDERS: list[str] = [
    "offreg.envs.mujoco", "offreg.envs.linear_mdp", "offreg.envs.american_put", "offreg.envs.toy_navigation",
    "offreg.envs.adroit",
]
"""Modules that call :func:`register_env` when imported (appended to by each provider)."""

_ENVS: dict[str, Callable[..., Any]] = {}


def register_env(name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory(**kwargs) -> gymnasium.Env`` under ``name``."""
    _ENVS[name] = factory


def env_names() -> list[str]:
    for module in list(PROVIDERS):
        importlib.import_module(module)
    return sorted(_ENVS)


def make_env(name: str, **kwargs: Any):
    """Create the Gymnasium environment registered as ``name``.

    Raises:
      UnknownNameError: no environment of that name (the closest names are suggested).
    """
    names = env_names()
    if name not in _ENVS:
        raise unknown_name("environment", name, names)
    return _ENVS[name](**kwargs)
