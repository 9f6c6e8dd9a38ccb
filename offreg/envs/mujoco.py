"""D4RL v2 locomotion environments on Gymnasium MuJoCo: ``hopper``, ``halfcheetah``, ``walker2d``, ``ant``.

D4RL's v2 locomotion data came from gym's ``-v2`` MuJoCo classes (mujoco-py, MuJoCo 2.0). Gymnasium
no longer ships those, so each name maps to the Gymnasium class whose observation layout, action
bounds, reward, termination and reset distribution match them:

============  =============================================  ================================================
name          Gymnasium environment                           why this version
============  =============================================  ================================================
hopper        ``Hopper-v4``                                   v5 drops the alive bonus on the terminal step
                                                              (1 less per terminated episode than v2)
halfcheetah   ``HalfCheetah-v5``                              identical to v4 step for step (checked by
                                                              ``tests/test_evaluation.py``), not deprecated
walker2d      ``Walker2d-v4`` (its model ``walker2d.xml``)    v5's model gives both feet friction 1.9 (v2:
                                                              left 1.9, right 0.9) and drops the terminal
                                                              alive bonus
ant           ``Ant-v4(use_contact_forces=False)`` + 84       the D4RL data has 111-dim observations whose last
              zero observation entries (111 dims)             84 entries (contact forces) are all zeros
============  =============================================  ================================================

All have a 1000-step time limit, as D4RL registers them. What remains different from D4RL is the
simulator (``mujoco`` >= 2.1.3 instead of mujoco-py with MuJoCo 2.0), which shifts returns slightly;
report :func:`offreg.provenance.simulator_versions` next to every score. Gymnasium warns that the
``-v4`` ids are out of date; the factories silence that one warning while they build the environment,
and leave the process's warning state unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np

from offreg.envs import register_env

ANT_PADDING = 84
"""Zero entries appended to Ant observations (D4RL's all-zero ``clip(cfrc_ext)`` block, 14 bodies x 6)."""

MAX_EPISODE_STEPS = 1000
"""D4RL registers every locomotion environment with a 1000-step time limit."""


@dataclasses.dataclass(frozen=True)
class LocomotionEnv:
    """How an offreg locomotion name maps onto Gymnasium.

    Attributes:
      gym_id: the Gymnasium environment id.
      kwargs: keyword arguments for ``gymnasium.make``.
      pad_observation: zero entries appended to each observation.
      ref_min_score: D4RL reference return of the random policy (normalized score 0), ``d4rl/infos.py``.
      ref_max_score: D4RL reference return of the SAC expert (normalized score 100).
    """

    gym_id: str
    kwargs: dict[str, Any]
    pad_observation: int
    ref_min_score: float
    ref_max_score: float

    def describe(self) -> str:
        """A one-line description, e.g. ``Ant-v4(use_contact_forces=False) + 84 zero observation entries``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        text = f"{self.gym_id}({args})" if args else self.gym_id
        if self.pad_observation:
            text += f" + {self.pad_observation} zero observation entries"
        return text


# The reference scores are shared by every dataset of an environment (v0, v1, v2 alike; see
# ``d4rl/infos.py`` and the constants in ``d4rl/gym_mujoco/__init__.py``).
LOCOMOTION: dict[str, LocomotionEnv] = {
    "hopper": LocomotionEnv("Hopper-v4", {}, 0, -20.272305, 3234.3),
    "halfcheetah": LocomotionEnv("HalfCheetah-v5", {}, 0, -280.178953, 12135.0),
    "walker2d": LocomotionEnv("Walker2d-v4", {}, 0, 1.629008, 4592.3),
    "ant": LocomotionEnv("Ant-v4", {"use_contact_forces": False}, ANT_PADDING, -325.6, 3879.7),
}
"""offreg environment name -> Gymnasium mapping and D4RL reference scores."""


class PadObservation(gym.ObservationWrapper):
    """Append ``padding`` zeros to every observation (D4RL Ant's empty contact-force block).

    Observations go from shape ``[d]`` to ``[d + padding]``; the new entries are exactly 0.0.
    """

    def __init__(self, env: gym.Env, padding: int):
        super().__init__(env)
        self.padding = int(padding)
        space = env.observation_space
        low = np.concatenate([np.broadcast_to(space.low, space.shape), np.zeros(self.padding)])
        high = np.concatenate([np.broadcast_to(space.high, space.shape), np.zeros(self.padding)])
        self.observation_space = gym.spaces.Box(low.astype(space.dtype), high.astype(space.dtype), dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.concatenate([observation, np.zeros(self.padding, observation.dtype)])


@contextmanager
def _quiet_construction() -> Iterator[None]:
    """Silence two known, harmless warnings while an environment is built, and nothing else.

    - Gymnasium's "The environment X-v4 is out of date" (a ``DeprecationWarning``): offreg uses v4 on
      purpose, see the module docstring.
    - Recent MuJoCo's (4.0) "compiler attribute 'settotalmass' is deprecated" for ``half_cheetah.xml`` (the
      attribute is still applied; the tests check HalfCheetah's total mass is 14). Other MuJoCo
      warnings are re-issued as Python ``RuntimeWarning``.

    The previous Python warning filters and MuJoCo warning handler are restored on exit.
    """
    import mujoco

    def on_mujoco_warning(message: str) -> None:
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    previous = mujoco.get_mju_user_warning()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is out of date.*", category=DeprecationWarning)
        mujoco.set_mju_user_warning(on_mujoco_warning)
        try:
            yield
        finally:
            mujoco.set_mju_user_warning(previous)


def make_locomotion(name: str, max_episode_steps: int = MAX_EPISODE_STEPS, **kwargs: Any) -> gym.Env:
    """Build the Gymnasium environment that evaluates a D4RL v2 locomotion policy.

    Args:
      name: ``hopper``, ``halfcheetah``, ``walker2d`` or ``ant``.
      max_episode_steps: time limit (D4RL: 1000).
      **kwargs: extra ``gymnasium.make`` arguments (e.g. ``render_mode="rgb_array"``); they override
        the mapping's own keyword arguments.

    Returns:
      A ``gymnasium.Env`` with the observation space of the D4RL dataset (hopper 11, halfcheetah 17,
      walker2d 17, ant 111) and action space ``Box(-1, 1)``.
    """
    spec = LOCOMOTION[name]
    with _quiet_construction():
        env = gym.make(spec.gym_id, max_episode_steps=max_episode_steps, **{**spec.kwargs, **kwargs})
    if spec.pad_observation:
        env = PadObservation(env, spec.pad_observation)
    return env


for _name in LOCOMOTION:
    register_env(_name, functools.partial(make_locomotion, _name), eval_path="d4rl-env")
