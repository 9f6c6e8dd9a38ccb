"""Recorded environments: the Gymnasium environment a dataset says it was collected in.

A Minari dataset's ``metadata.json`` stores its environment as a serialized ``gymnasium.EnvSpec``
(``env_spec``, and ``eval_env_spec`` when the dataset names a separate evaluation environment).
offreg evaluates such a dataset in that very environment, rebuilt with ``gymnasium.make(spec)``:

- ``DatasetInfo.env_id`` is ``gymnasium:<id>`` (e.g. ``gymnasium:Hopper-v5``), a plain string, so
  run directories and checkpoints keep it as they keep any other environment name;
- ``DatasetInfo.extra["env_kwargs"]`` is ``{"spec": <the EnvSpec as a JSON dict>}``: the
  arguments :func:`offreg.envs.make_env` passes to :func:`make_recorded`. Without a spec,
  ``gymnasium:<id>`` is ``gymnasium.make(<id>)`` with the id's registered defaults.

A spec whose entry point lives in ``gymnasium_robotics`` (AntMaze, Adroit, ...) imports Gymnasium-Robotics
and registers its environments first; when it is not installed the error names
``pip install "offreg[robotics]"``.

**Dict observations** (AntMaze's ``observation``/``achieved_goal``/``desired_goal``) become one vector:
the keys in sorted order (so ``achieved_goal, desired_goal, observation``), nested dicts the same
way, each entry flattened row-major and concatenated. :func:`flatten_observation` is that one rule;
the Minari reader (:mod:`offreg.data.minari_format`) flattens the dataset's observations with it and
the environment's observations pass through :class:`FlattenDictObservation`, which applies it too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from offreg.envs import RECORDED
from offreg.errors import EnvironmentError_

ROBOTICS_HINT = 'pip install "offreg[robotics]"'
_ROBOTICS_NOTICE = "reward functions were updated in v1.2.1"


def flatten_observation(observation: Any, batch_dims: int = 0) -> np.ndarray:
    """One vector per observation: a dict's entries in sorted key order, each flattened row-major.

    Args:
      observation: an array, or a (nested) mapping of arrays.
      batch_dims: leading axes kept as they are (1 for a Minari episode's ``[T+1, ...]`` arrays).

    Returns:
      ``[*batch, d]`` with ``d`` the total size of one observation's entries.
    """
    if isinstance(observation, Mapping):
        parts = [flatten_observation(observation[k], batch_dims) for k in sorted(observation)]
        return np.concatenate(parts, axis=-1)
    x = np.asarray(observation)
    return x.reshape(*x.shape[:batch_dims], -1)


def _bounds(space: gym.Space, which: str) -> Any:
    if isinstance(space, gym.spaces.Dict):
        return {k: _bounds(s, which) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Box):
        return getattr(space, which)
    raise EnvironmentError_(
        f"observation space {space} is not a Box or a Dict of Boxes; offreg evaluates flat vector observations only"
    )


class FlattenDictObservation(gym.ObservationWrapper):
    """A Dict observation space becomes a ``Box``, the entries in :func:`flatten_observation`'s order."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        low = flatten_observation(_bounds(space, "low"))
        high = flatten_observation(_bounds(space, "high"))
        dtype = np.result_type(*[s.dtype for s in _leaves(space)])
        self.observation_space = gym.spaces.Box(low.astype(dtype), high.astype(dtype), dtype=dtype)

    def observation(self, observation: Any) -> np.ndarray:
        return flatten_observation(observation)


def _leaves(space: gym.Space) -> list[gym.Space]:
    if isinstance(space, gym.spaces.Dict):
        return [leaf for k in sorted(space.spaces) for leaf in _leaves(space.spaces[k])]
    return [space]


def parse_spec(spec: Mapping[str, Any] | str) -> gym.envs.registration.EnvSpec:
    """A ``gymnasium.EnvSpec`` from its JSON (a string or the parsed dict).

    Fields older Gymnasium versions wrote and 1.x no longer has (``apply_api_compatibility``,
    ``autoreset``) are dropped, as Minari does when it reads its own metadata.

    Raises:
      EnvironmentError_: not an EnvSpec's JSON.
    """
    try:
        d = json.loads(spec) if isinstance(spec, str) else dict(spec)
        known = {f.name for f in dataclasses.fields(gym.envs.registration.EnvSpec)}
        return gym.envs.registration.EnvSpec.from_json(json.dumps({k: v for k, v in d.items() if k in known}))
    except (TypeError, ValueError, KeyError, gym.error.Error) as e:
        raise EnvironmentError_(
            f"the recorded environment spec cannot be read ({type(e).__name__}: {e}); re-create the dataset"
        ) from None


def _needs_robotics(spec: gym.envs.registration.EnvSpec | None, gym_id: str) -> bool:
    if spec is not None:
        entry = spec.entry_point
        return isinstance(entry, str) and entry.split(".", 1)[0].split(":", 1)[0] == "gymnasium_robotics"
    return gym_id not in gym.registry


def import_robotics(name: str, silence_reward_notice: bool = False) -> Any:
    """Import Gymnasium-Robotics and register its environments; returns the module.

    Args:
      name: the environment that needs it (for the error).
      silence_reward_notice: drop the notice Gymnasium-Robotics prints on import about its changed
        Adroit dense rewards (offreg's Adroit environments recompute D4RL's; every other line of
        stderr is kept). The recorded environments keep it: they report Gymnasium-Robotics' rewards.

    Raises:
      EnvironmentError_: Gymnasium-Robotics is not installed (the message names the extra).
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured) if silence_reward_notice else contextlib.nullcontext():
            import gymnasium_robotics
    except ImportError:
        raise EnvironmentError_(
            f"environment {name!r} needs Gymnasium-Robotics, which is not installed: {ROBOTICS_HINT}"
        ) from None
    finally:
        rest = [line for line in captured.getvalue().splitlines() if _ROBOTICS_NOTICE not in line]
        if rest:
            print("\n".join(rest), file=sys.stderr)
    gym.register_envs(gymnasium_robotics)
    return gymnasium_robotics


def make_recorded(gym_id: str, spec: Mapping[str, Any] | str | None = None, **kwargs: Any) -> gym.Env:
    """Rebuild a recorded Gymnasium environment, with Dict observations flattened.

    Args:
      gym_id: the Gymnasium id (``Hopper-v5``, ``AntMaze_UMaze-v4``).
      spec: the recorded ``EnvSpec`` (JSON string or dict; its ``id`` must be ``gym_id``), or None
        for ``gymnasium.make(gym_id)``.
      **kwargs: extra ``gymnasium.make`` arguments (``render_mode``, ...).

    Raises:
      EnvironmentError_: the EnvSpec does not match ``gym_id``, Gymnasium-Robotics is needed but
        missing, or Gymnasium cannot build the environment.
    """
    parsed = None if spec is None else parse_spec(spec)
    if parsed is not None and parsed.id != gym_id:
        raise EnvironmentError_(
            f"environment {RECORDED}{gym_id} was given the EnvSpec of {parsed.id!r}; the dataset's env_id and "
            "its recorded spec disagree: load the dataset again"
        )
    if _needs_robotics(parsed, gym_id):
        import_robotics(gym_id)
    try:
        env = gym.make(parsed if parsed is not None else gym_id, **kwargs)
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        hint = ROBOTICS_HINT if "gymnasium_robotics" in missing else f"install {missing}"
        raise EnvironmentError_(f"environment {gym_id!r} cannot be built: {missing} is missing: {hint}") from None
    except gym.error.Error as e:
        raise EnvironmentError_(f"environment {gym_id!r} cannot be built ({type(e).__name__}: {e})") from None
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = FlattenDictObservation(env)
    return env
