"""Environments: offreg environment names -> Gymnasium environments.

``DatasetInfo.env_id`` holds an offreg environment name (``hopper``, ``halfcheetah``, ``walker2d``,
``ant``, and the R2PVI environments), or ``gymnasium:<id>`` for the Gymnasium environment a dataset
recorded (:mod:`offreg.envs.recorded`: a Minari dataset's own ``env_spec``). :func:`make_env` builds
the Gymnasium environment whose dynamics match the data. Providers register factories with
:func:`register_env`; the modules in :data:`PROVIDERS` are imported on the first lookup.

Each environment carries the label of its *evaluation path* (:func:`eval_path`), which the
leaderboard shows next to every score: ``d4rl-env`` (offreg's environment matching D4RL's: the
locomotion tasks, the AntMaze port), ``recorded-env`` (the dataset's own recorded environment),
``gymnasium-robotics+d4rl-reward`` (Gymnasium-Robotics' Adroit simulation with D4RL's reward and
termination recomputed), ``offreg-env`` (offreg's own environments).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from offreg.errors import unknown_name

PROVIDERS: list[str] = [
    "offreg.envs.mujoco", "offreg.envs.linear_mdp", "offreg.envs.american_put", "offreg.envs.toy_navigation",
    "offreg.envs.antmaze",
    "offreg.envs.adroit",
]
"""Modules that call :func:`register_env` when imported (appended to by each provider)."""

_ENVS: dict[str, Callable[..., Any]] = {}
_PATHS: dict[str, str] = {}

RECORDED = "gymnasium:"
"""``env_id`` prefix of a dataset's recorded Gymnasium environment (:mod:`offreg.envs.recorded`)."""


def register_env(name: str, factory: Callable[..., Any], eval_path: str = "offreg-env") -> None:
    """Register ``factory(**kwargs) -> gymnasium.Env`` under ``name``, with its evaluation-path label."""
    _ENVS[name] = factory
    _PATHS[name] = eval_path


def eval_path(env_id: str | None) -> str | None:
    """The evaluation-path label of an ``env_id`` (see the module docstring); None for no environment."""
    if env_id is None:
        return None
    if env_id.startswith(RECORDED):
        return "recorded-env"
    env_names()
    return _PATHS.get(env_id)


def env_names() -> list[str]:
    for module in list(PROVIDERS):
        importlib.import_module(module)
    return sorted(_ENVS)


def make_env(name: str, **kwargs: Any):
    """Create the Gymnasium environment registered as ``name``, or the recorded ``gymnasium:<id>``.

    ``kwargs`` go to the factory; for ``gymnasium:<id>`` they are
    :func:`offreg.envs.recorded.make_recorded`'s (``spec``: the recorded EnvSpec), which a dataset
    keeps in ``DatasetInfo.extra["env_kwargs"]``.

    Raises:
      UnknownNameError: no environment of that name (the closest names are suggested).
      EnvironmentError_: a recorded environment that cannot be rebuilt.
    """
    if name.startswith(RECORDED):
        from offreg.envs.recorded import make_recorded

        return make_recorded(name[len(RECORDED):], **kwargs)
    names = env_names()
    if name not in _ENVS:
        raise unknown_name("environment", name, names)
    return _ENVS[name](**kwargs)
